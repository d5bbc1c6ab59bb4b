"""The whole pipeline as real processes: Mosquitto, `cac-hub`, `cac-agent`.

Sessions closed while the hub is down, while the broker restarts, across a kill -9 of the
agent and of the hub all reach the hub exactly once with the agent's fees; a CAC that goes
silent without a last will is shown offline after offline_after_seconds.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import MosquittoBroker, Proc, free_port, http, until

from agent.ledger import Ledger
from wire.topics import Kind, cac_topic

pytestmark = pytest.mark.system

BIN = Path(sys.executable).parent
CAC = "cac-sys-001"
STATIONS = ("s1", "s2", "s3")
PASSWORD = "pipeline-pass-1"


def token(sid: str) -> str:
    return f"pipeline-token-{sid}-0000000000"


class Site:
    def __init__(self, tmp: Path, broker: MosquittoBroker, offline_after: int = 90,
                 health_interval: int = 30) -> None:
        self.tmp = tmp
        self.agent_port, self.hub_port = free_port(), free_port()
        self.agent_data = tmp / "agent-data"
        agent_toml = tmp / "agent.toml"
        stations = "".join(f'[[stations]]\nid = "{s}"\ntoken = "{token(s)}"\n\n'
                           for s in STATIONS)
        agent_toml.write_text(f"""
cac_id = "{CAC}"
data_dir = "{self.agent_data}"
timezone = "Africa/Casablanca"
health_interval_seconds = {health_interval}

[mqtt]
host = "127.0.0.1"
port = {broker.port}

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
""")
        hub_toml = tmp / "hub.toml"
        hub_toml.write_text(f"""
hub_id = "hub-sys"
data_dir = "{tmp / 'hub-data'}"
offline_after_seconds = {offline_after}
flush_seconds = 1

[mqtt]
host = "127.0.0.1"
port = {broker.port}

