"""sd_notify for the agent under systemd (Type=notify, WatchdogSec=): a no-op elsewhere.

The agent's ticker calls `Notifier.tick()` after each successful session tick: the first one
sends READY=1 (by then the HTTP site is listening and the service thread has answered), later
ones send WATCHDOG=1 every half WATCHDOG_USEC. A hung service thread stops the ticker, the
pings stop, and systemd restarts the agent. STOPPING=1 is sent when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Datagrams to $NOTIFY_SOCKET; every method does nothing when that is unset."""

    def __init__(self, env: Mapping[str, str] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if env is None else env
        self._monotonic = monotonic
        self._address: str | None = None
        raw = env.get("NOTIFY_SOCKET", "")
        if raw.startswith("@"):  # abstract namespace socket
            self._address = "\0" + raw[1:]
        elif raw.startswith("/"):
            self._address = raw
        elif raw:
            log.warning("ignoring NOTIFY_SOCKET %r: not a unix socket path", raw)
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if self._address and usec.isdigit() and int(usec) > 0 \
                and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 2_000_000
        self._ready = False
        self._last_ping = 0.0
        self._failed = False
        self._stop_registered = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, state: str) -> bool:
        """Send one state message ("READY=1", ...); False if it could not be sent."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(state.encode())
        except OSError as exc:
            if not self._failed:  # log once, not once a second
                log.warning("cannot notify systemd: %s", exc)
                self._failed = True
            return False
        self._failed = False
        return True

    def tick(self) -> None:
        """Call after each healthy tick: READY=1 the first time, then WATCHDOG=1 when due."""
        if self._address is None:
            return
        now = self._monotonic()
        if not self._ready:
            self._ready = self.notify("READY=1\nSTATUS=serving")
            self._last_ping = now
            return
        if self.watchdog_interval is not None \
                and now - self._last_ping >= self.watchdog_interval \
                and self.notify("WATCHDOG=1"):
            self._last_ping = now

    def stopping(self) -> None:
        """Shutdown has begun: STOPPING=1 is sent when the process really exits. Not now,
        because on the hub's ``restart`` command the agent execs itself (same PID, see
        agent/cli.py) and systemd would wait for an exit that never comes, then kill it."""
        if self._address is not None and not self._stop_registered:
            self._stop_registered = True
            atexit.register(self.notify, "STOPPING=1\nSTATUS=stopping")
