"""The console's print page in a real browser with a real CUPS (a private cupsd, held
cups-pdf queues): two held jobs are listed with pages, colour and price; one is released
(charged, printed), the other cancelled (nothing charged); with CUPS stopped the page says so
and a sale at the till still goes through. French and Arabic screenshots in
test-artifacts/console/print-*.png."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import PASSWORD, config_dict
from console.console_support import ARTIFACTS, ServedAgent, ledger_records
from cups_support import PrivateCups, cups_available, make_pdf
from playwright.sync_api import expect

from tests.console.test_till_browser import CATALOGUE, login, set_lang

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.skipif(not cups_available(), reason="CUPS, cups-pdf, poppler, gs")]


@pytest.fixture(scope="module")
def cups() -> Iterator[PrivateCups]:
    c = PrivateCups(("s1", "s2"))
    yield c
    c.stop()


@pytest.fixture(scope="module")
def print_agent(tmp_path_factory: pytest.TempPathFactory,
                cups: PrivateCups) -> Iterator[ServedAgent]:
    data = tmp_path_factory.mktemp("print-agent")
    agent = ServedAgent(data, {**config_dict(data), "catalogue": CATALOGUE,
                               "printing": {"cups": cups.host, "spool_dir": str(cups.spool)}})
    yield agent
    agent.stop()


def test_release_and_cancel_held_jobs_in_the_browser(print_agent: ServedAgent,
                                                     cups: PrivateCups, browser: Any,
                                                     tmp_path: Path) -> None:
    expect.set_options(timeout=15_000)
    served, base = print_agent, print_agent.url
    j1 = cups.submit("s1", make_pdf(tmp_path / "three.pdf", 3))
    j2 = cups.submit("s2", make_pdf(tmp_path / "red.pdf", 2, color=True))
    ctx = browser.new_context(viewport={"width": 1024, "height": 700}, locale="fr-FR")
    page = ctx.new_page()
    login(page, base, "youssef")
    set_lang(page, base, "fr")
    page.goto(base + "/console/print")
    row1, row2 = page.locator(f"tr[data-job='{j1}']"), page.locator(f"tr[data-job='{j2}']")
    expect(row1).to_contain_text("3,00")  # 3 pages x 1,00
    expect(row2).to_contain_text("couleur")
    expect(row2).to_contain_text("6,00")  # 2 pages x 3,00
    page.screenshot(path=str(ARTIFACTS / "print-fr-held.png"), full_page=True)
    row1.locator("button.release").click()
    expect(page.locator(".flash.ok")).to_contain_text("3 page(s)")
    expect(page.locator(f"tr[data-job='{j1}']")).to_have_count(0)
    page.locator(f"tr[data-job='{j2}'] button.cancel").click()
    expect(page.locator("#no-jobs")).to_be_visible()
    deadline = time.monotonic() + 30
    while j1 not in cups.completed():
        assert time.monotonic() < deadline, "the released job did not print"
        time.sleep(0.05)
    assert cups.outputs(j1) and not cups.outputs(j2)
    sales = [r for r in ledger_records(Path(served.cfg.data_dir)) if r["type"] == "sale"]
    assert [(r["print_job"], r["item"], r["amount"]) for r in sales] == [(j1, "print-bw", 300)]

    # CUPS goes away: the print page says so, the till still sells
    cups.stop()
    ar = browser.new_context(viewport={"width": 1024, "height": 700}, locale="ar")
    ap = ar.new_page()
    login(ap, base, "amina")
    set_lang(ap, base, "ar")
    ap.goto(base + "/console/print")
    expect(ap.locator("#print-down")).to_contain_text("خادم الطباعة لا يجيب")
    ap.screenshot(path=str(ARTIFACTS / "print-ar-cups-down.png"), full_page=True)
    ap.goto(base + "/console/till")
    ap.fill("#sale-form input[name=quantity]", "2")
    ap.click("button.sale-item[data-item='scan']")
    expect(ap.locator("#receipt-amount")).to_contain_text(re.compile("5[,.]00"))
    status, body = served.api("POST", "/login", None, {"name": "amina", "password": PASSWORD})
    assert status == 200
    ctx.close()
    ar.close()
