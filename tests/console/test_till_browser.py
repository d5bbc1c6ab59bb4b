"""The till's console pages in a real browser (Debian's Chromium through Playwright), in
French and in Arabic: open a shift, sell from the grid of big buttons (cash, and onto a
running session's bill with its concession), see the receipt, void a sale as the manager,
count the cash by notes and coins and close the shift with its over/short. What the pages
show is checked against the ledger read straight from its files. Screenshots go to
test-artifacts/console/till-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import PASSWORD, config_dict
from console.console_support import ARTIFACTS, ServedAgent, ledger_records
from playwright.sync_api import Page, expect

from agent.console.views_till import price_to_form as price_text

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TIMEOUT = 15_000
CATALOGUE = [
    {"id": "print-bw", "name": {"fr": "Impression N&B", "ar": "طباعة أبيض وأسود"},
     "price": 100, "unit": "page"},
    {"id": "print-color", "name": {"fr": "Impression couleur", "ar": "طباعة بالألوان"},
     "price": 300, "unit": "page"},
    {"id": "scan", "name": {"fr": "Numérisation", "ar": "مسح ضوئي"}, "price": 250,
     "unit": "page"},
    {"id": "letter", "name": {"fr": "Saisie d'une lettre", "ar": "كتابة رسالة"},
     "price": 1500, "unit": "item"},
    {"id": "seat-word", "name": {"fr": "Formation Word", "ar": "تكوين في وورد"},
     "price": 5000, "unit": "seat"},
]


@pytest.fixture(scope="module")
def till_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedAgent]:
    data = tmp_path_factory.mktemp("till-agent")
    agent = ServedAgent(data, {**config_dict(data), "catalogue": CATALOGUE})
    yield agent
    agent.stop()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"till-{name}.png"), full_page=True)


def login(page: Page, base: str, name: str) -> None:
    page.goto(base + "/console/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/console/login'] button[type=submit]")
    expect(page).to_have_url(re.compile(r"/console/$"))


def set_lang(page: Page, base: str, lang: str) -> None:
    page.goto(f"{base}/console/lang?to={lang}&next=/console/till")
    expect(page.locator("html")).to_have_attribute("lang", lang)


def sell(page: Page, item: str, quantity: int, session_id: str = "") -> None:
    page.fill("#sale-form input[name=quantity]", str(quantity))
    page.select_option("#sale-session", value=session_id)
    page.click(f"button.sale-item[data-item='{item}']")
    expect(page.locator("#receipt")).to_be_visible()


def test_the_till_and_a_shift_in_french_and_arabic(till_agent: ServedAgent,
                                                   browser: Any) -> None:
    expect.set_options(timeout=TIMEOUT)
    served, base = till_agent, till_agent.url
    data = Path(served.cfg.data_dir)
    ctx = browser.new_context(viewport={"width": 1024, "height": 760}, locale="fr-FR")
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    login(page, base, "youssef")  # an operator
    set_lang(page, base, "fr")

    # no shift yet: the till says so; open one with a float of 200 MAD
    page.goto(base + "/console/till")
    expect(page.locator("#no-shift")).to_be_visible()
    expect(page.locator("button.sale-item")).to_have_count(len(CATALOGUE))
    shot(page, "fr-grid-no-shift")
    page.goto(base + "/console/shift")
    page.fill("#open-form input[name=opening_float]", "200")
    page.click("#open-form button[type=submit]")
    expect(page.locator("#shift-current")).to_be_visible()
    expect(page.locator("#shift-expected")).to_contain_text("200,00")

    # a cash sale of 3 pages: the receipt says 3,00
    page.goto(base + "/console/till")
    expect(page.locator("#no-shift")).to_have_count(0)
    sell(page, "print-bw", 3)
    expect(page.locator("#receipt-amount")).to_contain_text("3,00")
    shot(page, "fr-receipt")

    # a student's session on s1: a letter on its bill at half price
    status, s = served.api("POST", "/sessions", _token(served, "amina"),
                           {"station": "s1", "minutes": None, "category": "student"})
    assert status == 201, s
    page.reload()
    expect(page.locator("#sale-session option")).to_have_text(["Paiement comptant", "Poste s1"])
    sell(page, "letter", 1, s["id"])
    expect(page.locator("#receipt-amount")).to_contain_text("7,50")
    sell(page, "scan", 2)  # 5,00 cash, voided below
    expect(page.locator("#sales-table tbody tr")).to_have_count(3)
    expect(page.locator("#sales-table .void-form")).to_have_count(0)  # not a manager

    # the manager voids the scan
    mgr = browser.new_context(viewport={"width": 1024, "height": 760}, locale="ar")
    mp = mgr.new_page()
    mp.set_default_timeout(TIMEOUT)
    login(mp, base, "amina")
    set_lang(mp, base, "ar")
    mp.goto(base + "/console/till")
    expect(mp.locator("html")).to_have_attribute("dir", "rtl")
    expect(mp.locator("button.sale-item[data-item='print-bw'] .sale-name")).to_have_text(
        "طباعة أبيض وأسود")
    scan_row = mp.locator("#sales-table tbody tr").filter(has_text="مسح ضوئي")
    scan_row.locator("input[name=reason]").fill("خطأ في الإدخال")
    scan_row.locator("button.danger").click()
    expect(mp.locator("#sales-table tr.voided")).to_have_count(1)
    shot(mp, "ar-grid")

    # the session ends (20 min, 2 blocks at 2.00 half price = 2.00) with its bill; the
    # grid's "to pay" is the time and the bill
    served.clock.advance(20 * 60)
    page.goto(base + "/console/")
    expect(page.locator("#st-s1 [data-f=fee]")).to_contain_text("9,50")
    status, rec = served.api("POST", f"/sessions/{s['id']}/end", _token(served, "amina"))
    assert status == 200 and rec["total"] == 200 + 750, rec

    # count the cash: expected 200 + 3 + 5 + 9.50 - 5 = 212.50; counted 212.00
    page.goto(base + "/console/shift")
    expect(page.locator("#shift-expected")).to_contain_text("212,50")
    for name, n in (("n20000", 1), ("n1000", 1), ("n100", 2)):
        page.fill(f"#close-form input[name={name}]", str(n))
    shot(page, "fr-shift-count")
    page.click("#close-form button[type=submit]")
    expect(page.locator("#shift-closed")).to_be_visible()
    expect(page.locator("#closed-counted")).to_contain_text("212,00")
    expect(page.locator("#closed-over-short")).to_contain_text("0,50")
    expect(page.locator("#closed-over-short")).to_have_class(re.compile("short"))
    shot(page, "fr-shift-closed")

    # the same pages in Arabic: the shift (none open) and the closed one
    mp.goto(base + "/console/shift")
    expect(mp.locator("#open-form")).to_be_visible()
    shot(mp, "ar-shift-open")

    # the day close page: sales by item and the shift, as the API's day close says
    page.goto(base + "/console/report")
    expect(page.locator("#till-sales tr[data-item='letter'] td.num").last).to_have_attribute(
        "data-centimes", "750")
    expect(page.locator("#till-report td.till-revenue")).to_have_attribute("data-centimes",
                                                                         "1250")
    expect(page.locator("#till-shifts tbody tr")).to_have_count(1)
    shot(page, "fr-day-close")
    mp.goto(base + "/console/report")
    expect(mp.locator("#till-report")).to_be_visible()
    shot(mp, "ar-day-close")
    status, day = served.api("GET", "/reports/day", _token(served, "amina"))
    assert status == 200 and day["revenue"] == 1250, day  # 200 + 300 + 750 + 500 - 500

    # the ledger files agree with what the pages showed
    recs = ledger_records(data)
    [shift] = [r for r in recs if r["type"] == "shift"]
    assert (shift["expected_cash"], shift["counted_cash"], shift["over_short"]) == (
        21250, 21200, -50)
    sales = [r for r in recs if r["type"] == "sale"]
    assert sorted((r["item"], r["amount"]) for r in sales) == [
        ("letter", 750), ("print-bw", 300), ("scan", 500)]
    assert [r["amount"] for r in recs if r["type"] == "sale_void"] == [-500]
    ctx.close()
    mgr.close()


def _token(served: ServedAgent, name: str) -> str:
    status, body = served.api("POST", "/login", None, {"name": name, "password": PASSWORD})
    assert status == 200
    return str(body["token"])


def test_a_manager_edits_the_catalogue_in_the_browser(till_agent: ServedAgent,
                                                      browser: Any) -> None:
    expect.set_options(timeout=TIMEOUT)
    served, base = till_agent, till_agent.url
    data = Path(served.cfg.data_dir)
    ctx = browser.new_context(viewport={"width": 1024, "height": 900}, locale="ar")
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    login(page, base, "amina")
    set_lang(page, base, "ar")
    page.goto(base + "/console/catalogue")
    n = len(CATALOGUE)
    expect(page.locator(f"input[name=id_{n - 1}]")).to_have_value("seat-word")
    page.fill(f"input[name=id_{n}]", "copy")
    page.fill(f"input[name=fr_{n}]", "Photocopie")
    page.fill(f"input[name=ar_{n}]", "نسخ")
    expect(page.locator("input[name=price_0]")).to_have_value(
        price_text(CATALOGUE[0]["price"]))  # shown in MAD
    page.fill(f"input[name=price_{n}]", "-0,50")
    page.select_option(f"select[name=unit_{n}]", "page")
    before = (data / "catalogue.json").exists()
    page.click("#catalogue-form button[type=submit]")
    expect(page.locator(".flash.error")).to_contain_text(f"catalogue[{n}].price")
    expect(page.locator(f"input[name=price_{n}]")).to_have_value("-0.50")  # kept
    assert (data / "catalogue.json").exists() == before is False
    shot(page, "ar-catalogue-refused")
    page.fill(f"input[name=price_{n}]", "0,50")  # MAD, typed with a comma
    page.click("#catalogue-form button[type=submit]")
    expect(page.locator(".flash.ok")).to_be_visible()
    status, cat = served.api("GET", "/catalogue", _token(served, "amina"))
    assert status == 200 and cat["catalogue"][-1] == {
        "id": "copy", "name": {"fr": "Photocopie", "ar": "نسخ"}, "price": 50, "unit": "page"}
    page.goto(base + "/console/till")
    expect(page.locator("button.sale-item[data-item='copy'] .sale-name")).to_have_text("نسخ")
    shot(page, "ar-grid-after-edit")
    ctx.close()
