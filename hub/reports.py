"""Usage and revenue reports from the stored records: aggregates only, no personal data.

Per CAC and day (the CAC's local date: each record names the CAC's time zone in ``tz``, and
the agent writes UTC times, so the day and hour are those of the UTC instant seen in that
zone; a record without ``tz`` counts by its timestamp's own offset. A session counts on the
day it ended, a sale or void on the day it happened): sessions,
billed seconds and minutes, session fees, voucher sales, voids, counter sales and their
voids (issue 17), and revenue = fees + voucher sales - voids + counter sales + sale voids
(negative), in centimes. Sessions by hour of day count sessions by the local hour they
started. Station ids, session ids and voucher codes never appear.

Revenue split (CONTRACT §9, issue 17): time = ``session_fees``; vouchers =
``voucher_sales_amount - voids_amount``; counter sales = ``sales_amount`` of which
``prints_amount`` (sale records with ``print_job`` set: released CUPS jobs, ``print_pages``
pages) and ``sale_voids_amount`` (negative); by item, ``DailyRow.items`` maps each catalogue
item id to its sales, quantity, amount, voids, voided quantity and voided amount (the JSON
API's ``items`` object, and ``items_csv``: one line per CAC, day and item).

Both stores: the same grouped query for SQLite (``json_extract``) and PostgreSQL
(``json::jsonb ->>``), chosen by the connection's type; the grouping into local days is the
same Python code for both.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import lru_cache
from typing import Any
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
    # released print jobs (sale records with print_job): part of sales/sales_amount above
    prints: int = 0
    print_pages: int = 0
    prints_amount: int = 0
    revenue: int = 0
    # by catalogue item id: sales, quantity, amount, voids, voided_quantity, voids_amount
    # (negative), unit; not a CSV column (see items_csv), an object in the JSON
    items: dict[str, dict[str, Any]] = field(default_factory=dict)


# the flat CSV's columns, in order: everything but ``items``; revenue is the last
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(DailyRow) if f.name != "items")
ITEM_COLUMNS: tuple[str, ...] = ("cac_id", "day", "currency", "item", "unit", "sales",
                                 "quantity", "amount", "voids", "voided_quantity",
                                 "voids_amount", "net")
ITEM_COUNTS = ("sales", "quantity", "amount", "voids", "voided_quantity", "voids_amount")


# Grouped by the minute of the UTC (or offset) timestamp and the record's zone: a handful
# of rows per CAC and minute (and item, for sales), turned into local days in Python (SQLite
# knows no zones). Columns: cac_id, type, ts, tz, currency, item, unit, printed, count,
# billed seconds, amount, quantity.
_DAILY_SQL = """
SELECT cac_id, type,
       CASE type WHEN 'session' THEN json_extract(json, '$.ended_at') ELSE at END AS ts,
       json_extract(json, '$.tz') AS tz,
       json_extract(json, '$.currency') AS currency,
       CASE WHEN type IN ('sale', 'sale_void') THEN json_extract(json, '$.item') END AS item,
       CASE type WHEN 'sale' THEN json_extract(json, '$.unit') END AS unit,
       CASE WHEN type = 'sale' AND json_extract(json, '$.print_job') IS NOT NULL
            THEN 1 ELSE 0 END AS printed,
       COUNT(*),
       COALESCE(SUM(json_extract(json, '$.billed_seconds')), 0),
       COALESCE(SUM(CASE type WHEN 'session' THEN json_extract(json, '$.fee')
                               WHEN 'voucher_sale' THEN json_extract(json, '$.price')
                               ELSE json_extract(json, '$.amount') END), 0),
       COALESCE(SUM(json_extract(json, '$.quantity')), 0)
FROM records
WHERE (:cac IS NULL OR cac_id = :cac)
GROUP BY cac_id, type, substr(ts, 1, 16), substr(ts, 20), tz, currency, item, unit, printed
"""

# The PostgreSQL twin (hub/pgstore.py keeps ``json`` as TEXT): the same groups. PostgreSQL
# cannot group by an expression over an output alias, hence the inner select; MIN(ts) is
# any timestamp of its minute group (the same local day).
_DAILY_PG = """
SELECT cac_id, type, MIN(ts), tz, currency, item, unit, printed, COUNT(*),
       COALESCE(SUM(secs), 0)::bigint, COALESCE(SUM(amount), 0)::bigint,
       COALESCE(SUM(qty), 0)::bigint
FROM (SELECT cac_id, type,
             CASE type WHEN 'session' THEN j ->> 'ended_at' ELSE at END AS ts,
             j ->> 'tz' AS tz, j ->> 'currency' AS currency,
             CASE WHEN type IN ('sale', 'sale_void') THEN j ->> 'item' END AS item,
             CASE type WHEN 'sale' THEN j ->> 'unit' END AS unit,
             CASE WHEN type = 'sale' AND j ->> 'print_job' IS NOT NULL THEN 1 ELSE 0 END
                 AS printed,
             (j ->> 'billed_seconds')::bigint AS secs,
             (CASE type WHEN 'session' THEN j ->> 'fee' WHEN 'voucher_sale' THEN j ->> 'price'
                        ELSE j ->> 'amount' END)::bigint AS amount,
             (j ->> 'quantity')::bigint AS qty
      FROM (SELECT cac_id, type, at, json::jsonb AS j FROM records
            WHERE (%(cac)s::text IS NULL OR cac_id = %(cac)s)) AS r) AS x
