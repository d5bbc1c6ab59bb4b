"""A CAC behind a bad uplink, as real processes: Mosquitto, ``cac-hub``, ``cac-agent``.

The hub sits beside its broker; the agent reaches both through ``netproxy`` links (its
``[mqtt]`` host/port and ``[content] hub_url`` point at the proxies), as a rural CAC reaches
its regional hub. Used by tests/system/test_bad_link*.py and bench/wire_bytes.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from helpers import MosquittoBroker, Proc, free_port, http, until
from netproxy import ThreadedLinkProxy

from agent.ledger import Ledger

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
STARTER = sorted(p for p in (REPO / "content").iterdir() if (p / "manifest.json").is_file())
CAC = "ma-oriental-link-001"
STATIONS = ("s1", "s2", "s3")
OPERATOR, PASSWORD = "op", "bad-link-pass-1"
TECH, TECH_PASSWORD = "tech", "bad-link-tech-1"
RATE = 32_000  # bytes per second each way
LATENCY = 0.3  # seconds each way


class Failed(AssertionError):
    pass


__all__ = ["CAC", "STARTER", "STATIONS", "LinkSite", "Proc", "http", "until"]


def token(sid: str) -> str:
    return f"bad-link-token-{sid}-000000000"


def hub_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """The hub's broker (for a fixture), with the deep queues a hub's broker config sets."""
    b = MosquittoBroker(tmp_path / "broker", extra_config=(
        "max_queued_messages 100000", "max_inflight_messages 100"))
    b.start()
    yield b
    b.stop()


class LinkSite:
    """Broker + hub here, the agent at the far end of ``mqtt_link`` and ``http_link``."""

    def __init__(self, tmp: Path, broker: MosquittoBroker, *, rate: float | None = RATE,
                 latency: float = LATENCY, seed: int = 0, poll_seconds: int = 300,
                 health_interval: int = 30, content: bool = True) -> None:
        self.tmp, self.broker = tmp, broker
        self.hub_port, self.agent_port = free_port(), free_port()
        self.mqtt_link = ThreadedLinkProxy(broker.port, rate=rate, latency=latency,
                                           seed=seed).start()
        self.http_link = ThreadedLinkProxy(self.hub_port, rate=rate, latency=latency,
                                           seed=seed + 1).start()
        self.agent_data = tmp / "agent-data"
        self.hub_toml, self.agent_toml = tmp / "hub.toml", tmp / "agent.toml"
        self.hub_toml.write_text(f"""
hub_id = "hub-link"
data_dir = "{tmp / 'hub-data'}"
flush_seconds = 1
offline_after_seconds = 90

[mqtt]
host = "127.0.0.1"
port = {broker.port}

[http]
host = "127.0.0.1"
port = {self.hub_port}
""")
        stations = "".join(f'[[stations]]\nid = "{s}"\ntoken = "{token(s)}"\n\n'
                           for s in STATIONS)
        content_table = (f'[content]\nhub_url = "http://127.0.0.1:{self.http_link.port}"\n'
                         f"poll_seconds = {poll_seconds}\n") if content else ""
        self.agent_toml.write_text(f"""
cac_id = "{CAC}"
data_dir = "{self.agent_data}"
timezone = "Africa/Casablanca"
health_interval_seconds = {health_interval}

[mqtt]
host = "127.0.0.1"
port = {self.mqtt_link.port}

[http]
host = "127.0.0.1"
port = {self.agent_port}

