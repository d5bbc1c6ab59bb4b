"""The site's uplink: is the hub reachable (the reporter's MQTT connection is up) and, when a
probe is configured (``[uplink] probe = ["HOST:PORT", ...]``), is the internet (a TCP
connection to one of the probes opens).

``UplinkState`` is the pure part (the state, when it last changed, how long the last outage
lasted), fed with observations and ``now``; ``UplinkMonitor`` runs the probe every
``interval_seconds`` on a thread and reads the reporter's connection. The state goes to the hub
in every health report (wire ``Uplink``) and to the station kiosks
(``GET /api/v1/stations/{sid}/uplink``): the citizen's browser start page says when the
internet is down.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from wire.config_check import ConfigError, check_int, no_unknown, string, table
from wire.messages import Uplink

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 60
DEFAULT_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class UplinkConfig:
    """``[uplink]`` of agent.toml: internet probes (none: only the hub link is known)."""

    probe: tuple[tuple[str, int], ...] = ()
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


def probe_tcp(targets: tuple[tuple[str, int], ...], timeout: float) -> bool:
    """Whether a TCP connection to any of ``targets`` opens within ``timeout`` each."""
    for host, port in targets:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError as exc:
            log.debug("uplink probe %s:%d: %s", host, port, exc)
    return False


class UplinkState:
    """What is known of the uplink, with the time it last changed (pure: ``now`` passed in).

    ``up`` is the internet when a probe says so, else the hub link; None when neither is
    known (no reporter, no probe)."""

    def __init__(self) -> None:
        self.hub: bool | None = None
        self.internet: bool | None = None
        self.checked_at: datetime | None = None
        self.changed_at: datetime | None = None
        self.down_since: datetime | None = None
        self.last_outage_s: float | None = None

    @property
    def up(self) -> bool | None:
        return self.internet if self.internet is not None else self.hub

    def observe(self, now: datetime, *, hub: bool | None = None,
                internet: bool | None = None) -> None:
        """Record what was seen at ``now`` (None leaves that part as it was)."""
        before = self.up
        if hub is not None:
            self.hub = hub
        if internet is not None:
            self.internet = internet
        self.checked_at = now
        after = self.up
        if after is None or after == before:
            return
        self.changed_at = now
        if after is False:
            self.down_since = now
        elif self.down_since is not None:
            self.last_outage_s = round((now - self.down_since).total_seconds(), 1)
            self.down_since = None

    def wire(self) -> Uplink:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return Uplink(up=self.up, hub=self.hub, internet=self.internet,
                      checked_at=iso(self.checked_at), changed_at=iso(self.changed_at),
                      last_outage_s=self.last_outage_s)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = msgspec.to_builtins(self.wire())
        return out


class UplinkMonitor:
    """Keeps ``UplinkState`` current: the hub link read from ``hub_connected`` (None: the
    agent does not report), the internet probed on a thread every ``interval_seconds``."""

    def __init__(self, cfg: UplinkConfig, hub_connected: Callable[[], bool] | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.cfg = cfg
        self.hub_connected = hub_connected
        self.clock = clock
        self.state = UplinkState()
        self._lock = threading.RLock()  # read from the service thread (health), written here
        self.probes = 0

    def refresh(self, internet: bool | None = None) -> UplinkState:
        """Read the hub link now (and record a probe result); the current state."""
        hub = None if self.hub_connected is None else bool(self.hub_connected())
        with self._lock:
            self.state.observe(self.clock(), hub=hub, internet=internet)
            return self.state

    def snapshot(self) -> dict[str, object]:
        """The state as JSON-ready data (for the health report and the kiosks)."""
        with self._lock:
            return self.refresh().as_dict()

    async def run(self) -> None:
        """Probe for ever (until cancelled)."""
        while True:
            internet = None
            if self.cfg.probe:
                t0 = time.monotonic()
                internet = await asyncio.to_thread(probe_tcp, self.cfg.probe,
                                                   self.cfg.timeout_seconds)
                self.probes += 1
                log.debug("uplink probe: %s in %.2f s", internet, time.monotonic() - t0)
            before = self.state.up
            after = self.refresh(internet).up
            if after is not None and after != before:
                log.info("uplink %s (hub %s, internet %s)", "up" if after else "down",
                         self.state.hub, self.state.internet)
            await asyncio.sleep(self.cfg.interval_seconds)

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: the probe loop runs while the application does."""
        task = asyncio.create_task(self.run(), name="uplink-probe")
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("uplink probe stopped by an error")


def parse_uplink(raw: object) -> UplinkConfig:
    """The optional ``[uplink]`` table: ``probe`` (list of "HOST:PORT"), ``interval_seconds``,
    ``timeout_seconds``."""
    t = table(raw, "uplink")
    no_unknown(t, {"probe", "interval_seconds", "timeout_seconds"}, "uplink")
    probes: list[tuple[str, int]] = []
    raw_probe = t.get("probe", [])
    if isinstance(raw_probe, str):
        raw_probe = [raw_probe]
    if not isinstance(raw_probe, list):
        raise ConfigError("uplink.probe", "must be a list of \"HOST:PORT\"")
    for i, item in enumerate(raw_probe):
        text = string(item, f"uplink.probe[{i}]")
        host, _, port = text.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"uplink.probe[{i}]", f"must be HOST:PORT, got {text!r}")
        probes.append((host, int(port)))
    return UplinkConfig(
        probe=tuple(probes),
        interval_seconds=check_int("uplink.interval_seconds",
                                   t.get("interval_seconds", DEFAULT_INTERVAL_SECONDS), 1, 86400),
        timeout_seconds=float(check_int("uplink.timeout_seconds",
                                        t.get("timeout_seconds", int(DEFAULT_TIMEOUT_SECONDS)),
                                        1, 60)),
    )


UPLINK = web.AppKey("uplink", UplinkMonitor)
