"""Alarm rules (pure) and the alarm book (raised, cleared, acknowledged, kept in the store).

Rules, thresholds from ``[alarms]`` (``AlarmConfig``; 0 turns a rule off except ``offline``):

- ``offline``: the CAC is offline and was last heard ``offline_minutes`` ago or more
  (0: as soon as it is offline).
- ``disk``: disk use above ``disk_percent``.
- ``temperature``: the hottest sensor above ``temperature_c``.
- ``backlog``: the unacknowledged usage backlog is ``backlog_records`` or more, or it grew at
  each of the last ``backlog_samples`` health reports.
- ``clock_skew``: the agent's clock (health ``at``) and the hub's receive time differ by more
  than ``clock_skew_seconds``.
- ``content_stale``: the content cache last synced successfully ``content_stale_hours`` ago
  or more (or never, once the CAC is known that long).

Health-based rules only look at an online CAC's latest report. An alarm is raised when its
condition appears and cleared when it goes; a technician may acknowledge it meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise

from hub.config import AlarmConfig
from hub.fleet import CacView

KINDS = ("offline", "disk", "temperature", "backlog", "clock_skew", "content_stale")


@dataclass(frozen=True)
class Condition:
    cac_id: str
    kind: str
    message: str


@dataclass(frozen=True)
class Alarm:
    id: int
    cac_id: str
    kind: str
    message: str
    raised_at: float
    cleared_at: float | None = None
    acked_by: str | None = None
    acked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None


def _epoch(iso: object) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return dt.timestamp()


def conditions(c: CacView, now: float, cfg: AlarmConfig,
               backlogs: Sequence[int] = ()) -> list[Condition]:
    """What is wrong with one CAC at ``now``; ``backlogs``: its recent backlog samples."""
    out = []
    if not c.online:
        if c.last_seen is not None and now - c.last_seen >= cfg.offline_minutes * 60:
            mins = int((now - c.last_seen) // 60)
            out.append(Condition(c.cac_id, "offline", f"offline, last heard {mins} min ago"))
        return out
    h = c.health
    if h is None:
        return out
    if cfg.disk_percent and h.disk_percent > cfg.disk_percent:
        out.append(Condition(c.cac_id, "disk",
                             f"disk {h.disk_percent:.0f}% full (limit {cfg.disk_percent}%)"))
    if cfg.temperature_c and h.temps:
        hottest = max(h.temps.values())
        if hottest > cfg.temperature_c:
            out.append(Condition(c.cac_id, "temperature",
                                 f"temperature {hottest:.0f} °C (limit {cfg.temperature_c})"))
    if cfg.backlog_records and h.backlog >= cfg.backlog_records:
        out.append(Condition(c.cac_id, "backlog", f"{h.backlog} usage records unacknowledged"))
    elif cfg.backlog_samples and len(backlogs) > cfg.backlog_samples and all(
            b > a for a, b in pairwise(list(backlogs)[-cfg.backlog_samples - 1:])):
        out.append(Condition(c.cac_id, "backlog",
                             f"backlog grew at each of the last {cfg.backlog_samples} "
                             f"reports (now {h.backlog})"))
    if cfg.clock_skew_seconds and c.health_seen is not None:
        at = _epoch(h.at)
        if at is not None and abs(at - c.health_seen) > cfg.clock_skew_seconds:
            out.append(Condition(c.cac_id, "clock_skew",
                                 f"clock off by {at - c.health_seen:+.0f} s"))
    if cfg.content_stale_hours and h.content:
        limit = cfg.content_stale_hours * 3600
        last = _epoch(h.content.get("last_success_at"))
        if last is not None and now - last >= limit:
            out.append(Condition(c.cac_id, "content_stale",
                                 f"content last synced {int((now - last) // 3600)} h ago"))
        elif last is None and now - c.first_seen >= limit:
            out.append(Condition(c.cac_id, "content_stale", "content never synced"))
    return out


class AlarmBook:
    """Active alarms in memory (restored from the store); ``evaluate`` says what changed.

    Pure apart from the caller writing ``evaluate``'s results with ``save``.
    """

    def __init__(self, cfg: AlarmConfig, active: Iterable[Alarm] = ()) -> None:
        self.cfg = cfg
        self.active: dict[tuple[str, str], Alarm] = {(a.cac_id, a.kind): a for a in active}
        self._backlogs: dict[str, deque[int]] = {}
        self._seen: dict[str, float | None] = {}

    def _track_backlog(self, c: CacView) -> Sequence[int]:
        if c.health is None:
            return ()
        q = self._backlogs.get(c.cac_id)
        if q is None:
            q = self._backlogs[c.cac_id] = deque(maxlen=max(2, self.cfg.backlog_samples + 1))
        if self._seen.get(c.cac_id) != c.health_seen:
            self._seen[c.cac_id] = c.health_seen
            q.append(c.health.backlog)
        return q

    def evaluate(self, views: Iterable[CacView], now: float
                 ) -> tuple[list[Condition], list[Alarm]]:
        """(conditions to raise as new alarms, active alarms now cleared with ``now``)."""
        found: dict[tuple[str, str], Condition] = {}
        for c in views:
            for cond in conditions(c, now, self.cfg, self._track_backlog(c)):
                found[(cond.cac_id, cond.kind)] = cond
        raised = [cond for key, cond in found.items() if key not in self.active]
        cleared = [replace(a, cleared_at=now) for key, a in self.active.items()
                   if key not in found]
        for a in cleared:
            del self.active[(a.cac_id, a.kind)]
        return raised, cleared

    def opened(self, alarm: Alarm) -> None:
        self.active[(alarm.cac_id, alarm.kind)] = alarm

    def count_by_cac(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cac_id, _ in self.active:
            out[cac_id] = out.get(cac_id, 0) + 1
        return out


# ---------------------------------------------------------------- store (caller's thread)

_COLS = "id, cac_id, kind, message, raised_at, cleared_at, acked_by, acked_at"


def _alarm(row: Sequence[object]) -> Alarm:
    return Alarm(*row)  # type: ignore[arg-type]


def save(db: sqlite3.Connection, raised: Iterable[Condition], cleared: Iterable[Alarm],
         now: float) -> list[Alarm]:
    """Insert the new alarms and close the cleared ones (caller holds a tx); returns new."""
    out = []
    for a in cleared:
        db.execute("UPDATE alarms SET cleared_at = ? WHERE id = ?", (a.cleared_at, a.id))
    for cond in raised:
        row = db.execute("INSERT INTO alarms (cac_id, kind, message, raised_at) "
                         "VALUES (?, ?, ?, ?) RETURNING id",
                         (cond.cac_id, cond.kind, cond.message, now)).fetchone()
        out.append(Alarm(int(row[0]), cond.cac_id, cond.kind, cond.message, now))
    return out


def load_active(db: sqlite3.Connection) -> list[Alarm]:
    return [_alarm(r) for r in db.execute(
        f"SELECT {_COLS} FROM alarms WHERE cleared_at IS NULL ORDER BY id")]  # noqa: S608


def listing(db: sqlite3.Connection, *, cac_id: str | None = None, limit: int = 500
            ) -> list[Alarm]:
    """Active alarms first (newest first), then the most recent cleared ones."""
    where, args = ("WHERE cac_id = ?", (cac_id,)) if cac_id else ("", ())
    rows = db.execute(f"SELECT {_COLS} FROM alarms {where} "  # noqa: S608 - fixed text
                      "ORDER BY cleared_at IS NOT NULL, id DESC LIMIT ?", (*args, limit))
    return [_alarm(r) for r in rows]


def acknowledge(db: sqlite3.Connection, alarm_id: int, who: str, now: float) -> bool:
    cur = db.execute("UPDATE alarms SET acked_by = ?, acked_at = ? "
                     "WHERE id = ? AND acked_by IS NULL", (who, now, alarm_id))
    return cur.rowcount == 1
