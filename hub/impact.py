"""The impact report (issue 18, CONTRACT §9): who the centres serve and for what, per
month and CAC or region, with small counts suppressed. Aggregates only, no person data.

What is counted, per group and CAC-local month (a session counts in the month it ended,
a sale in the month it happened, a content_use record in the month of its ``day``):

- ``visits``: closed session records; ``hours``: their billed seconds / 3600.
- ``visit_kind``: a visit is ``first`` when it is the first session in that month, at that
  CAC, of its voucher id; a later session of the same voucher id in the same month is
  ``returning``; a session without a voucher (cash at the counter) cannot be linked to
  another one without a person identifier and is ``unlinked``. No name, card or device
  id is used: only the voucher id the agent already sends, and only within one month.
- ``purpose``, ``age_band``, ``gender``: the session's optional profile (CONTRACT §9b);
  a session without that part counts under ``not_given``.
- ``seats``: training attendance, the quantity of ``sale`` records with ``unit = "seat"``
  by item, less the quantity of their ``sale_void`` records.
- ``content``: the top packages by opens (sum of every content_use record's ``opens``).

Suppression (``[reports] min_cell`` = m, default 5). A count n with 0 < n < m is shown as
the string ``"<m"`` (primary suppression); a zero count is left out. A group-month whose
visits are under m shows ``visits = "<m"`` and no breakdowns, ``hours = "x"``.
Each breakdown of visits (visit_kind, purpose, age_band, gender) adds up to the row's
visits, so one hidden cell could be recovered by subtraction: there the report also hides
other cells (complementary suppression, shown as ``"x"``: the smallest cell that is enough
on its own, else the largest, and again), until no hidden
small cell can be narrowed below what ``"<m"`` already says, i.e. for every ``"<m"`` cell
every value 1..m-1 still fits the row total given the shown cells, the other ``"<m"``
cells (1..m-1 each) and the ``"x"`` cells (m..visits each). When even hiding every cell
cannot achieve that, the breakdown is withheld (``{}``, and its name listed in the row's
``withheld``). Seats and content are not a partition of anything published, so they get
primary suppression only. The report has no cross-group total row; what it does not
prevent: differencing a region row against the rows of its CACs (by=cac and by=region
are separate requests), see the closing note of issue 18.

Retention: ``purge`` (``cac-hub purge --before YYYY-MM``) writes the raw monthly counts of
each CAC (before suppression) to ``impact_months`` and deletes the records of the months
before; the report adds those stored counts to what the remaining records give, so the
report of a purged month is the same as before the purge.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from hub.model import region_of
from hub.reports import csv_cell, local_time

MONTH_RE = re.compile(r"(?P<y>[0-9]{4})-(?P<m>0[1-9]|1[0-2])")
MAX_MONTHS = 36
BY = ("cac", "region")
BREAKDOWNS = ("visit_kind", "purpose", "age_band", "gender")
PROFILE_PARTS = ("purpose", "age_band", "gender")
NOT_GIVEN = "not_given"
HIDDEN = "x"  # complementary suppression
TOP_CONTENT = 10

Cell = int | str


class ImpactError(ValueError):
    """Bad report arguments; ``field`` names the query parameter."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


# ---------------------------------------------------------------- arguments


def parse_month(value: str | None, name: str) -> str:
    if value is None or not MONTH_RE.fullmatch(value.strip()):
        raise ImpactError(name, f"{name} must be a month YYYY-MM, got {str(value)[:20]!r}")
    return value.strip()


def month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(start: str, end: str) -> list[str]:
    return [month_name(i) for i in range(month_index(start), month_index(end) + 1)]


def parse_args(query: Mapping[str, str], today: date | None = None) -> tuple[str, str, str]:
    """(from, to, by) from a request's query; ImpactError names the bad field. Without
    ``from``/``to``: the last 12 months up to this one."""
    now = today or datetime.now(UTC).date()
    this = f"{now.year:04d}-{now.month:02d}"
    end = parse_month(query["to"], "to") if "to" in query else this
    start = (parse_month(query["from"], "from") if "from" in query
             else month_name(max(0, month_index(end) - 11)))
    if month_index(start) > month_index(end):
        raise ImpactError("from", f"from ({start}) is after to ({end})")
    if month_index(end) - month_index(start) + 1 > MAX_MONTHS:
        raise ImpactError("to", f"at most {MAX_MONTHS} months in one report")
    by = query.get("by", "cac")
    if by not in BY:
        raise ImpactError("by", f"by must be cac or region, got {by[:20]!r}")
    return start, end, by


# ---------------------------------------------------------------- raw counts


