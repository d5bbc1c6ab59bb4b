"""Host and station health of a CAC site, sampled with psutil for the hub (wire ``Health``).

One sample costs well under a millisecond of CPU (FIELD-NOTES); it still does file-system and
/proc reads, so callers on the event loop run it in a thread.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psutil

from wire.messages import Health, StationHealth, Uplink

log = logging.getLogger(__name__)


@functools.cache
def _process() -> psutil.Process:
    """This process, one handle for its lifetime (psutil caches per handle)."""
    return psutil.Process()


def prime_cpu_percent() -> None:
    """Start psutil's CPU measurement: the first non-blocking call has nothing to compare to."""
    psutil.cpu_percent(None)


def temperatures() -> dict[str, float]:
    """The hottest reading of each sensor group ({} where the platform has no sensors)."""
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return {}
    try:
        groups = read()
    except (OSError, RuntimeError) as exc:  # unreadable sysfs entries on some boards
        log.debug("temperature sensors unreadable: %s", exc)
        return {}
    out: dict[str, float] = {}
    for name, entries in groups.items():
        values = [float(e.current) for e in entries if e.current is not None]
        if values:
            out[name] = round(max(values), 1)
    return out


def _stations(raw: object) -> list[StationHealth]:
    out = []
    for st in raw if isinstance(raw, list) else []:
        last = st.get("last_seen_s")
        out.append(StationHealth(
            id=str(st["id"]),
            online=bool(st.get("online", False)),
            last_seen_s=None if last is None else float(last),
            in_session=bool(st.get("in_session", False)),
            locked=bool(st.get("locked", False)),
        ))
    return out


def sample_health(data_dir: Path, service_snapshot: Mapping[str, Any], *, boot_id: str,
                  version: str, now: datetime | None = None,
                  boot_time: float | None = None) -> Health:
    """One health sample of this host and its stations.

    ``service_snapshot`` is ``AgentService.health_snapshot()``: {"backlog", "stations"}, with
    "uplink" added by the application (``UplinkMonitor.snapshot()``).
    ``now`` (aware) and ``boot_time`` (epoch seconds) default to the real ones; tests pass them.
    """
    now = now or datetime.now(UTC)
    booted = psutil.boot_time() if boot_time is None else boot_time
    mem = psutil.virtual_memory()
    disk = psutil.disk_usage(str(data_dir))
    net = psutil.net_io_counters()
    try:
        rss = int(_process().memory_info().rss)
    except psutil.Error:
        rss = 0
    return Health(
        at=now.isoformat(),
        boot_id=boot_id,
        version=version,
        uptime_s=round(max(0.0, now.timestamp() - booted), 1),
        cpu_percent=float(psutil.cpu_percent(None)),
        load=[round(x, 2) for x in psutil.getloadavg()],
        mem_percent=float(mem.percent),
        mem_total=int(mem.total),
        disk_percent=float(disk.percent),
        disk_free=int(disk.free),
        disk_total=int(disk.total),
        temps=temperatures(),
        net_sent=0 if net is None else int(net.bytes_sent),
        net_recv=0 if net is None else int(net.bytes_recv),
        agent_rss=rss,
        backlog=int(service_snapshot.get("backlog", 0)),
        stations=_stations(service_snapshot.get("stations", [])),
        content=dict(service_snapshot.get("content") or {}),
        tariff_version=int(service_snapshot.get("tariff_version", 0)),
        uplink=_uplink(service_snapshot.get("uplink")),
    )


def _uplink(raw: object) -> Uplink | None:
    """The snapshot's ``uplink`` (agent/uplink.py ``UplinkMonitor.snapshot``), if any."""
    if not isinstance(raw, Mapping):
        return None
    out: Uplink = msgspec.convert(dict(raw), Uplink)
    return out
