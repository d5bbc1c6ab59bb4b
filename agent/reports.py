"""Day close: the cash report of a day or a shift, computed from the ledger's own records.

Pure apart from ``day_close_for``, which reads the ledger (outbox + archive) and the audit
trail and must run on the service's thread. A record belongs to the period that holds its
``at``: a session counts when it ended (when an open-ended session is paid), a voucher when
it was sold, a void when it was made. Money is integer centimes throughout.

- ``gross`` = fees of cash sessions + prices of vouchers sold;
- ``net`` = ``gross`` - refunds of voids (a voided voucher refunds its unused whole minutes
  at its sold price, rounded down: in full if unused, nothing if used up);
- sessions paid by a voucher have a fee of 0: their money was counted when it was sold.

Revenue by tariff uses the tariff version in force when a session started or a voucher was
sold: a record's own ``tariff_version`` when it has one, else the ``tariff.set`` entries of
the audit trail. Sessions are credited to the operator who started them.
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

NO_CATEGORY = ""
NO_OPERATOR = ""  # sessions started from a voucher at the kiosk


@dataclass(frozen=True)
class Period:
    start: datetime  # aware, inclusive
    end: datetime  # aware, exclusive

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a report period needs aware datetimes")
        if self.end <= self.start:
            raise ValueError("a report period must end after it starts")

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end

    def days(self, tz: ZoneInfo) -> tuple[date, date]:
        """The local days the period touches (to select archive files)."""
        return (self.start.astimezone(tz).date(),
                (self.end - timedelta(microseconds=1)).astimezone(tz).date())


def day_period(day: date, tz: ZoneInfo) -> Period:
    """One local calendar day in the CAC's timezone."""
    return Period(datetime.combine(day, time(0), tz),
                  datetime.combine(day + timedelta(days=1), time(0), tz))


def shift_period(start_local: datetime, end_local: datetime, tz: ZoneInfo) -> Period:
    """A shift given as local wall-clock times (naive) in the CAC's timezone."""
    return Period(start_local.replace(tzinfo=tz), end_local.replace(tzinfo=tz))


class TariffHistory:
    """Which tariff version was in force at an instant, from the audit's ``tariff.set``."""

    def __init__(self, changes: Iterable[tuple[datetime, int]], current: int) -> None:
        self._changes = sorted(changes)
        self._times = [at for at, _ in self._changes]
        self.current = current

    @classmethod
    def from_audit(cls, entries: Iterable[dict[str, Any]], current: int) -> TariffHistory:
        changes = []
        for e in entries:
            target = str(e.get("target") or "")
            if e.get("action") != "tariff.set" or not target.startswith("v"):
                continue
            try:
                changes.append((datetime.fromisoformat(e["at"]), int(target[1:])))
            except (KeyError, TypeError, ValueError):
                continue
        return cls(changes, current)

    def version_at(self, at: datetime) -> int:
        if not self._changes:
            return self.current
        i = bisect_right(self._times, at)
        if i == 0:
            return max(0, self._changes[0][1] - 1)
        return self._changes[i - 1][1]


def _group() -> dict[str, int]:
    return {"sessions": 0, "session_revenue": 0, "vouchers": 0, "voucher_revenue": 0,
            "voids": 0, "void_amount": 0, "revenue": 0, "net": 0}


