"""Helpers for the provisioning tests: run `cac-provision`, start Mosquitto from the files it
wrote, and paho clients that record what the broker let through."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from helpers import MosquittoBroker, free_port
from paho.mqtt.enums import CallbackAPIVersion

BIN = Path(sys.executable).parent
TIMEOUT = 5.0


def provision(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the installed `cac-provision` command."""
    r = subprocess.run([str(BIN / "cac-provision"), *map(str, args)], capture_output=True,
                       text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def init_hub(root: Path, *extra: str, port: int | None = None) -> int:
    """A provisioned hub on 127.0.0.1 and a free port; returns the port."""
    port = port or free_port()
    provision("init-hub", "--dir", root, "--mqtt-port", str(port), "--bind", "127.0.0.1",
              "--http-port", str(free_port()), *extra)
    return port


def read_toml(path: Path) -> dict[str, Any]:
    import tomllib
    with path.open("rb") as f:
        return tomllib.load(f)


class ProvisionedBroker(MosquittoBroker):
    """A real Mosquitto run with `DIR/mosquitto.conf` exactly as cac-provision wrote it."""

    def __init__(self, root: Path) -> None:
        conf = (root / "mosquitto.conf").read_text()
        m = re.search(r"^listener (\d+)", conf, re.MULTILINE)
        assert m, conf
        super().__init__(root.parent / f"{root.name}-broker-run", port=int(m.group(1)))
        self.config_path = root / "mosquitto.conf"

    def _write_config(self) -> None:
        pass  # run the generated file untouched

    def hup(self) -> None:
        """SIGHUP: reload the password and ACL files."""
        assert self.pid is not None
        seen = self.log_text().count("Reloading config")
        os.kill(self.pid, 1)
        deadline = time.monotonic() + TIMEOUT
        while self.log_text().count("Reloading config") == seen:
            assert time.monotonic() < deadline, "broker did not reload"
            time.sleep(0.02)


class Client:
    """A paho client that records its CONNACK, messages, SUBACKs and disconnects."""

    def __init__(self, port: int, username: str | None, password: str | None, *,
                 client_id: str = "", ca_file: Path | None = None, tls: bool = False,
                 protocol: int = mqtt.MQTTv311) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=protocol, reconnect_on_failure=False)
        if username is not None:
            self.c.username_pw_set(username, password)
        if tls or ca_file is not None:
            self.c.tls_set_context(ssl.create_default_context(
                cafile=str(ca_file) if ca_file else None))
        self.port = port
        self.connack: Any = None
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subacks: list[Any] = []
        self.disconnects: list[Any] = []
        self._ev = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, m.retain))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.extend(rcs)
        self.c.on_disconnect = self._on_disconnect

    def _on_connect(self, c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
        self.connack = rc
        self._ev.set()

    def _on_disconnect(self, c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
        self.disconnects.append(rc)
        self._ev.set()

    def connect(self) -> bool:
        """Connect; True if the broker accepted us (False: refused or closed)."""
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        assert self._ev.wait(TIMEOUT), "no CONNACK"
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, *filters: str) -> None:
        n = len(self.subacks)
        self.c.subscribe([(f, 1) for f in filters])
        wait_for(lambda: len(self.subacks) >= n + len(filters), "SUBACK")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(TIMEOUT)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def wait_for(cond: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Proc:
    """A project command run as a real process (output to a log file), ended by its PID."""

    def __init__(self, log: Path, *args: str | Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.p = subprocess.Popen([str(a) for a in args], stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