[http]
host = "127.0.0.1"
port = {self.hub_port}
""")
        subprocess.run([str(BIN / "cac-agent"), "add-operator", "--config", str(agent_toml),
                        "--name", "op", "--role", "operator", "--password-stdin"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        self.agent = Proc("agent", [str(BIN / "cac-agent"), "--config", str(agent_toml)],
                          tmp / "agent.log")
        self.hub = Proc("hub", [str(BIN / "cac-hub"), "--config", str(hub_toml)],
                        tmp / "hub.log")
        self.tok = ""

    @property
    def a(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}/api/v1"

    @property
    def h(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}/api/v1"

    def start_agent(self) -> None:
        self.agent.start()
        until(lambda: http("GET", f"{self.a}/health")[0] == 200, "the agent",
              procs=(self.agent,))
        status, body = http("POST", f"{self.a}/login", {"name": "op", "password": PASSWORD})
        assert status == 200, body
        self.tok = body["token"]

    def start_hub(self) -> None:
        self.hub.start()
        until(lambda: http("GET", f"{self.h}/cacs")[0] == 200, "the hub", procs=(self.hub,))

    def session(self, station: str) -> dict[str, Any]:
        """An operator session, started and ended at once: one closed record."""
        status, s = http("POST", f"{self.a}/sessions", {"station": station, "minutes": 30},
                         self.tok)
        assert status == 201, s
        status, rec = http("POST", f"{self.a}/sessions/{s['id']}/end", {}, self.tok)
        assert status == 200, rec
        return rec  # type: ignore[no-any-return]

    def backlog(self) -> int:
        return int(http("GET", f"{self.a}/health")[1]["backlog"])

    def hub_sessions(self) -> list[dict[str, Any]]:
        status, body = http("GET", f"{self.h}/cacs/{CAC}/sessions")
        return body if status == 200 else []  # type: ignore[no-any-return]

    def hub_cac(self) -> dict[str, Any] | None:
        status, body = http("GET", f"{self.h}/cacs")
        if status != 200:
            return None
        return next((c for c in body if c["cac_id"] == CAC), None)

    def drained(self, n: int) -> bool:
        return self.backlog() == 0 and len(self.hub_sessions()) >= n


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    store = tmp_path / "mosquitto-db"
    store.mkdir()
    b = MosquittoBroker(tmp_path / "broker", extra_config=(
        "persistence true", f"persistence_location {store}/",
        "max_queued_messages 100000", "max_inflight_messages 100"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def site(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Site]:
    s = Site(tmp_path, broker)
    yield s
    s.agent.stop()
    s.hub.stop()


def test_every_record_reaches_the_hub_exactly_once_through_outages(
        site: Site, broker: MosquittoBroker) -> None:
    procs = (site.agent, site.hub)
    site.start_agent()
    expected: dict[str, dict[str, Any]] = {}

    # 1. the hub is not running yet: records wait in the agent's outbox
    for i in range(6):
        rec = site.session(STATIONS[i % 3])
        expected[rec["id"]] = rec
    assert site.backlog() == 6
    site.start_hub()
    until(lambda: site.drained(6), "the first records at the hub", procs=procs)

    # 2. the broker goes away while sessions close, then comes back
    broker.stop()
    for i in range(5):
        rec = site.session(STATIONS[i % 3])
        expected[rec["id"]] = rec
    assert site.backlog() == 5
    broker.start()
    until(lambda: site.drained(11), "records closed while the broker was down", procs=procs)

    # 3. kill -9 of the agent with a session running and records unsent
    site.hub.stop()
    for i in range(4):
        rec = site.session(STATIONS[i % 3])
        expected[rec["id"]] = rec
    status, running = http("POST", f"{site.a}/sessions", {"station": "s1", "minutes": None},
                           site.tok)
    assert status == 201
    site.agent.kill9()
    site.start_agent()  # recovery closes the running session into the outbox
    site.start_hub()
    until(lambda: site.drained(16), "records across an agent kill -9", procs=procs)

    # 4. kill -9 of the hub while it ingests a burst
    for i in range(30):
        rec = site.session(STATIONS[i % 3])
        expected[rec["id"]] = rec
    site.hub.kill9()
    site.start_hub()
    until(lambda: site.drained(46), "records across a hub kill -9", procs=procs)

    site.agent.stop()
    ledger = Ledger(site.agent_data, CAC, ZoneInfo("Africa/Casablanca"), lock=False)
    agent_sessions = {r["id"]: r for r in ledger.records() if r["type"] == "session"}
    ledger.close()
    assert running["id"] in agent_sessions
    assert agent_sessions[running["id"]]["end_reason"] == "restart_recovery"
    assert set(expected) <= set(agent_sessions)

    hub = site.hub_sessions()
    ids = [r["id"] for r in hub]
    assert len(ids) == len(set(ids)), "a record reached the hub twice"
    assert set(ids) == set(agent_sessions)
    for r in hub:
        mine = agent_sessions[r["id"]]
        for key in ("station", "started_at", "ended_at", "billed_seconds", "fee", "currency"):
            assert r[key] == mine[key], (key, r, mine)
    assert sum(r["fee"] for r in hub) == sum(r["fee"] for r in agent_sessions.values())
    assert all(r["fee"] == 200 for r in hub)  # grace 0, one block minimum


def test_a_cac_that_goes_silent_without_a_will_turns_offline(
        tmp_path: Path, broker: MosquittoBroker) -> None:
    site = Site(tmp_path, broker, offline_after=3, health_interval=1)
    procs = (site.agent, site.hub)
    try:
        site.start_hub()
        site.start_agent()
        cac = until(lambda: (c := site.hub_cac()) and c["online"] and c["health"] and c,
                    "the CAC online with health", procs=procs)
        assert cac["health"]["backlog"] == 0
        # frozen, not dead: its TCP connection stays open, so the broker sends no will
        site.agent.signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        until(lambda: (c := site.hub_cac()) and not c["online"], "the silent CAC offline",
              timeout=15, procs=procs)
        took = time.monotonic() - frozen_at
        assert took >= 3 - 0.5, took  # not before offline_after_seconds
        assert "offline" not in broker_status(broker), "the broker sent the will"
        site.agent.signal(signal.SIGCONT)
        until(lambda: (c := site.hub_cac()) and c["online"], "the CAC back online",
              timeout=15, procs=procs)
    finally:
        site.agent.stop()
        site.hub.stop()


def broker_status(broker: MosquittoBroker) -> str:
    """The retained status payload of the CAC, read with mosquitto_sub if available."""
    sub = shutil.which("mosquitto_sub")
    if sub is None:
        return ""
    r = subprocess.run([sub, "-h", "127.0.0.1", "-p", str(broker.port), "-t",
                        cac_topic(CAC, Kind.STATUS), "-C", "1", "-W", "2"],
                       capture_output=True, text=True, timeout=10, check=False)
    return r.stdout


def test_a_restart_command_restarts_the_agent_in_place(
        tmp_path: Path, broker: MosquittoBroker) -> None:
    """The hub's `restart`: answered `done`, then the same process (PID) starts again with
    a new boot id; a running session is closed by restart recovery, nothing is lost."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from wire.messages import Command, CommandAck, Status, decode, encode

    site = Site(tmp_path, broker)
    got: list[tuple[str, bytes]] = []
    hub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-hub-restart")
    hub.on_message = lambda c, u, m: got.append((m.topic, m.payload))
    hub.connect("127.0.0.1", broker.port)
    hub.subscribe([(cac_topic(CAC, Kind.STATUS), 1), (cac_topic(CAC, Kind.CMD_ACK), 1)])
    hub.loop_start()

    def boots() -> list[str]:
        return [decode(p, Status).boot_id for t, p in got
                if t.endswith("/status") and decode(p, Status).state == "online"]

    try:
        site.start_agent()
        until(boots, "the agent's online status", procs=(site.agent,))
        first_boot = boots()[-1]
        pid = site.agent.p.pid if site.agent.p else 0
        status, running = http("POST", f"{site.a}/sessions", {"station": "s2", "minutes": 30},
                               site.tok)
        assert status == 201
        hub.publish(cac_topic(CAC, Kind.CMD), encode(Command(id="r1", name="restart")), qos=1)
        ack = until(lambda: next((decode(p, CommandAck) for t, p in got
                                  if t.endswith("cmd/ack")), None), "the restart's answer",
                    procs=(site.agent,))
        assert (ack.id, ack.status) == ("r1", "done")
        until(lambda: any(b != first_boot for b in boots()), "a new boot id",
              procs=(site.agent,))
        assert site.agent.p is not None and site.agent.p.poll() is None
        assert site.agent.p.pid == pid  # exec'd in place: a supervisor keeps tracking it
        until(lambda: http("GET", f"{site.a}/health")[0] == 200, "the agent API again")
        status, body = http("POST", f"{site.a}/login", {"name": "op", "password": PASSWORD})
        assert status == 200
        status, stations = http("GET", f"{site.a}/stations", None, body["token"])
        assert next(s for s in stations if s["id"] == "s2")["session"] is None
        # the command is not run twice when re-delivered after the restart
        hub.publish(cac_topic(CAC, Kind.CMD), encode(Command(id="r1", name="restart")), qos=1)
        until(lambda: len([1 for t, _ in got if t.endswith("cmd/ack")]) >= 2,
              "the repeated command's answer", procs=(site.agent,))
        time.sleep(2.0)
        assert len(set(boots())) == 2
    finally:
        hub.loop_stop()
        hub.disconnect()
        site.agent.stop()
    ledger = Ledger(site.agent_data, CAC, ZoneInfo("Africa/Casablanca"), lock=False)
    recs = {r["id"]: r for r in ledger.records() if r["type"] == "session"}
    ledger.close()
    assert recs[running["id"]]["end_reason"] == "restart_recovery"
