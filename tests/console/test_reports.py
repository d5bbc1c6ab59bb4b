"""Day close from ledger records (agent/reports.py): pure, records made by hand."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from agent.reports import Period, TariffHistory, day_close, day_period, shift_period, to_csv

TZ = ZoneInfo("Africa/Casablanca")


def session(rid: str, at: str, fee: int, *, voucher: bool = False, operator: str | None = "amina",
            category: str | None = None, started: str | None = None, secs: int = 900) -> dict:
    return {"type": "session", "id": rid, "at": at, "started_at": started or at, "fee": fee,
            "billed_seconds": secs, "currency": "MAD", "voucher_id": "v" if voucher else None,
            "operator": None if voucher else operator, "category": category}


def sale(rid: str, at: str, price: int, minutes: int = 60, operator: str = "amina",
         category: str | None = None) -> dict:
    return {"type": "voucher_sale", "id": rid, "at": at, "price": price, "minutes": minutes,
            "currency": "MAD", "operator": operator, "category": category}


def void(rid: str, at: str, amount: int, operator: str = "karim") -> dict:
    return {"type": "void", "id": rid, "at": at, "ref": "s-1", "amount": amount,
            "minutes_voided": 60, "reason": "=cmd()", "operator": operator, "currency": "MAD"}


DAY = date(2026, 6, 10)  # Casablanca is UTC+1 that day


def test_a_local_day_takes_exactly_its_records() -> None:
    recs = [
        session("a", "2026-06-09T22:59:59+00:00", 100),  # 23:59:59 local on the 9th: out
        session("b", "2026-06-09T23:00:00+00:00", 200),  # 00:00 local on the 10th: in
        session("c", "2026-06-10T22:59:59+00:00", 300, category="student"),  # in
        session("d", "2026-06-10T23:00:00+00:00", 400),  # 00:00 on the 11th: out
        session("e", "2026-06-10T10:00:00+00:00", 0, voucher=True, secs=600),
        sale("f", "2026-06-10T09:00:00+00:00", 800),
        sale("g", "2026-06-10T09:30:00+00:00", 400, operator="youssef", category="student"),
        void("h", "2026-06-10T11:00:00+00:00", 800),
        session("b", "2026-06-09T23:00:00+00:00", 200),  # the same record twice (archive)
    ]
    r = day_close(recs, day_period(DAY, TZ), "MAD")
    assert r["records"] == 6
    assert r["sessions"]["count"] == 3 and r["sessions"]["cash_count"] == 2
    assert r["sessions"]["cash_revenue"] == 500 and r["sessions"]["voucher_count"] == 1
    assert r["sessions"]["minutes"] == (900 + 900 + 600) // 60
    assert r["vouchers"] == {"count": 2, "minutes": 120, "revenue": 1200}
    assert r["voids"]["count"] == 1 and r["voids"]["amount"] == 800
    assert r["gross"] == 1700 and r["net"] == 900
    ops = {g["operator"]: g for g in r["by_operator"]}
    assert ops["amina"]["net"] == 200 + 300 + 800
    assert ops["youssef"]["net"] == 400 and ops["karim"]["net"] == -800
    assert ops[""]["sessions"] == 1 and ops[""]["revenue"] == 0
    assert sum(g["net"] for g in r["by_operator"]) == r["net"]
    cats = {g["category"]: g["revenue"] for g in r["by_category"]}
    assert cats == {"": 200 + 800, "student": 300 + 400}
    assert sum(g["revenue"] for g in r["by_tariff"]) == r["gross"]


def test_tariff_version_comes_from_the_audit_trail() -> None:
    audit = [{"at": "2026-06-10T12:00:00+00:00", "action": "tariff.set", "target": "v1"},
             {"at": "2026-06-10T15:00:00+00:00", "action": "tariff.set", "target": "v2"},
             {"at": "2026-06-10T13:00:00+00:00", "action": "voucher.sell", "target": "x"}]
    hist = TariffHistory.from_audit(audit, current=2)
    recs = [sale("a", "2026-06-10T11:00:00+00:00", 100),
            # ends under v1 but started under v0: a running session keeps its tariff
            session("b", "2026-06-10T12:30:00+00:00", 200, started="2026-06-10T11:50:00+00:00"),
            sale("c", "2026-06-10T13:00:00+00:00", 300),
            sale("d", "2026-06-10T16:00:00+00:00", 400),
            {**sale("e", "2026-06-10T16:30:00+00:00", 500), "tariff_version": 7}]
    r = day_close(recs, day_period(DAY, TZ), "MAD", hist)
    assert {g["tariff"]: g["revenue"] for g in r["by_tariff"]} == {0: 300, 1: 300, 2: 400,
                                                                     7: 500}
    assert TariffHistory([], current=3).version_at(datetime(2026, 1, 1, tzinfo=UTC)) == 3


def test_a_shift_is_a_local_time_range() -> None:
    p = shift_period(datetime(2026, 6, 10, 8, 0), datetime(2026, 6, 10, 14, 0), TZ)
    assert p.start.isoformat() == "2026-06-10T08:00:00+01:00"
    recs = [sale("a", "2026-06-10T06:59:00+00:00", 100),
            sale("b", "2026-06-10T07:00:00+00:00", 200),
            sale("c", "2026-06-10T12:59:59+00:00", 300),
            sale("d", "2026-06-10T13:00:00+00:00", 400)]
    assert day_close(recs, p, "MAD")["net"] == 500
    with pytest.raises(ValueError, match="end after"):
        shift_period(datetime(2026, 6, 10, 14, 0), datetime(2026, 6, 10, 8, 0), TZ)
    with pytest.raises(ValueError, match="aware"):
        Period(datetime(2026, 6, 10), datetime(2026, 6, 11))  # noqa: DTZ001


def test_csv_has_the_same_figures_and_defuses_formulas() -> None:
    recs = [session("b", "2026-06-10T09:00:00+00:00", 250),
            sale("f", "2026-06-10T09:00:00+00:00", 805),
            void("h", "2026-06-10T11:00:00+00:00", 805),
            sale("g", "2026-06-10T09:10:00+00:00", 100, category="=HYPERLINK()")]
    r = day_close(recs, day_period(DAY, TZ), "MAD")
    rows = list(csv.DictReader(io.StringIO(to_csv(r))))
    by = {(row["section"], row["item"].split(" ")[0]): row for row in rows}
    assert by[("total", "net")]["amount_centimes"] == str(r["net"]) == "350"
    assert by[("total", "net")]["amount"] == "3.50"
    assert by[("total", "voids")]["amount"] == "-8.05"
    assert by[("total", "vouchers_sold")]["amount"] == "9.05"
    assert by[("category", "'=HYPERLINK()")]["amount_centimes"] == "100"
    assert all(not row["item"].startswith(("=", "+", "@")) for row in rows)