@dataclass
class Counts:
    """Raw counts of one CAC (or group) and month, before suppression."""

    visits: int = 0
    billed_seconds: int = 0
    visit_kind: Counter[str] = field(default_factory=Counter)
    purpose: Counter[str] = field(default_factory=Counter)
    age_band: Counter[str] = field(default_factory=Counter)
    gender: Counter[str] = field(default_factory=Counter)
    seats: Counter[str] = field(default_factory=Counter)
    content: Counter[str] = field(default_factory=Counter)

    def add(self, other: Counts) -> None:
        self.visits += other.visits
        self.billed_seconds += other.billed_seconds
        for name in (*BREAKDOWNS, "seats", "content"):
            getattr(self, name).update(getattr(other, name))

    def to_json(self) -> str:
        return msgspec.json.encode({
            "visits": self.visits, "billed_seconds": self.billed_seconds,
            **{k: dict(getattr(self, k)) for k in (*BREAKDOWNS, "seats", "content")}}).decode()

    @classmethod
    def from_json(cls, text: str) -> Counts:
        raw = msgspec.json.decode(text)
        c = cls(visits=int(raw.get("visits", 0)),
                billed_seconds=int(raw.get("billed_seconds", 0)))
        for k in (*BREAKDOWNS, "seats", "content"):
            getattr(c, k).update({str(a): int(b) for a, b in raw.get(k, {}).items()})
        return c


Key = tuple[str, str]  # (cac_id, month)

_SESSIONS_SQL = """
SELECT cac_id, json_extract(json, '$.ended_at') AS e, json_extract(json, '$.tz') AS tz,
       json_extract(json, '$.voucher_id') AS v,
       json_extract(json, '$.profile.purpose') AS p,
       json_extract(json, '$.profile.age_band') AS a,
       json_extract(json, '$.profile.gender') AS g,
       COUNT(*), COALESCE(SUM(json_extract(json, '$.billed_seconds')), 0)
FROM records WHERE type = 'session'
GROUP BY cac_id, substr(e, 1, 16), substr(e, 20), tz, v, p, a, g
"""
_SEATS_SQL = """
SELECT cac_id, id, at, json_extract(json, '$.tz'), json_extract(json, '$.item'),
       json_extract(json, '$.quantity')
FROM records WHERE type = 'sale' AND json_extract(json, '$.unit') = 'seat'
"""
_SEAT_VOIDS_SQL = """
SELECT cac_id, json_extract(json, '$.ref'), json_extract(json, '$.quantity')
FROM records WHERE type = 'sale_void'
"""
_CONTENT_SQL = """
SELECT r.cac_id, substr(json_extract(r.json, '$.day'), 1, 7) AS m, o.key, SUM(o.value)
FROM records AS r, json_each(r.json, '$.opens') AS o
WHERE r.type = 'content_use'
GROUP BY r.cac_id, m, o.key
"""


# the same on PostgreSQL ([store] url, hub/pgstore.py: ``json`` is TEXT there too)
_PG = {
    "sessions": """
SELECT cac_id, MIN(j->>'ended_at'), j->>'tz', j->>'voucher_id', j->'profile'->>'purpose',
       j->'profile'->>'age_band', j->'profile'->>'gender',
       COUNT(*), COALESCE(SUM((j->>'billed_seconds')::bigint), 0)
FROM (SELECT cac_id, json::jsonb AS j FROM records WHERE type = 'session') AS s
GROUP BY cac_id, substr(j->>'ended_at', 1, 16), substr(j->>'ended_at', 20), j->>'tz',
         j->>'voucher_id', j->'profile'->>'purpose', j->'profile'->>'age_band',
         j->'profile'->>'gender'
""",
    "seats": """
SELECT cac_id, id, at, j->>'tz', j->>'item', (j->>'quantity')::bigint
FROM (SELECT cac_id, id, at, json::jsonb AS j FROM records WHERE type = 'sale') AS s
WHERE j->>'unit' = 'seat'
""",
    "seat_voids": """
SELECT cac_id, j->>'ref', (j->>'quantity')::bigint
FROM (SELECT cac_id, json::jsonb AS j FROM records WHERE type = 'sale_void') AS s
""",
    "content": """
SELECT r.cac_id, substr(r.j->>'day', 1, 7) AS m, o.key, SUM(o.value::bigint)
FROM (SELECT cac_id, json::jsonb AS j FROM records WHERE type = 'content_use') AS r,
     jsonb_each_text(r.j->'opens') AS o
GROUP BY r.cac_id, m, o.key
""",
}
_SQLITE = {"sessions": _SESSIONS_SQL, "seats": _SEATS_SQL, "seat_voids": _SEAT_VOIDS_SQL,
           "content": _CONTENT_SQL}


