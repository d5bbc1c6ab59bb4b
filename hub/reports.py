"""Usage and revenue reports from the stored records: aggregates only, no personal data.

Per CAC and day (the CAC's local date: each record names the CAC's time zone in ``tz``, and
the agent writes UTC times, so the day and hour are those of the UTC instant seen in that
zone; a record without ``tz`` counts by its timestamp's own offset. A session counts on the
day it ended, a sale or void on the day it happened): sessions,
billed seconds and minutes, session fees, voucher sales, voids, counter sales and their
voids (issue 17), and revenue = fees + voucher sales - voids + counter sales + sale voids
(negative), in centimes. Sessions by hour of day count sessions by the local hour they
started. Station ids, session ids and voucher codes never appear.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.model import region_of

DAY_RE = r"\d{4}-\d{2}-\d{2}"


@dataclass
class DailyRow:
    cac_id: str
    day: str
    currency: str
    sessions: int = 0
    billed_seconds: int = 0
    billed_minutes: int = 0
    session_fees: int = 0
    voucher_sales: int = 0
    voucher_sales_amount: int = 0
    voids: int = 0
    voids_amount: int = 0
    # the till (issue 17): counter sales (cash or on a session's bill) and their voids
    # (sale_voids_amount is negative); revenue counts them too, and stays the last column
    sales: int = 0
    sales_amount: int = 0
    sale_voids: int = 0
    sale_voids_amount: int = 0
    revenue: int = 0


# Grouped by the minute of the UTC (or offset) timestamp and the record's zone: a handful
# of rows per CAC and minute, turned into local days in Python (SQLite knows no zones).
_DAILY_SQL = """
SELECT cac_id, type,
       CASE type WHEN 'session' THEN json_extract(json, '$.ended_at') ELSE at END AS ts,
       json_extract(json, '$.tz') AS tz,
       json_extract(json, '$.currency') AS currency,
       COUNT(*),
       COALESCE(SUM(json_extract(json, '$.billed_seconds')), 0),
       COALESCE(SUM(CASE type WHEN 'session' THEN json_extract(json, '$.fee')
                               WHEN 'voucher_sale' THEN json_extract(json, '$.price')
                               ELSE json_extract(json, '$.amount') END), 0)
FROM records
WHERE (:cac IS NULL OR cac_id = :cac)
GROUP BY cac_id, type, substr(ts, 1, 16), substr(ts, 20), tz, currency
"""


@lru_cache(maxsize=256)
def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):  # not a zone this hub knows: use the offset
        return None


def local_time(ts: object, tz: object) -> datetime | None:
    """The record's wall-clock time at the CAC: ``ts`` (ISO 8601 with an offset) seen in
    the zone ``tz``; without a known zone, as written. None for a malformed timestamp."""
    if not isinstance(ts, str):
        return None
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return None
    zone = _zone(tz if isinstance(tz, str) else None)
    if zone is None or when.tzinfo is None:
        return when
    return when.astimezone(zone)


def _local_day(ts: object, tz: object) -> str:
    when = local_time(ts, tz)
    return when.date().isoformat() if when is not None else "?"


def daily(db: sqlite3.Connection, *, since: str | None = None, until: str | None = None,
          cac_id: str | None = None, region: str | None = None) -> list[DailyRow]:
    """Rows per (CAC, local day, currency), by CAC then day; ``since``/``until`` inclusive."""
    out: dict[tuple[str, str, str], DailyRow] = {}
    for cac, typ, ts, tz, currency, n, secs, amount in db.execute(
            _DAILY_SQL, {"cac": cac_id}):
        day = _local_day(ts, tz)
        if (since and day < since) or (until and day > until):
            continue
        key = (cac, day, currency or "")
        row = out.get(key) or DailyRow(cac, day, currency or "")
        out[key] = row
        if typ == "session":
            row.sessions += n
            row.billed_seconds += secs
            row.session_fees += amount
        elif typ == "voucher_sale":
            row.voucher_sales += n
            row.voucher_sales_amount += amount
        elif typ == "void":
            row.voids += n
            row.voids_amount += amount
        elif typ == "sale":
            row.sales += n
            row.sales_amount += amount
        elif typ == "sale_void":
            row.sale_voids += n
            row.sale_voids_amount += amount
    rows = [out[k] for k in sorted(out)]
    for r in rows:
        r.billed_minutes = r.billed_seconds // 60
        r.revenue = (r.session_fees + r.voucher_sales_amount - r.voids_amount
                     + r.sales_amount + r.sale_voids_amount)
    if region is not None:
        rows = [r for r in rows if region_of(r.cac_id) == region]
    return rows


def totals(rows: Iterable[DailyRow]) -> dict[str, int]:
    keys = [f.name for f in fields(DailyRow)][3:]
    out = dict.fromkeys(keys, 0)
    for r in rows:
        for k in keys:
            out[k] += getattr(r, k)
    return out


def by_hour(db: sqlite3.Connection, *, since: str | None = None, until: str | None = None,
            cac_id: str | None = None) -> list[int]:
    """Sessions by the local hour of day they started (24 counts), for sessions that ended
    on a local day within ``since``/``until``."""
    counts = [0] * 24
    for started, ended, tz, n in db.execute(
            "SELECT json_extract(json, '$.started_at') AS s, json_extract(json, '$.ended_at') "
            "AS e, json_extract(json, '$.tz') AS tz, COUNT(*) FROM records "
            "WHERE type = 'session' AND (:cac IS NULL OR cac_id = :cac) "
            "GROUP BY substr(s, 1, 16), substr(s, 20), substr(e, 1, 16), substr(e, 20), tz",
            {"cac": cac_id}):
        day = _local_day(ended, tz)
        if (since and day < since) or (until and day > until):
            continue
        start = local_time(started, tz)
        if start is not None:
            counts[start.hour] += n
    return counts


def csv_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (= + - @, TAB, CR first) gets a
    leading apostrophe (OWASP "CSV injection"); numbers stay numbers (issue 16)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def daily_csv(rows: Sequence[DailyRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([f.name for f in fields(DailyRow)])
    for r in rows:
        w.writerow([csv_cell(v) for v in astuple(r)])
    return buf.getvalue()


def hourly_csv(counts: Sequence[int]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["hour", "sessions"])
    for h, n in enumerate(counts):
        w.writerow([f"{h:02d}", n])
    return buf.getvalue()
