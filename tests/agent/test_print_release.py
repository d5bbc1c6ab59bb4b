"""Print release with real CUPS (issue 17): a private cupsd with held cups-pdf queues per
station; PDFs submitted with ``lp``; the agent lists them held with their page count and
colour, releases one (charged pages x the catalogue price, onto the station's running
session or as a cash sale; the output PDF is produced) and cancels another (nothing
charged). A job id that does not exist or was already released is a 404 naming the id,
nothing written; CUPS not running is a 503 and money paths keep working."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import Agent, start_agent
from cups_support import PrivateCups, cups_available, make_pdf

from tests.agent.test_till import CATALOGUE, ledger_files, raw_records, till_config

pytestmark = pytest.mark.skipif(not cups_available(), reason="CUPS, cups-pdf, poppler, gs")

PRINT_CATALOGUE = [*CATALOGUE, {"id": "print-color", "name": {"fr": "Impression couleur"},
                                "price": 300, "unit": "page"}]


@pytest.fixture
def cups() -> Iterator[PrivateCups]:
    c = PrivateCups(("s1", "s2"))
    yield c
    c.stop()


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any, cups: PrivateCups) -> AsyncIterator[Agent]:
    data = tmp_path / "data"
    cfg = till_config(data, catalogue=PRINT_CATALOGUE,
                      printing={"cups": cups.host, "spool_dir": str(cups.spool),
                                "bw_item": "print-bw", "color_item": "print-color"})
    async for a in start_agent(data, aiohttp_client, role="manager", config=cfg):
        yield a


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def test_release_charges_the_pages_and_prints_cancel_charges_nothing(
        agent: Agent, cups: PrivateCups, tmp_path: Path) -> None:
    data = tmp_path / "data"
    three = make_pdf(tmp_path / "three.pdf", 3)
    red = make_pdf(tmp_path / "red.pdf", 2, color=True)
    t0 = time.monotonic()
    j1 = cups.submit("s1", three)
    j2 = cups.submit("s2", three)
    j3 = cups.submit("s2", red)
    status, jobs = await agent.op("GET", "/print/jobs")
    listed_after = time.monotonic() - t0
    assert status == 200, jobs
    by_id = {j["id"]: j for j in jobs}
    assert {k: by_id[j1][k] for k in ("station", "pages", "color")} == {
        "station": "s1", "pages": 3, "color": False}
    assert (by_id[j3]["station"], by_id[j3]["pages"], by_id[j3]["color"]) == ("s2", 2, True)
    assert by_id[j1]["submitted_at"]
    assert not cups.outputs(j1)  # held: nothing printed yet
    # the kiosk of s2 sees its own jobs with their price, not s1's
    status, mine = await agent.st("s2", "GET", "/print/jobs")
    assert status == 200
    assert sorted((j["id"], j["pages"], j["price"]) for j in mine) == sorted(
        [(j2, 3, 300), (j3, 2, 600)])
    status, _ = await agent.req("GET", "/stations/s1/print/jobs", "station-two-token-0002")
    assert status in (401, 403)  # a station token acts on its own station only

    # s1 has a running session: the pages go on its bill
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
    t1 = time.monotonic()
    status, sale = await agent.op("POST", f"/print/jobs/{j1}/release")
    assert status == 200, sale
    assert (sale["item"], sale["quantity"], sale["amount"], sale["session"]) == (
        "print-bw", 3, 300, s["id"])
    assert sale["print_job"] == j1
    wait_for("the released job printed", lambda: j1 in cups.completed())
    printed_after = time.monotonic() - t1
    assert cups.outputs(j1), "cups-pdf wrote no PDF"
    # a colour job on s2 (no session): a cash sale at the colour price
    status, sale3 = await agent.op("POST", f"/print/jobs/{j3}/release")
    assert status == 200 and (sale3["item"], sale3["amount"], sale3["session"]) == (
        "print-color", 600, None)
    # the other one is cancelled: nothing charged, never printed
    before = ledger_files(data)
    status, body = await agent.op("POST", f"/print/jobs/{j2}/cancel")
    assert status == 200 and body == {"id": j2, "cancelled": True}
    assert ledger_files(data) == before
    status, jobs = await agent.op("GET", "/print/jobs")
    assert jobs == []
    # released again, unknown: 404 naming the id, nothing written
    for job in (j1, j2, "999"):
        status, err = await agent.op("POST", f"/print/jobs/{job}/release")
        assert status == 404 and err["error"] == "unknown_print_job", err
        assert "id" in err["message"]
    assert ledger_files(data) == before
    agent.clock.advance(10 * 60)
    _, rec = await agent.op("POST", f"/sessions/{s['id']}/end")
    assert rec["sales"] == [sale["id"]] and rec["sales_amount"] == 300
    sales = [r for r in raw_records(data) if r["type"] == "sale"]
    assert sorted((r["print_job"], r["amount"]) for r in sales) == sorted(
        [(j1, 300), (j3, 600)])
    assert not cups.outputs(j2)
    print(f"\nprint round trip: submit to listed {listed_after:.2f} s, "
          f"release to printed {printed_after:.2f} s")


async def test_cups_not_running_is_a_503_and_money_keeps_working(
        agent: Agent, cups: PrivateCups) -> None:
    cups.stop()
    status, err = await agent.op("GET", "/print/jobs")
    assert status == 503 and err["error"] == "print_unavailable", err
    status, err = await agent.op("POST", "/print/jobs/1/release")
    assert status == 503
    status, sale = await agent.op("POST", "/sales", json={"item": "print-bw", "quantity": 2})
    assert status == 201 and sale["amount"] == 200
    status, _ = await agent.op("POST", "/vouchers", json={"minutes": 30})
    assert status == 201