def local_month(ts: object, tz: object) -> str | None:
    when = local_time(ts, tz)
    return None if when is None else f"{when.year:04d}-{when.month:02d}"


def _token(value: object) -> str:
    return value if isinstance(value, str) and value else NOT_GIVEN


def collect(db: Any, months: set[str] | None = None, *, postgres: bool = False
            ) -> dict[Key, Counts]:
    """Raw counts per (CAC, month) from the records in the store (``months``: only those);
    ``db``: a sqlite3 connection, or with ``postgres`` a psycopg one."""
    sql = _PG if postgres else _SQLITE
    out: dict[Key, Counts] = {}

    def at(cac: str, month: str | None) -> Counts | None:
        if month is None or (months is not None and month not in months):
            return None
        c = out.get((cac, month))
        if c is None:
            c = out[(cac, month)] = Counts()
        return c

    seen: set[tuple[str, str, str]] = set()
    for cac, ended, tz, voucher, purpose, age, gender, n, secs in db.execute(sql["sessions"]):
        month = local_month(ended, tz)
        c = at(cac, month)
        if c is None or month is None:
            continue
        c.visits += n
        c.billed_seconds += int(secs)
        if isinstance(voucher, str) and voucher:
            key = (cac, month, voucher)
            first = 0 if key in seen else 1
            seen.add(key)
            c.visit_kind["first"] += first
            if n - first:
                c.visit_kind["returning"] += n - first
        else:
            c.visit_kind["unlinked"] += n
        c.purpose[_token(purpose)] += n
        c.age_band[_token(age)] += n
        c.gender[_token(gender)] += n
    seat_sales: dict[tuple[str, str], tuple[Counts, str]] = {}
    for cac, rec_id, ts, tz, item, qty in db.execute(sql["seats"]):
        c = at(cac, local_month(ts, tz))
        if c is not None and isinstance(item, str):
            c.seats[item] += int(qty)
            seat_sales[(cac, rec_id)] = (c, item)
    if seat_sales:
        for cac, ref, qty in db.execute(sql["seat_voids"]):
            hit = seat_sales.get((cac, ref))
            if hit is not None:
                hit[0].seats[hit[1]] -= abs(int(qty))
    for cac, month, package, opens in db.execute(sql["content"]):
        c = at(cac, month if isinstance(month, str) else None)
        if c is not None:
            c.content[str(package)] += int(opens)
    for c in out.values():
        c.seats = Counter({k: v for k, v in c.seats.items() if v > 0})
    return out


# ---------------------------------------------------------------- stored aggregates

AGG_SCHEMA = """
CREATE TABLE IF NOT EXISTS impact_months (
    cac_id TEXT NOT NULL,
    month TEXT NOT NULL,
    counts TEXT NOT NULL,
    PRIMARY KEY (cac_id, month)
) WITHOUT ROWID
"""


def _has_aggregates(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                      "AND name = 'impact_months'").fetchone() is not None


def stored(db: sqlite3.Connection, months: set[str] | None = None) -> dict[Key, Counts]:
    """The monthly counts kept by ``purge`` for months whose records are gone."""
    if not _has_aggregates(db):
        return {}
    return {(str(cac), str(m)): Counts.from_json(text)
            for cac, m, text in db.execute("SELECT cac_id, month, counts FROM impact_months")
            if months is None or m in months}


def raw_counts(db: sqlite3.Connection, months: set[str] | None = None) -> dict[Key, Counts]:
    """Stored aggregates plus what the records give: the whole history's counts."""
    out = stored(db, months)
    for key, c in collect(db, months).items():
        if key in out:
            out[key].add(c)
        else:
            out[key] = c
    return out


def _record_month(typ: str, at: str, tz: object, ended: object, day: object) -> str | None:
    if typ == "content_use":
        return day[:7] if isinstance(day, str) and len(day) >= 7 else None
    return local_month(ended if typ == "session" else at, tz)