GROUP BY cac_id, type, substr(ts, 1, 16), substr(ts, 20), tz, currency, item, unit, printed
"""

_HOURS_SQL = (
    "SELECT json_extract(json, '$.started_at') AS s, json_extract(json, '$.ended_at') "
    "AS e, json_extract(json, '$.tz') AS tz, COUNT(*) FROM records "
    "WHERE type = 'session' AND (:cac IS NULL OR cac_id = :cac) "
    "GROUP BY substr(s, 1, 16), substr(s, 20), substr(e, 1, 16), substr(e, 20), tz")

_HOURS_PG = (
    "SELECT MIN(s), MIN(e), tz, COUNT(*) FROM (SELECT j ->> 'started_at' AS s, "
    "j ->> 'ended_at' AS e, j ->> 'tz' AS tz FROM (SELECT json::jsonb AS j FROM records "
    "WHERE type = 'session' AND (%(cac)s::text IS NULL OR cac_id = %(cac)s)) AS r) AS x "
    "GROUP BY substr(s, 1, 16), substr(s, 20), substr(e, 1, 16), substr(e, 20), tz")


def _grouped(db: Any, sqlite_sql: str, pg_sql: str, cac_id: str | None) -> Iterable[Any]:
    """Rows of the SQLite query on a ``sqlite3.Connection``, else of its PostgreSQL twin
    (a ``psycopg.Connection``, e.g. from ``PgStore.transaction()``)."""
    if isinstance(db, sqlite3.Connection):
        return db.execute(sqlite_sql, {"cac": cac_id})
    rows: list[Any] = db.execute(pg_sql, {"cac": cac_id}).fetchall()
    return rows


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


def daily(db: Any, *, since: str | None = None, until: str | None = None,
          cac_id: str | None = None, region: str | None = None) -> list[DailyRow]:
    """Rows per (CAC, local day, currency), by CAC then day; ``since``/``until`` inclusive.
    ``db``: the SQLite store's connection or a PostgreSQL store's (``PgStore``)."""
    out: dict[tuple[str, str, str], DailyRow] = {}
    for (cac, typ, ts, tz, currency, item, unit, printed, n, secs, amount,
         qty) in _grouped(db, _DAILY_SQL, _DAILY_PG, cac_id):
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
            if printed:
                row.prints += n
                row.print_pages += qty
                row.prints_amount += amount
            _add_item(row, item, unit, sales=n, quantity=qty, amount=amount)
        elif typ == "sale_void":
            row.sale_voids += n
            row.sale_voids_amount += amount
            _add_item(row, item, None, voids=n, voided_quantity=qty, voids_amount=amount)
    rows = [out[k] for k in sorted(out)]
    for r in rows:
        r.billed_minutes = r.billed_seconds // 60
        r.revenue = (r.session_fees + r.voucher_sales_amount - r.voids_amount
                     + r.sales_amount + r.sale_voids_amount)
        r.items = {k: r.items[k] for k in sorted(r.items)}
    if region is not None:
        rows = [r for r in rows if region_of(r.cac_id) == region]
    return rows


def _add_item(row: DailyRow, item: object, unit: object, **counts: int) -> None:
    key = item if isinstance(item, str) else "?"
    entry = row.items.get(key)
    if entry is None:
        entry = row.items[key] = {"unit": "", **dict.fromkeys(ITEM_COUNTS, 0)}
    if isinstance(unit, str) and not entry["unit"]:
        entry["unit"] = unit
    for k, v in counts.items():
        entry[k] += v


def totals(rows: Iterable[DailyRow]) -> dict[str, int]:
    keys = list(COLUMNS[3:])
    out = dict.fromkeys(keys, 0)
    for r in rows:
        for k in keys:
            out[k] += getattr(r, k)
    return out


def item_totals(rows: Iterable[DailyRow]) -> dict[str, dict[str, Any]]:
    """The ``items`` of ``rows`` summed per item id (all CACs and days of the rows)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        for key, entry in r.items.items():
            mine = out.setdefault(key, {"unit": "", **dict.fromkeys(ITEM_COUNTS, 0)})
            mine["unit"] = mine["unit"] or entry["unit"]
            for k in ITEM_COUNTS:
                mine[k] += entry[k]
    return {k: out[k] for k in sorted(out)}


def by_hour(db: Any, *, since: str | None = None, until: str | None = None,
            cac_id: str | None = None) -> list[int]:
    """Sessions by the local hour of day they started (24 counts), for sessions that ended
    on a local day within ``since``/``until``."""
    counts = [0] * 24
    for started, ended, tz, n in _grouped(db, _HOURS_SQL, _HOURS_PG, cac_id):
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


Translate = Callable[[str], str]


def _header(names: Iterable[str], tr: Translate | None) -> list[str]:
    """Column names; with ``tr`` (hub.i18n.translator(lang)) their translations: the
    msgids are the English column names themselves, so English stays as it was."""
    return [tr(n) if tr is not None else n for n in names]


def daily_csv(rows: Sequence[DailyRow], tr: Translate | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(_header(COLUMNS, tr))
    for r in rows:
        w.writerow([csv_cell(getattr(r, c)) for c in COLUMNS])
    return buf.getvalue()


def items_csv(rows: Sequence[DailyRow], tr: Translate | None = None) -> str:
    """Sales by item: one line per CAC, day, currency and item (a long table a spreadsheet
    filters and pivots; a CAC's own items need no column of their own). ``net`` = amount +
    voids_amount (voids are negative)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(_header(ITEM_COLUMNS, tr))
    for r in rows:
        for item, e in r.items.items():
            w.writerow([csv_cell(v) for v in (
                r.cac_id, r.day, r.currency, item, e["unit"], e["sales"], e["quantity"],
                e["amount"], e["voids"], e["voided_quantity"], e["voids_amount"],
                e["amount"] + e["voids_amount"])])
    return buf.getvalue()


def hourly_csv(counts: Sequence[int], tr: Translate | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(_header(("hour", "sessions"), tr))
    for h, n in enumerate(counts):
        w.writerow([f"{h:02d}", n])
    return buf.getvalue()
