"""The hub's daily report splits revenue into time, vouchers, sales by item and prints
(CONTRACT §9, issue 17), the same on SQLite and on PostgreSQL (``[store] url``), and equal
to sums computed straight from the records stored."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub import reports
from hub.store import UsageStore, open_store
from tests.hub.factories import AT, CAC, session, void, voucher_sale
from wire.messages import Record, SaleRecord, SaleVoidRecord


def sale(seq: int, item: str, qty: int, price: int, *, print_job: str | None = None,
         unit: str = "item") -> SaleRecord:
    return SaleRecord(id=f"{CAC}-sale-{seq}", seq=seq, cac_id=CAC, at=AT, tz="Africa/Casablanca",
                      item=item, quantity=qty, unit_price=price, amount=qty * price,
                      currency="MAD", unit=unit, print_job=print_job)


def sale_void(seq: int, of: SaleRecord) -> SaleVoidRecord:
    return SaleVoidRecord(id=f"{CAC}-sv-{seq}", seq=seq, cac_id=CAC, at=AT,
                          tz="Africa/Casablanca", ref=of.id, item=of.item,
                          quantity=of.quantity, amount=-of.amount, currency="MAD",
                          reason="wrong item")


def the_records() -> list[Record]:
    letter = sale(4, "letter", 1, 750)
    out: list[Record] = [
        session(1, fee=400), session(2, fee=200), voucher_sale(3), letter,
        sale(5, "print-bw", 3, 100, print_job="17", unit="page"),
        sale(6, "print-color", 2, 300, print_job="18", unit="page"),
        sale(7, "scan", 3, 125), sale(8, "course-word", 4, 2000, unit="seat"),
        sale_void(9, letter), void(10, f"{CAC}-voucher-3", 0),
    ]
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UsageStore]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    s = open_store(tmp_path / "hub.sqlite3", url)
    yield s
    s.close()


def report(store: UsageStore) -> list[reports.DailyRow]:
    if store.shared_reads:  # PostgreSQL: the dashboard reads through a pooled connection
        with store.transaction() as conn:
            return reports.daily(conn)
    return reports.daily(store.db)


def test_revenue_split_by_item_and_prints_equals_the_stored_records(store: UsageStore
                                                                    ) -> None:
    recs = the_records()
    result = store.store_usage(CAC, recs, 1.0)
    assert result.watermark == len(recs)
    stored = store.records(CAC)
    rows = report(store)
    t, items = reports.totals(rows), reports.item_totals(rows)
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in stored:
        by_type[r["type"]].append(r)
    sales = by_type["sale"]
    assert t["session_fees"] == sum(r["fee"] for r in by_type["session"]) == 600
    assert t["sales_amount"] == sum(r["amount"] for r in sales)
    prints = [r for r in sales if r.get("print_job")]
    assert (t["prints"], t["print_pages"], t["prints_amount"]) == (
        len(prints), sum(r["quantity"] for r in prints), sum(r["amount"] for r in prints))
    assert (t["prints"], t["print_pages"], t["prints_amount"]) == (2, 5, 900)
    for item in {r["item"] for r in sales}:
        mine = [r for r in sales if r["item"] == item]
        e = items[item]
        assert (e["sales"], e["quantity"], e["amount"]) == (
            len(mine), sum(r["quantity"] for r in mine), sum(r["amount"] for r in mine))
    assert items["letter"]["voids_amount"] == -750
    assert items["course-word"]["unit"] == "seat"
    expected = (sum(r["fee"] for r in by_type["session"])
                + sum(r["price"] for r in by_type["voucher_sale"])
                - sum(r["amount"] for r in by_type["void"])
                + sum(r["amount"] for r in sales)
                + sum(r["amount"] for r in by_type["sale_void"]))
    assert t["revenue"] == expected
    items_csv = reports.items_csv(rows).splitlines()
    assert items_csv[0].split(",")[:4] == ["cac_id", "day", "currency", "item"]
    assert len(items_csv) == 1 + sum(len(r.items) for r in rows)
    flat = reports.daily_csv(rows).splitlines()
    assert flat[0].split(",")[-1] == "revenue"
    assert sum(int(line.split(",")[-1]) for line in flat[1:]) == expected


def test_both_engines_give_the_same_report(tmp_path: Path, pg_url: str) -> None:
    rows = []
    for url in (None, pg_url):
        s = open_store(tmp_path / f"hub-{'pg' if url else 'sqlite'}.sqlite3", url)
        try:
            s.store_usage(CAC, the_records(), 1.0)
            rows.append([dict(r.__dict__) for r in report(s)])
        finally:
            s.close()
    assert rows[0] == rows[1]