def _at(rec: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(rec["at"])
    except (KeyError, TypeError, ValueError):
        return None


def day_close(records: Iterable[dict[str, Any]], period: Period, currency: str,
              history: TariffHistory | None = None) -> dict[str, Any]:
    """The cash report of ``period`` from ledger records (any order, deduplicated by id)."""
    history = history or TariffHistory([], 0)
    seen: set[str] = set()
    sessions = {"count": 0, "billed_seconds": 0, "cash_count": 0, "cash_seconds": 0,
                "cash_revenue": 0, "voucher_count": 0, "voucher_seconds": 0}
    vouchers = {"count": 0, "minutes": 0, "revenue": 0}
    voids: dict[str, Any] = {"count": 0, "amount": 0, "minutes": 0, "items": []}
    by_tariff: dict[int, dict[str, int]] = {}
    by_category: dict[str, dict[str, int]] = {}
    by_operator: dict[str, dict[str, int]] = {}
    currencies: set[str] = set()
    for rec in records:
        rid = rec.get("id")
        at = _at(rec)
        if not isinstance(rid, str) or rid in seen or at is None or not period.contains(at):
            continue
        seen.add(rid)
        kind = rec.get("type")
        if rec.get("currency"):
            currencies.add(str(rec["currency"]))
        category = str(rec.get("category") or NO_CATEGORY)
        operator = str(rec.get("operator") or NO_OPERATOR)
        if kind == "session":
            fee = int(rec.get("fee", 0))
            secs = int(rec.get("billed_seconds", 0))
            sessions["count"] += 1
            sessions["billed_seconds"] += secs
            if rec.get("voucher_id"):
                sessions["voucher_count"] += 1
                sessions["voucher_seconds"] += secs
            else:
                sessions["cash_count"] += 1
                sessions["cash_seconds"] += secs
                sessions["cash_revenue"] += fee
            started = _started(rec, at)
            version = int(rec.get("tariff_version", history.version_at(started)))
            for g in (by_tariff.setdefault(version, _group()),
                      by_category.setdefault(category, _group()),
                      by_operator.setdefault(operator, _group())):
                g["sessions"] += 1
                g["session_revenue"] += fee
                g["revenue"] += fee
                g["net"] += fee
        elif kind == "voucher_sale":
            price = int(rec.get("price", 0))
            vouchers["count"] += 1
            vouchers["minutes"] += int(rec.get("minutes", 0))
            vouchers["revenue"] += price
            version = int(rec.get("tariff_version", history.version_at(at)))
            for g in (by_tariff.setdefault(version, _group()),
                      by_category.setdefault(category, _group()),
                      by_operator.setdefault(operator, _group())):
                g["vouchers"] += 1
                g["voucher_revenue"] += price
                g["revenue"] += price
                g["net"] += price
        elif kind == "void":
            amount = int(rec.get("amount", 0))
            voids["count"] += 1
            voids["amount"] += amount
            voids["minutes"] += int(rec.get("minutes_voided", 0))
            voids["items"].append({"at": rec["at"], "ref": rec.get("ref"), "amount": amount,
                                   "minutes": int(rec.get("minutes_voided", 0)),
                                   "reason": rec.get("reason", ""), "operator": operator})
            g = by_operator.setdefault(operator, _group())
            g["voids"] += 1
            g["void_amount"] += amount
            g["net"] -= amount
    gross = sessions["cash_revenue"] + vouchers["revenue"]
    voids["items"].sort(key=lambda v: v["at"])
    return {
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "currency": currency if not currencies else sorted(currencies)[0],
        "currencies": sorted(currencies),
        "records": len(seen),
        "sessions": {**sessions, "minutes": sessions["billed_seconds"] // 60},
        "vouchers": vouchers,
        "voids": voids,
        "gross": gross,
        "net": gross - voids["amount"],
        "by_tariff": [{"tariff": k, **v} for k, v in sorted(by_tariff.items())],
        "by_category": [{"category": k, **v} for k, v in sorted(by_category.items())],
        "by_operator": [{"operator": k, **v} for k, v in sorted(by_operator.items())],
    }


def _started(rec: dict[str, Any], at: datetime) -> datetime:
    try:
        return datetime.fromisoformat(rec["started_at"])
    except (KeyError, TypeError, ValueError):
        return at


def day_close_for(service: Any, period: Period) -> dict[str, Any]:
    """Read the ledger and audit trail of ``service`` (on its thread) and build the report."""
    first, last = period.days(service.tz)
    records = list(service.ledger.records(first, last))
    entries = service.audit_entries(None, None, 100_000)
    history = TariffHistory.from_audit(entries, int(service.tariff_info["version"]))
    return day_close(records, period, service.tariff.currency, history)


def _decimal(centimes: int) -> str:
    sign = "-" if centimes < 0 else ""
    whole, cents = divmod(abs(centimes), 100)
    return f"{sign}{whole}.{cents:02d}"


def _cell(text: str) -> str:
    """Free text made safe for a spreadsheet (no formula injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


CSV_HEADER = ["section", "item", "count", "minutes", "amount_centimes", "amount", "currency"]


def to_csv(report: dict[str, Any]) -> str:
    """The report as CSV: one row per figure, amounts both in centimes and as decimals."""
    cur = report["currency"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_HEADER)

    def row(section: str, item: str, count: int | str, minutes: int | str,
            amount: int | None) -> None:
        w.writerow([section, item, count, minutes, "" if amount is None else amount,
                    "" if amount is None else _decimal(amount), "" if amount is None else cur])

    p = report["period"]
    row("period", f"{p['start']}/{p['end']}", report["records"], "", None)
    s, v, x = report["sessions"], report["vouchers"], report["voids"]
    row("total", "sessions", s["count"], s["minutes"], s["cash_revenue"])
    row("total", "cash_sessions", s["cash_count"], s["cash_seconds"] // 60, s["cash_revenue"])
    row("total", "voucher_sessions", s["voucher_count"], s["voucher_seconds"] // 60, 0)
    row("total", "vouchers_sold", v["count"], v["minutes"], v["revenue"])
    row("total", "voids", x["count"], x["minutes"], -x["amount"])
    row("total", "gross", "", "", report["gross"])
    row("total", "net", "", "", report["net"])
    for g in report["by_tariff"]:
        row("tariff", f"v{g['tariff']}", g["sessions"] + g["vouchers"], "", g["revenue"])
    for g in report["by_category"]:
        n = g["sessions"] + g["vouchers"]
        row("category", _cell(g["category"]) or "-", n, "", g["revenue"])
    for g in report["by_operator"]:
        n = g["sessions"] + g["vouchers"]
        row("operator", _cell(g["operator"]) or "-", n, "", g["net"])
    for item in x["items"]:
        row("void", _cell(f"{item['ref']} {item['operator']}: {item['reason']}"), 1,
            item["minutes"], -item["amount"])
    till = report.get("till")
    if till:  # the till's day close (CONTRACT §8)
        for item_id, line in till["sales"].items():
            row("sale", item_id, line["quantity"], "", line["amount"])
        row("till", "voids", till["voids"]["count"], "", till["voids"]["amount"])
        row("till", "revenue", "", "", till["revenue"])
        for sh in till["shifts"]:
            row("shift", _cell(f"{sh['operator']} {sh['opened_at']}/{sh['closed_at']} "
                               f"expected {_decimal(sh['expected_cash'])}"), 1, "",
                sh["over_short"])
    return out.getvalue()


# ---------------------------------------------------------------- the till's day close (§8)


def till_day(records: Iterable[dict[str, Any]], day: date, tz: ZoneInfo,
             currency: str) -> dict[str, Any]:
    """``GET /api/v1/reports/day`` (CONTRACT §8): sessions, vouchers, sales by item, voids,
    shifts and revenue of one local day, from ledger records (deduplicated by id).

    ``revenue = sessions.fees + vouchers.amount + sum of sales + voids.amount`` (voids are
    negative: a voucher void's refund, a sale void's amount); a sale on a session's bill is
    counted under sales, the session's own fee under sessions, so nothing counts twice.
    """
    period = day_period(day, tz)
    seen: set[str] = set()
    sessions = {"count": 0, "fees": 0, "sales_amount": 0}
    vouchers = {"count": 0, "amount": 0}
    sales: dict[str, dict[str, int]] = {}
    voids = {"count": 0, "amount": 0}
    shifts: list[dict[str, Any]] = []
    for rec in records:
        rid, at = rec.get("id"), _at(rec)
        kind = rec.get("type")
        key = f"{kind}:{rid}"  # a shift's record has the shift's id
        if not isinstance(rid, str) or key in seen or at is None or not period.contains(at):
            continue
        seen.add(key)
        if kind == "session":
            sessions["count"] += 1
            sessions["fees"] += int(rec.get("fee", 0))
            sessions["sales_amount"] += int(rec.get("sales_amount", 0))
        elif kind == "voucher_sale":
            vouchers["count"] += 1
            vouchers["amount"] += int(rec.get("price", 0))
        elif kind == "sale":
            line = sales.setdefault(str(rec["item"]), {"quantity": 0, "amount": 0})
            line["quantity"] += int(rec["quantity"])
            line["amount"] += int(rec["amount"])
        elif kind == "void":
            voids["count"] += 1
            voids["amount"] -= int(rec.get("amount", 0))
        elif kind == "sale_void":
            voids["count"] += 1
            voids["amount"] += int(rec.get("amount", 0))
        elif kind == "shift":
            shifts.append({k: rec.get(k) for k in (
                "id", "operator", "opened_at", "closed_at", "opening_float", "cash_in",
                "cash_voids", "expected_cash", "counted_cash", "over_short")})
    shifts.sort(key=lambda s: str(s["closed_at"]))
    revenue = (sessions["fees"] + vouchers["amount"]
               + sum(line["amount"] for line in sales.values()) + voids["amount"])
    return {"date": day.isoformat(), "currency": currency, "sessions": sessions,
            "vouchers": vouchers, "sales": dict(sorted(sales.items())), "voids": voids,
            "revenue": revenue, "shifts": shifts}


def till_day_for(service: Any, day: date) -> dict[str, Any]:
    """``till_day`` from the ledger of ``service`` (on its thread)."""
    return till_day(service.ledger.records(day, day), day, service.tz,
                    service.tariff.currency)
