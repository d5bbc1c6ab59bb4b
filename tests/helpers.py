"""Plain helpers shared by the tests (imported by conftest.py and by test modules).

`free_port()` finds a TCP port nobody listens on; `MosquittoBroker` runs a real Mosquitto
binary on 127.0.0.1 with a generated config, for tests that need a broker (DESIGN: real parts).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

MOSQUITTO_FALLBACKS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
READY_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if a TCP connection to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_mosquitto() -> str | None:
    """Path of the mosquitto broker binary, or None (it lives in /usr/sbin on Debian)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in MOSQUITTO_FALLBACKS:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class BrokerError(RuntimeError):
    """The broker could not be started (the message includes the tail of its log)."""


class MosquittoBroker:
    """A real Mosquitto process on 127.0.0.1:port, config and log kept in `workdir`.

    `start()` (re)starts it on the same port; `stop()` ends it (SIGTERM, then SIGKILL);
    `kill()` ends it with SIGKILL at once, like a crash. `extra_config` lines are appended
    to the generated config (e.g. "max_queued_messages 100000").
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        binary: str | None = None,
        extra_config: tuple[str, ...] = (),
    ) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise BrokerError(
                "the mosquitto broker binary was not found on PATH nor in /usr/sbin; "
                "install it with: apt-get install mosquitto (scripts/setup.sh does this as root)"
            )
        self.binary = found
        self.host = "127.0.0.1"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port(self.host)
        self.extra_config = tuple(extra_config)
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    # ------------------------------------------------------------------ state

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def log_text(self) -> str:
        """The broker's log so far (its log file plus anything it printed)."""
        parts = []
        for p in (self.log_path, self.workdir / "mosquitto.out"):
            with contextlib.suppress(FileNotFoundError):
                parts.append(p.read_text(errors="replace"))
        return "".join(parts)

    # ------------------------------------------------------------------ control

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # As root mosquitto would switch to user "mosquitto", which cannot write a log
            # in pytest's private tmp dir.
            lines.append("user root")
        lines.extend(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the broker (again) and wait until its port accepts connections."""
        if self.running:
            return
        self._reap()
        attempts = 1 if self._fixed_port else 3
        last_error: BrokerError | None = None
        for _ in range(attempts):
            try:
                self._start_once()
                return
            except BrokerError as exc:  # e.g. the "free" port was taken meanwhile
                last_error = exc
                if self._fixed_port:
                    break
                self.port = free_port(self.host)
        assert last_error is not None
        raise last_error

    def _running_lines(self) -> int:
        """How many times the log says the broker is up ("mosquitto version X running")."""
        return sum(
            1 for line in self.log_text().splitlines()
            if "mosquitto version" in line and line.rstrip().endswith(" running")
        )

    def _start_once(self) -> None:
        if port_accepts(self.host, self.port):
            raise BrokerError(f"port {self.host}:{self.port} is already in use by another program")
        self._write_config()
        seen = self._running_lines()
        self._out = (self.workdir / "mosquitto.out").open("ab")
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._reap()
                raise BrokerError(
                    f"mosquitto exited with status {code} before accepting connections on "
                    f"{self.host}:{self.port}; log:\n{self.log_text()[-2000:]}"
                )
            # ready: this process logged that it runs (all listeners bound) and the port answers
            if self._running_lines() > seen and port_accepts(self.host, self.port):
                self._fixed_port = True  # restarts reuse this port
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(
            f"mosquitto did not accept connections on {self.host}:{self.port} within "
            f"{READY_TIMEOUT:.0f} s; log:\n{self.log_text()[-2000:]}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Terminate the broker by PID: SIGTERM, wait, SIGKILL if it lingers."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._reap()

    def kill(self) -> None:
        """End the broker with SIGKILL (a crash: no clean disconnects, no last words)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        self._reap()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _reap(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<MosquittoBroker {self.host}:{self.port} {state}>"


def start_broker(workdir: Path, extra_config: tuple[str, ...] = ()) -> MosquittoBroker:
    """A started broker for the fixtures; a missing or failing mosquitto fails the test (the
    README promises it fails, it is never skipped)."""
    import pytest

    try:
        broker = MosquittoBroker(workdir, extra_config=extra_config)
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"cannot start a real mosquitto broker: {exc}", pytrace=False)
    return broker


# ---------------------------------------------------------------- project commands as processes

WAIT = 30.0


class Proc:
    """A project command run as a real process, ended by its PID."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name, self.args, self.log = name, args, log
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.p = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)

    def signal(self, sig: int) -> None:
        if self.p is not None and self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def kill9(self) -> None:
        if self.p is not None and self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait(10)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGCONT)
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def http(method: str, url: str, body: Any = None, tok: str | None = None,
         timeout: float = 5) -> tuple[int, Any]:
    """A JSON request to a local API: (status, decoded body), errors included."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if tok:
        req.add_header("Authorization", f"Bearer {tok}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def until(cond: Callable[[], Any], what: str, timeout: float = WAIT,
          procs: tuple[Proc, ...] = ()) -> Any:
    """Poll ``cond`` until it gives something true (returned), or fail with the logs of
    ``procs``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = cond()
        except (OSError, urllib.error.URLError, ValueError):
            got = None
        if got:
            return got
        time.sleep(0.1)
    import pytest

    logs = "\n".join(f"--- {p.name} ---\n{p.tail()}" for p in procs)
    pytest.fail(f"timed out waiting for {what}\n{logs}")