def purge(db: sqlite3.Connection, before: str) -> tuple[int, int]:
    """Keep the monthly counts of every month before ``before`` (YYYY-MM) in
    ``impact_months``, then delete those months' records (every type). Run inside one
    transaction (the caller's). Returns (records deleted, CAC-months aggregated)."""
    parse_month(before, "before")
    db.execute(AGG_SCHEMA)
    # a record's local month is at most a day off its UTC ``at``: look a little past
    limit = month_name(month_index(before) + 1) + "-01"
    doomed: list[tuple[str]] = []
    months: set[str] = set()
    for rec_id, typ, at, tz, ended, day in db.execute(
            "SELECT id, type, at, json_extract(json, '$.tz'), json_extract(json, "
            "'$.ended_at'), json_extract(json, '$.day') FROM records WHERE at < ?", (limit,)):
        month = _record_month(typ, at, tz, ended, day)
        if month is None or month < before:
            doomed.append((rec_id,))
            if month is not None:
                months.add(month)
    counts = collect(db, months) if months else {}
    for (cac, month), c in counts.items():
        row = db.execute("SELECT counts FROM impact_months WHERE cac_id = ? AND month = ?",
                         (cac, month)).fetchone()
        if row is not None:  # records that came in after an earlier purge of this month
            c.add(Counts.from_json(row[0]))
        db.execute("INSERT INTO impact_months (cac_id, month, counts) VALUES (?, ?, ?) "
                   "ON CONFLICT (cac_id, month) DO UPDATE SET counts = excluded.counts",
                   (cac, month, c.to_json()))
    db.executemany("DELETE FROM records WHERE id = ?", doomed)
    return len(doomed), len(counts)


# ---------------------------------------------------------------- suppression


def small(n: int, min_cell: int) -> Cell:
    """Primary suppression of one count."""
    return f"<{min_cell}" if 0 < n < min_cell else n


def _exposed(total: int, shown: int, primary: list[int], secondary: int,
             min_cell: int) -> bool:
    """True if some "<m" cell is narrowed below 1..m-1 by the row total: ``primary`` hidden
    small cells (each 1..m-1), ``secondary`` hidden cells (each m..total)."""
    rest = total - shown  # what the hidden cells add up to, known to a reader
    k = len(primary)
    if k == 0:
        return False
    lo_others = (k - 1) + secondary * min_cell
    hi_others = (k - 1) * (min_cell - 1) + secondary * total
    return rest - lo_others < min_cell - 1 or rest - hi_others > 1


def protect(total: int, cells: Mapping[str, int], min_cell: int) -> dict[str, Cell] | None:
    """One breakdown of ``total``: primary and complementary suppression; None: withheld."""
    nonzero = {k: v for k, v in cells.items() if v > 0}
    out: dict[str, Cell] = {k: small(v, min_cell) for k, v in nonzero.items()}
    primary = [v for v in nonzero.values() if v < min_cell]
    shown = sorted((v, k) for k, v in nonzero.items() if v >= min_cell)
    secondary = 0
    shown_sum = sum(v for v, _ in shown)
    while _exposed(total, shown_sum, primary, secondary, min_cell):
        if not shown:
            return None
        # the smallest cell that is enough on its own, else the largest (most slack)
        pick = next((i for i, (v, _) in enumerate(shown) if not _exposed(
            total, shown_sum - v, primary, secondary + 1, min_cell)), len(shown) - 1)
        v, k = shown.pop(pick)
        out[k] = HIDDEN
        shown_sum -= v
        secondary += 1
    return dict(sorted(out.items(), key=lambda kv: (-_sort_value(kv[1]), kv[0])))


def _sort_value(cell: Cell) -> int:
    return cell if isinstance(cell, int) else 0


