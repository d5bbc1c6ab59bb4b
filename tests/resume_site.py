"""A real `cac-agent` process and a real `cac-kiosk` process on one station, for the resume
test (tests/kiosk/test_resume_real.py) and its benchmark (bench/resume.py): spawn, kill -9
by PID, read the kiosk's --trace. Every process is ended by its PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from helpers import free_port

BIN = Path(sys.executable).parent
TOKEN = "resume-site-station-token-1"
PASSWORD = "resume-site-pass"


def wait(cond: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll ``cond`` until it gives something true; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = cond()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.01)
    raise RuntimeError(f"timed out waiting for {what}")


class ResumeSite:
    def __init__(self, tmp: Path, env: dict[str, str], extra_toml: str = "") -> None:
        self.tmp, self.env = tmp, env
        port = free_port()
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.config = tmp / "agent.toml"
        self.config.write_text(f"""\
cac_id = "resume-site-001"
data_dir = "{tmp / 'data'}"
timezone = "Africa/Casablanca"
checkpoint_seconds = 1

[mqtt]
host = "127.0.0.1"
port = {free_port()}

[http]
host = "127.0.0.1"
port = {port}

[[stations]]
id = "s1"
token = "{TOKEN}"

[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 60
""" + extra_toml)
        subprocess.run([str(BIN / "cac-agent"), "add-operator", "--config", str(self.config),
                        "--name", "op", "--role", "operator", "--password-stdin"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True,
                       timeout=60)
        self.trace = tmp / "trace.jsonl"
        self.agent: subprocess.Popen[bytes] | None = None
        self.kiosk: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] = (tmp / "agent.log").open("ab")
        self.token = ""

    def http(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback only
            return json.loads(r.read())

    def start_agent(self) -> float:
        """Spawn the agent; wait until it answers and log in. The spawn time (epoch)."""
        t0 = time.time()
        self.agent = subprocess.Popen([str(BIN / "cac-agent"), "--config", str(self.config)],
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        wait(lambda: self.http("GET", "/health"), "the agent")
        self.token = ""
        self.token = self.http("POST", "/login", {"name": "op", "password": PASSWORD})["token"]
        return t0

    def kill_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            os.kill(self.agent.pid, signal.SIGKILL)
            self.agent.wait(10)

    def start_kiosk(self, lang: str = "fr") -> None:
        self.kiosk = subprocess.Popen(
            [str(BIN / "cac-kiosk"), "--agent", self.base.rsplit("/api", 1)[0], "--station",
             "s1", "--token", TOKEN, "--windowed", "--lang", lang, "--trace", str(self.trace)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def events(self) -> list[dict[str, Any]]:
        if not self.trace.is_file():
            return []
        return [json.loads(line) for line in self.trace.read_text().splitlines()]

    def seen(self, session_id: str, after: float) -> float | None:
        """When the kiosk first applied an answer holding ``session_id`` after ``after``."""
        for ev in self.events():
            if ev["event"] == "session_view" and ev.get("id") == session_id \
                    and ev["t"] > after:
                return float(ev["t"])
        return None

    def screen(self) -> str | None:
        names = [ev["name"] for ev in self.events() if ev["event"] == "screen"]
        return names[-1] if names else None

    def close(self) -> None:
        for p in (self.kiosk, self.agent):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
        self._log.close()