{stations}
[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 0

{content_table}""")
        self._cli([str(BIN / "cac-agent"), "add-operator", "--config", str(self.agent_toml),
                   "--name", OPERATOR, "--role", "manager", "--password-stdin"], PASSWORD)
        self._cli([str(BIN / "cac-hub"), "add-user", "--config", str(self.hub_toml),
                   "--name", TECH, "--role", "technician", "--password-stdin"], TECH_PASSWORD)
        self.agent = Proc("agent", [str(BIN / "cac-agent"), "--config", str(self.agent_toml)],
                          tmp / "agent.log")
        self.hub = Proc("hub", [str(BIN / "cac-hub"), "--config", str(self.hub_toml)],
                        tmp / "hub.log")
        self.procs = (self.agent, self.hub)
        self.tok = ""
        self._dash: urllib.request.OpenerDirector | None = None

    @staticmethod
    def _cli(args: list[str], stdin: str) -> str:
        r = subprocess.run(args, input=stdin + "\n", text=True, capture_output=True,
                           timeout=60, check=False)
        if r.returncode != 0:
            raise Failed(f"{' '.join(args[:2])} failed: {r.stdout}{r.stderr}")
        return r.stdout

    def add_starter_content(self) -> str:
        """``cac-hub add-content`` of the starter set (content/*), as the README says."""
        return self._cli([str(BIN / "cac-hub"), "add-content", "--config", str(self.hub_toml),
                          *map(str, STARTER)], "")

    # ---------------------------------------------------------------- life

    @property
    def a(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}/api/v1"

    @property
    def h(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    def start_hub(self) -> None:
        self.hub.start()
        until(lambda: http("GET", f"{self.h}/api/v1/cacs")[0] == 200, "the hub", 30,
              (self.hub,))

    def start_agent(self) -> None:
        self.agent.start()
        until(lambda: http("GET", f"{self.a}/health")[0] == 200, "the agent", 30,
              (self.agent,))
        status, body = http("POST", f"{self.a}/login", {"name": OPERATOR, "password": PASSWORD})
        if status != 200:
            raise Failed(f"operator login: {status} {body}")
        self.tok = body["token"]

    def close(self) -> None:
        self.agent.stop()
        self.hub.stop()
        self.mqtt_link.stop()
        self.http_link.stop()

    # ---------------------------------------------------------------- the agent

    def session(self, station: str) -> dict[str, Any]:
        """An operator session started and ended at once: one closed record in the outbox."""
        status, s = http("POST", f"{self.a}/sessions", {"station": station, "minutes": 30},
                         self.tok)
        if status != 201:
            raise Failed(f"start on {station}: {status} {s}")
        status, rec = http("POST", f"{self.a}/sessions/{s['id']}/end", {}, self.tok)
        if status != 200:
            raise Failed(f"end {s['id']}: {status} {rec}")
        return rec  # type: ignore[no-any-return]

    def backlog(self) -> int:
        return int(http("GET", f"{self.a}/health")[1]["backlog"])

    def content(self) -> dict[str, Any]:
        status, body = http("GET", f"{self.a}/content", None, self.tok)
        if status != 200:
            raise Failed(f"content listing: {status} {body}")
        return body  # type: ignore[no-any-return]

    def audit(self, action: str) -> list[dict[str, Any]]:
        status, body = http("GET", f"{self.a}/audit?limit=5000", None, self.tok)
        if status != 200:
            raise Failed(f"audit: {status} {body}")
        return [e for e in body if e.get("action") == action]

    def station(self, sid: str) -> dict[str, Any]:
        status, body = http("GET", f"{self.a}/stations", None, self.tok)
        return next(s for s in body if s["id"] == sid)  # type: ignore[no-any-return]

    def portal_file(self, pid: str, path: str) -> bytes:
        url = f"http://127.0.0.1:{self.agent_port}/content/{pid}/{urllib.parse.quote(path)}"
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token('s1')}"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.read()  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- the hub

    def hub_sessions(self) -> list[dict[str, Any]]:
        status, body = http("GET", f"{self.h}/api/v1/cacs/{CAC}/sessions")
        return body if status == 200 else []  # type: ignore[no-any-return]

    def hub_cac(self) -> dict[str, Any] | None:
        status, body = http("GET", f"{self.h}/api/v1/cacs/{CAC}")
        return body if status == 200 else None

    def hub_commands(self) -> list[dict[str, Any]]:
        return self._dash_json("/api/v1/commands")  # type: ignore[no-any-return]

    def _dashboard(self) -> urllib.request.OpenerDirector:
        if self._dash is None:
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
            form = urllib.parse.urlencode({"name": TECH, "password": TECH_PASSWORD,
                                           "next": "/"}).encode()
            with opener.open(f"{self.h}/login", form, timeout=10) as resp:
                resp.read()
            self._dash = opener
        return self._dash

    def _dash_json(self, path: str) -> Any:
        with self._dashboard().open(f"{self.h}{path}", timeout=10) as resp:
            return json.loads(resp.read())

    def send_command(self, name: str, **form: str) -> str:
        """A technician's command from the dashboard form; returns its id."""
        opener = self._dashboard()
        with opener.open(f"{self.h}/cacs/{CAC}", timeout=10) as resp:
            page = resp.read().decode()
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        if found is None:
            raise Failed("no csrf token on the CAC page")
        before = {c["id"] for c in self.hub_commands()}
        data = urllib.parse.urlencode({"csrf": found.group(1), "name": name, **form}).encode()
        with opener.open(f"{self.h}/cacs/{CAC}/commands", data, timeout=10) as resp:
            resp.read()
        new = [c["id"] for c in self.hub_commands() if c["id"] not in before]
        if len(new) != 1:
            raise Failed(f"the command was not stored once: {new}")
        return str(new[0])

    def command(self, cmd_id: str) -> dict[str, Any]:
        return next(c for c in self.hub_commands() if c["id"] == cmd_id)  # type: ignore[no-any-return]

    def hub_received(self) -> bool:
        """The hub heard from the CAC (its status or health)."""
        return self.hub_cac() is not None


# ---------------------------------------------------------------- checks


def starter_files() -> dict[tuple[str, str], bytes]:
    """(package id, path) -> bytes of every file of the starter content."""
    out = {}
    for d in STARTER:
        pid = json.loads((d / "manifest.json").read_text())["id"]
        for f in sorted(d.rglob("*")):
            if f.is_file() and f.name != "manifest.json":
                out[(pid, f.relative_to(d).as_posix())] = f.read_bytes()
    return out


def agent_records(site: LinkSite) -> dict[str, dict[str, Any]]:
    ledger = Ledger(site.agent_data, CAC, ZoneInfo("Africa/Casablanca"), lock=False)
    try:
        return {r["id"]: r for r in ledger.records() if r["type"] == "session"}
    finally:
        ledger.close()


def check_exactly_once(site: LinkSite, expected: set[str]) -> list[dict[str, Any]]:
    hub = site.hub_sessions()
    ids = [r["id"] for r in hub]
    assert len(ids) == len(set(ids)), "a record reached the hub twice"
    assert set(ids) == expected, (sorted(expected - set(ids)), sorted(set(ids) - expected))
    return hub


def check_command_once(site: LinkSite, cmd_id: str, audited: int) -> str:
    """The command's fate at the hub: ``done`` having run once, or ``expired`` having never
    run (an agent that honours Command.expires_at); anything else fails."""
    row = site.command(cmd_id)
    assert row["status"] in ("done", "expired"), row
    assert audited == (1 if row["status"] == "done" else 0), (row, audited)
    return str(row["status"])