def suppress_row(c: Counts, min_cell: int) -> dict[str, Any]:
    """The published form of one group-month's counts."""
    row: dict[str, Any] = {"visits": small(c.visits, min_cell), "withheld": []}
    if c.visits < min_cell:
        row["hours"] = HIDDEN if c.visits else 0.0
        for name in BREAKDOWNS:
            row[name] = {}
        row["withheld"] = list(BREAKDOWNS) if c.visits else []
    else:
        row["hours"] = round(c.billed_seconds / 3600, 1)
        for name in BREAKDOWNS:
            cells = protect(c.visits, getattr(c, name), min_cell)
            if cells is None:
                row["withheld"].append(name)
            row[name] = cells or {}
    row["seats"] = {k: small(v, min_cell) for k, v in sorted(
        c.seats.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0}
    row["content"] = [{"package": k, "opens": small(v, min_cell)}
                      for k, v in c.content.most_common(TOP_CONTENT) if v > 0]
    return row


# ---------------------------------------------------------------- the report


def group_counts(raw: Mapping[Key, Counts], by: str) -> dict[tuple[str, str], Counts]:
    """(month, group) -> summed counts; also how many CACs each group had."""
    out: dict[tuple[str, str], Counts] = {}
    for (cac, month), c in raw.items():
        key = (month, cac if by == "cac" else region_of(cac))
        out.setdefault(key, Counts()).add(c)
    return out


def build(raw: Mapping[Key, Counts], start: str, end: str, by: str,
          min_cell: int) -> dict[str, Any]:
    """The report (CONTRACT §9) from raw counts: rows by month then group."""
    months = set(months_between(start, end))
    cacs: dict[tuple[str, str], set[str]] = {}
    for cac, month in raw:
        if month in months:
            cacs.setdefault((month, cac if by == "cac" else region_of(cac)), set()).add(cac)
    grouped = group_counts({k: v for k, v in raw.items() if k[1] in months}, by)
    rows = []
    for (month, group) in sorted(grouped):
        row = {"month": month, by: group, "cacs": len(cacs[(month, group)])}
        row.update(suppress_row(grouped[(month, group)], min_cell))
        rows.append(row)
    return {"from": start, "to": end, "by": by, "min_cell": min_cell,
            "suppressed": f"<{min_cell}", "hidden": HIDDEN, "rows": rows}


def report(db: Any, start: str, end: str, by: str, min_cell: int) -> dict[str, Any]:
    """The report from the store's records (and ``purge``'s aggregates): ``db`` a
    sqlite3 connection, or a psycopg one ([store] url; no purge aggregates there yet)."""
    months = set(months_between(start, end))
    if isinstance(db, sqlite3.Connection):
        return build(raw_counts(db, months), start, end, by, min_cell)
    return build(collect(db, months, postgres=True), start, end, by, min_cell)


def women_share(row: Mapping[str, Any]) -> float | None:
    """The share of "f" among the visits whose gender was given, when both are numbers."""
    g = row.get("gender") or {}
    f = g.get("f")
    given = [v for k, v in g.items() if k != NOT_GIVEN]
    if not isinstance(f, int) or not given or not all(isinstance(v, int) for v in given):
        return None
    total = sum(given)
    return f / total if total else None


def _flat(row: Mapping[str, Any]) -> Iterator[tuple[str, str, Cell]]:
    yield "visits", "", row["visits"]
    yield "hours", "", row["hours"]
    for name in (*BREAKDOWNS, "seats"):
        for k, v in row[name].items():
            yield name, k, v
    for item in row["content"]:
        yield "content", item["package"], item["opens"]
    for name in row["withheld"]:
        yield name, "withheld", HIDDEN


def to_csv(report_: Mapping[str, Any], header: Iterable[str] | None = None) -> str:
    """One line per (month, group, measure, key): long form, for a spreadsheet's pivot."""
    by = report_["by"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(list(header) if header is not None else ["month", by, "measure", "key",
                                                         "value"])
    for row in report_["rows"]:
        for measure, key, value in _flat(row):
            w.writerow([row["month"], csv_cell(row[by]), measure, csv_cell(key),
                        csv_cell(value)])
    return buf.getvalue()


# ---------------------------------------------------------------- cac-hub purge

PURGE_PROG = "cac-hub purge"


def _purge_month(value: str, now: date) -> str:
    before = parse_month(value, "before")
    if month_index(before) > now.year * 12 + now.month - 1:
        raise ImpactError("before", f"--before {before} is after this month: the records "
                                    "of the month under way are kept")
    return before


def purge_main(argv: Sequence[str], today: date | None = None) -> int:
    """``cac-hub purge --config HUB.toml --before YYYY-MM``: keep the monthly impact counts
    of the months before, delete their records (exit 0; 2: bad arguments; 1: store)."""
    import argparse
    import sys
    from pathlib import Path

    from hub.config import ConfigError, load_hub_config
    from hub.store import Store, StoreError

    p = argparse.ArgumentParser(prog=PURGE_PROG, description=(
        "Delete the usage records of the months before --before (CAC local months), "
        "keeping each CAC's monthly impact counts so that the impact report stays the same."))
    p.add_argument("--config", required=True, metavar="HUB.toml")
    p.add_argument("--before", required=True, metavar="YYYY-MM",
                   help="the first month to keep")
    args = p.parse_args(argv)
    now = today or datetime.now(UTC).date()
    try:
        before = _purge_month(args.before, now)
        config = load_hub_config(Path(args.config))
    except (ImpactError, ConfigError) as exc:
        print(f"{PURGE_PROG}: error: {exc}", file=sys.stderr)
        return 2
    if config.store_url is not None:
        print(f"{PURGE_PROG}: error: the records are in PostgreSQL ([store] url); purge "
              "works on the SQLite store only for now", file=sys.stderr)
        return 2
    try:
        with Store(config.db_path, create=False) as store, store.transaction():
            deleted, months = purge(store.db, before)
    except StoreError as exc:
        print(f"{PURGE_PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{config.db_path}: {deleted} record(s) of the months before {before} deleted; "
          f"{months} CAC-month(s) of impact counts kept in impact_months")
    return 0
