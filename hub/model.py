"""The dashboard's fleet model: one flat row per CAC, rebuilt at most every ``MAX_AGE``.

Building rows for thousands of CACs costs milliseconds, and the page, its JSON refresh
and the region summary all use the same rows, so they are cached together with their JSON
encoding (``FleetModel.current``). Region: the second part of a CAC id with at least three
parts (``ma-oriental-oujda-001`` is in ``oriental``), else ``other``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from hub.fleet import CacView
from wire.messages import Uplink

MAX_AGE = 1.0  # seconds a built model is served before it is rebuilt
OTHER_REGION = "other"


def region_of(cac_id: str) -> str:
    parts = cac_id.split("-")
    return parts[1] if len(parts) >= 3 and parts[1] else OTHER_REGION


def _epoch(iso: object) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return dt.timestamp() if dt.tzinfo is not None else None


def row(c: CacView, now: float, sessions_today: int, alarms: int) -> dict[str, Any]:
    h = c.health
    content_age = None
    content_error = None
    stations_online = stations_total = stations_locked = 0
    cpu = mem = disk = temp = None
    if h is not None:
        cpu, mem, disk = h.cpu_percent, h.mem_percent, h.disk_percent
        temp = max(h.temps.values()) if h.temps else None
        last = _epoch(h.content.get("last_success_at")) if h.content else None
        content_age = None if last is None else round((now - last) / 3600, 1)
        content_error = h.content.get("error") if h.content else None
        stations_total = len(h.stations)
        stations_online = sum(1 for s in h.stations if s.online)
        stations_locked = sum(1 for s in h.stations if s.locked)
    return {
        "cac_id": c.cac_id, "region": region_of(c.cac_id), "online": c.online,
        "last_seen": c.last_seen, "cpu": cpu, "mem": mem, "disk": disk, "temp": temp,
        "version": c.version, "backlog": c.backlog, "content_age_h": content_age,
        "content_synced": bool(h is not None and h.content), "content_error": content_error,
        "sessions_today": sessions_today, "stations_online": stations_online,
        "stations_total": stations_total, "stations_locked": stations_locked,
        "alarms": alarms, "uplink": uplink_label(h.uplink if h is not None else None),
        "uplink_outage_s": h.uplink.last_outage_s if h is not None and h.uplink else None,
    }


def uplink_label(u: Uplink | None) -> str | None:
    """What the fleet view shows of a CAC's uplink: "internet up" / "internet down" when the
    agent probes the internet, "hub link only" when it does not, None for an older agent."""
    if u is None:
        return None
    if u.internet is None:
        return "hub link only"
    return "internet up" if u.internet else "internet down"


@dataclass
class Snapshot:
    built_at: float
    rows: list[dict[str, Any]]
    regions: list[dict[str, Any]]
    json: bytes = field(repr=False)

    @property
    def online(self) -> int:
        return sum(1 for r in self.rows if r["online"])


_encoder = msgspec.json.Encoder()


class FleetModel:
    """Caches the rows; ``sessions_today`` and ``alarm_counts`` are set by periodic tasks."""

    def __init__(self, views: Callable[[], Sequence[CacView]],
                 clock: Callable[[], float] = time.time, max_age: float = MAX_AGE) -> None:
        self.views = views
        self.clock = clock
        self.max_age = max_age
        self.sessions_today: dict[str, int] = {}
        self.alarm_counts: dict[str, int] = {}
        self._snap: Snapshot | None = None

    def invalidate(self) -> None:
        self._snap = None

    def current(self) -> Snapshot:
        now = self.clock()
        snap = self._snap
        if snap is not None and now - snap.built_at < self.max_age:
            return snap
        today, alarms = self.sessions_today, self.alarm_counts
        rows = [row(c, now, today.get(c.cac_id, 0), alarms.get(c.cac_id, 0))
                for c in self.views()]
        regions: dict[str, dict[str, Any]] = {}
        for r in rows:
            g = regions.setdefault(r["region"], {"region": r["region"], "cacs": 0,
                                                 "online": 0, "alarms": 0,
                                                 "sessions_today": 0})
            g["cacs"] += 1
            g["online"] += 1 if r["online"] else 0
            g["alarms"] += r["alarms"]
            g["sessions_today"] += r["sessions_today"]
        reg = [regions[k] for k in sorted(regions)]
        body = _encoder.encode({"at": now, "cacs": rows, "regions": reg})
        self._snap = Snapshot(now, rows, reg, body)
        return self._snap


def sessions_today(db: Any, day: str) -> dict[str, int]:
    """Session records per CAC whose ``at`` (the CAC's local time) is on ``day`` or later.
    ``db``: a sqlite3 connection, or a psycopg one (PostgreSQL store, ``%s`` parameters)."""
    sql = ("SELECT cac_id, COUNT(*) FROM records WHERE type = 'session' AND at >= ? "
           "GROUP BY cac_id")
    if not isinstance(db, sqlite3.Connection):
        sql = sql.replace("?", "%s")
    return {str(c): int(n) for c, n in db.execute(sql, (day,)).fetchall()}
