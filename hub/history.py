"""Health history, downsampled so it stays bounded.

Every health report adds one sample (cpu %, memory %, disk %, hottest temperature, backlog)
to the CAC's open one-minute bucket (``HistoryBuffer``, pure, in memory). When a minute is
over, its bucket (n, min/avg/max of each series) is written to ``health_1m`` and merged
into the hour's row of ``health_1h`` (min of mins, max of maxes, n-weighted average).
``prune`` keeps ``MINUTE_KEEP_SECONDS`` (24 h) of minute rows and ``HOUR_KEEP_SECONDS``
(30 days) of hour rows, so a CAC holds at most 1,440 + 720 rows whatever its uptime.

The ingest worker thread owns the buffer and writes it (``Ingest.flush``); pages read the
tables through their own connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hub.pgaux import POSTGRESQL, dialect
from hub.schema import METRICS
from wire.messages import Health

MINUTE = 60
HOUR = 3600
MINUTE_KEEP_SECONDS = 24 * HOUR
HOUR_KEEP_SECONDS = 30 * 24 * HOUR


def sample(health: Health) -> tuple[float | None, ...]:
    """The history values of one health report, in ``METRICS`` order."""
    temp = max(health.temps.values()) if health.temps else None
    return (health.cpu_percent, health.mem_percent, health.disk_percent, temp,
            float(health.backlog))


@dataclass
class Bucket:
    """n samples of one CAC in [t, t + width): per series (min, sum, max, count)."""

    cac_id: str
    t: int
    n: int
    mins: list[float | None]
    sums: list[float]
    maxs: list[float | None]
    counts: list[int]

    @classmethod
    def empty(cls, cac_id: str, t: int) -> Bucket:
        k = len(METRICS)
        return cls(cac_id, t, 0, [None] * k, [0.0] * k, [None] * k, [0] * k)

    def add(self, values: Sequence[float | None]) -> None:
        self.n += 1
        for i, v in enumerate(values):
            if v is None:
                continue
            lo, hi = self.mins[i], self.maxs[i]
            self.mins[i] = v if lo is None else min(lo, v)
            self.maxs[i] = v if hi is None else max(hi, v)
            self.sums[i] += v
            self.counts[i] += 1

    def row(self) -> tuple[object, ...]:
        out: list[object] = [self.cac_id, self.t, self.n]
        for i in range(len(METRICS)):
            avg = self.sums[i] / self.counts[i] if self.counts[i] else None
            out += [self.mins[i], avg, self.maxs[i]]
        return tuple(out)


class HistoryBuffer:
    """Open one-minute buckets, one per CAC. Pure: times are passed in."""

    def __init__(self) -> None:
        self._open: dict[str, Bucket] = {}
        self._closed: list[Bucket] = []  # finished by a later sample, not yet taken

    def __len__(self) -> int:
        return len(self._open) + len(self._closed)

    def add(self, cac_id: str, now: float, values: Sequence[float | None]) -> None:
        """Add a sample to the CAC's bucket of this minute (closing an older one)."""
        t = int(now // MINUTE) * MINUTE
        b = self._open.get(cac_id)
        if b is None or b.t != t:
            if b is not None:
                self._closed.append(b)
            b = self._open[cac_id] = Bucket.empty(cac_id, t)
        b.add(values)

    def take_closed(self, now: float, *, everything: bool = False) -> list[Bucket]:
        """Buckets whose minute is over at ``now`` (all of them with ``everything``)."""
        cur = int(now // MINUTE) * MINUTE
        done = [b for b in self._open.values() if everything or b.t < cur]
        for b in done:
            del self._open[b.cac_id]
        out, self._closed = self._closed + done, []
        return out


def _cols() -> list[str]:
    return [f"{m}_{s}" for m in METRICS for s in ("min", "avg", "max")]


_COLS = _cols()
_PLACEHOLDERS = ", ".join("?" * (3 + len(_COLS)))
_INSERT_1M = (f"INSERT INTO health_1m (cac_id, t, n, {', '.join(_COLS)}) "  # noqa: S608
              f"VALUES ({_PLACEHOLDERS}) ON CONFLICT (cac_id, t) DO UPDATE SET "
              + ", ".join(f"{c} = excluded.{c}" for c in ("n", *_COLS)))


def _merge_sql(least: str = "MIN", greatest: str = "MAX") -> str:
    sets = ["n = health_1h.n + excluded.n"]
    for m in METRICS:
        old, new = f"health_1h.{m}", f"excluded.{m}"
        sets.append(f"{m}_min = CASE WHEN {old}_min IS NULL THEN {new}_min "
                    f"WHEN {new}_min IS NULL THEN {old}_min "
                    f"ELSE {least}({old}_min, {new}_min) END")
        sets.append(f"{m}_max = CASE WHEN {old}_max IS NULL THEN {new}_max "
                    f"WHEN {new}_max IS NULL THEN {old}_max "
                    f"ELSE {greatest}({old}_max, {new}_max) END")
        sets.append(f"{m}_avg = CASE WHEN {old}_avg IS NULL THEN {new}_avg "
                    f"WHEN {new}_avg IS NULL THEN {old}_avg "
                    f"ELSE ({old}_avg * health_1h.n + {new}_avg * excluded.n) "
                    f"/ (health_1h.n + excluded.n) END")
    return (f"INSERT INTO health_1h (cac_id, t, n, {', '.join(_COLS)}) "  # noqa: S608
            f"VALUES ({_PLACEHOLDERS}) ON CONFLICT (cac_id, t) DO UPDATE SET "
            + ", ".join(sets))


_MERGE_1H = _merge_sql()  # SQLite's scalar MIN/MAX; PostgreSQL's are LEAST/GREATEST
_MERGE_1H_PG = _merge_sql("LEAST", "GREATEST")


def write(db: sqlite3.Connection, buckets: Iterable[Bucket]) -> int:
    """Write closed minute buckets and fold them into their hours (caller holds a tx)."""
    n = 0
    merge = _MERGE_1H_PG if dialect(db) == POSTGRESQL else _MERGE_1H
    for b in buckets:
        row = b.row()
        db.execute(_INSERT_1M, row)
        db.execute(merge, (row[0], int(b.t // HOUR) * HOUR, *row[2:]))
        n += 1
    return n


def prune(db: sqlite3.Connection, now: float) -> int:
    """Drop minute rows older than 24 h and hour rows older than 30 days."""
    a = db.execute("DELETE FROM health_1m WHERE t < ?", (now - MINUTE_KEEP_SECONDS,)).rowcount
    b = db.execute("DELETE FROM health_1h WHERE t < ?", (now - HOUR_KEEP_SECONDS,)).rowcount
    return int(a) + int(b)


@dataclass(frozen=True)
class Point:
    t: int
    n: int
    values: dict[str, tuple[float | None, float | None, float | None]]  # series: min, avg, max


def series(db: sqlite3.Connection, cac_id: str, since: float, *, hourly: bool) -> list[Point]:
    """The CAC's buckets from ``since`` on, oldest first."""
    table = "health_1h" if hourly else "health_1m"
    rows = db.execute(f"SELECT t, n, {', '.join(_COLS)} FROM {table} "  # noqa: S608 - fixed names
                      "WHERE cac_id = ? AND t >= ? ORDER BY t", (cac_id, since)).fetchall()
    out = []
    for r in rows:
        vals = {m: (r[2 + 3 * i], r[3 + 3 * i], r[4 + 3 * i]) for i, m in enumerate(METRICS)}
        out.append(Point(int(r[0]), int(r[1]), vals))
    return out
