"""agent/systemd.py: sd_notify over a real unix datagram socket, and the real cac-agent under
a fake systemd (NOTIFY_SOCKET + WATCHDOG_USEC): READY=1, WATCHDOG=1 pings, STOPPING=1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port

from agent.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    # AF_UNIX paths are limited to ~107 bytes: pytest's tmp paths can be longer
    path = os.path.join(os.path.dirname(str(tmp_path))[:60], f"n{os.getpid()}.sock")
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)


def received(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(5)
    return out


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_no_notify_socket_is_a_no_op() -> None:
    n = Notifier(env={})
    assert not n.enabled
    assert n.watchdog_interval is None
    n.tick()
    n.stopping()
    assert n.notify("READY=1") is False


def test_ready_then_watchdog_every_half_interval(notify_socket: tuple[socket.socket, str]
                                                 ) -> None:
    sock, path = notify_socket
    clock = Clock()
    n = Notifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"}, monotonic=clock)
    assert n.enabled and n.watchdog_interval == 15.0
    n.tick()
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"
    clock.t += 14.9
    n.tick()
    assert received(sock) == []  # not due yet
    clock.t += 0.1
    n.tick()
    assert sock.recv(4096) == b"WATCHDOG=1"
    clock.t += 1
    n.tick()
    assert received(sock) == []


STOP_SCRIPT = """
import os, sys
from agent.systemd import Notifier
Notifier().stopping()
if sys.argv[1] == "exec":  # the agent's restart command: same PID, a new program
    os.execv(sys.executable, [sys.executable, "-c", "pass"])
"""


@pytest.mark.parametrize(("how", "expected"), [("exit", [b"STOPPING=1\nSTATUS=stopping"]),
                                               ("exec", [])])
def test_stopping_is_sent_at_exit_not_at_re_exec(
        notify_socket: tuple[socket.socket, str], how: str, expected: list[bytes]) -> None:
    sock, path = notify_socket
    subprocess.run([sys.executable, "-c", STOP_SCRIPT, how], check=True, timeout=30,
                   env={**os.environ, "NOTIFY_SOCKET": path},
                   cwd=Path(__file__).resolve().parents[2])
    assert [m.encode() for m in received(sock)] == expected


def test_watchdog_for_another_pid_is_ignored(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    n = Notifier(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000",
                      "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n.watchdog_interval is None
    n.tick()
    assert sock.recv(4096).startswith(b"READY=1")


def test_abstract_socket_address() -> None:
    name = f"cac-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier(env={"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert sock.recv(4096) == b"READY=1"


def test_gone_socket_does_not_raise(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier(env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.notify("WATCHDOG=1") is False
    assert n.notify("WATCHDOG=1") is False
    assert sum("cannot notify systemd" in r.message for r in caplog.records) == 1


def agent_toml(data_dir: Path, port: int) -> str:
    return f"""
cac_id = "ma-test-notify"
data_dir = "{data_dir}"
timezone = "Africa/Casablanca"
[mqtt]
host = "127.0.0.1"
port = {free_port()}
[http]
host = "127.0.0.1"
port = {port}
[[stations]]
id = "s1"
token = "station-one-token-0001"
[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 60
"""


def test_real_agent_notifies_ready_watchdog_stopping(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    """The cac-agent process as systemd runs it (Type=notify, WatchdogSec=2)."""
    sock, path = notify_socket
    cfg = tmp_path / "agent.toml"
    cfg.write_text(agent_toml(tmp_path / "data", free_port()))
    exe = shutil.which("cac-agent") or str(Path(sys.executable).parent / "cac-agent")
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([exe, "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t0 = time.monotonic()
        assert sock.recv(4096).startswith(b"READY=1"), "no READY=1"
        t_ready = time.monotonic() - t0
        pings = [sock.recv(4096), sock.recv(4096)]
        assert pings == [b"WATCHDOG=1", b"WATCHDOG=1"]
        proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096).startswith(b"STOPPING=1")
        assert proc.wait(timeout=15) == 0
        print(f"READY=1 {t_ready:.1f} s after start")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        assert proc.stderr is not None
        proc.stderr.close()
