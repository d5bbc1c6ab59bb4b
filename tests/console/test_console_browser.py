"""The operator console in a real browser (Debian's Chromium through Playwright).

One broad walk through the counter's day: log in, start a session and watch the grid
update live, extend and end it, sell and print vouchers, redeem one from the station API,
void another, edit the tariff and the operators, and close the day: the report's totals
must equal the sum of the ledger's records, read from the ledger files independently.
Every page is photographed in French and in Arabic under test-artifacts/console/.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from agent_support import PASSWORD
from console.console_support import ARTIFACTS, ServedAgent, ledger_net, ledger_records
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TIMEOUT = 15_000  # ms; the machine is shared and slow
PAGES = {"grid": "/console/", "vouchers": "/console/vouchers", "report": "/console/report",
         "tariff": "/console/tariff", "operators": "/console/operators",
         "audit": "/console/audit"}


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Page, base: str, name: str = "amina", password: str = PASSWORD) -> None:
    page.goto(base + "/console/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("form[action='/console/login'] button[type=submit]")


def advance(served: ServedAgent, seconds: int) -> None:
    """Time passes; the kiosks keep polling (so their stations stay online)."""
    served.clock.advance(seconds)
    for sid in ("s1", "s2"):
        assert served.station(sid, "GET", "/session")[0] == 200


def card(page: Page, sid: str) -> Any:
    return page.locator(f"#st-{sid}")


def test_counter_day_in_the_browser(served: ServedAgent, browser: Any) -> None:
    expect.set_options(timeout=TIMEOUT)
    base = served.url
    ctx = browser.new_context(viewport={"width": 1024, "height": 700}, locale="fr-FR",
                              accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    visited: list[str] = []  # every URL the browser asked for (history, the agent's log)
    page.on("request", lambda r: visited.append(r.url))

    # / leads to the login; a wrong password is refused
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    shot(page, "fr-login")
    login(page, base, "amina", "not-the-password")
    expect(page.locator("#login-error")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/console/login"))

    # log in: the grid
    login(page, base)
    expect(page).to_have_url(re.compile(r"/console/$"))
    s1 = card(page, "s1")
    expect(s1).to_have_attribute("data-state", "offline")  # no kiosk has polled yet
    expect(page.locator("body")).to_have_attribute("data-live", "on")  # SSE connected

    # a kiosk polls: the station turns free in the grid without a reload
    assert served.station("s1", "GET", "/session")[0] == 200
    expect(s1).to_have_attribute("data-state", "free")

    # start a 30-minute session on s1 from the form
    s1.locator("input[name=minutes]").first.fill("30")
    s1.locator("form[action$='/start'] button[value=fixed]").click()
    expect(page.locator(".flash.ok")).to_contain_text("s1")
    expect(s1).to_have_attribute("data-state", "session")
    expect(s1.locator("[data-f=time_left]")).to_have_text("30:00")

    # time passes: the grid counts down live (no reload), the fee so far appears
    advance(served, 5 * 60)
    expect(s1.locator("[data-f=time_left]")).to_have_text("25:00")
    expect(s1.locator("[data-f=fee]")).to_contain_text("2,00")

    # another operator starts a session on s2 through the JSON API: it shows up live
    status, grant = served.api("POST", "/login", body={"name": "youssef", "password": PASSWORD})
    assert status == 200
    status, _ = served.api("POST", "/sessions", grant["token"],
                           {"station": "s2", "minutes": None, "category": "student"})
    assert status == 201
    s2 = card(page, "s2")
    expect(s2).to_have_attribute("data-state", "session")
    expect(s2).to_have_attribute("data-kind", "open")
    shot(page, "fr-grid")

    # extend s1 by 15 minutes, then end it: 5 min billed = one block of 2,00 MAD
    s1.locator("form[action$='/extend'] input[name=minutes]").fill("15")
    s1.locator("form[action$='/extend'] button").click()
    expect(s1.locator("[data-f=time_left]")).to_have_text("40:00")
    s1.locator("form[action$='/end'] button").click()
    expect(page.locator(".flash.ok")).to_contain_text("2,00")
    expect(s1).to_have_attribute("data-state", "free")

    # sell two 60-minute vouchers: the ticket page shows both, each with a QR code
    page.click("nav a[href='/console/vouchers']")
    page.fill("#sell-form input[name=minutes]", "60")
    page.fill("#sell-form input[name=count]", "2")
    page.click("#sell-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/console/tickets$"))  # no code in the URL
    tickets = page.locator("article.ticket")
    expect(tickets).to_have_count(2)
    expect(tickets.first.locator("svg")).to_be_visible()
    expect(tickets.first).to_contain_text("8,00")  # 4 blocks of 2,00 MAD
    codes = [tickets.nth(i).get_attribute("data-code") for i in range(2)]
    assert all(c and re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", c) for c in codes)
    shot(page, "fr-tickets")
    ticket_url = page.url

    # redeem the first from the station API on s1; the grid shows a voucher session
    status, sess = served.station("s1", "POST", "/redeem", {"code": codes[0].lower()})
    assert status == 201, sess
    page.goto(base + "/console/")
    expect(card(page, "s1")).to_have_attribute("data-kind", "voucher")
    advance(served, 10 * 60)
    assert served.station("s1", "POST", "/session/end", {})[0] == 200
    expect(card(page, "s1")).to_have_attribute("data-state", "free")

    # its balance is 50 of 60 minutes; void the second one with a reason
    page.goto(base + "/console/vouchers")
    page.fill("#lookup-form input[name=code]", codes[0].lower())
    page.click("#lookup-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/console/vouchers$"))
    expect(page.locator("#found-balance")).to_contain_text("50 / 60")
    # print its ticket again: the code goes in the form, the ticket page shows that one
    page.locator(f"tr[data-code='{codes[0]}'] .print-form button").click()
    expect(page).to_have_url(re.compile(r"/console/tickets$"))
    expect(page.locator("article.ticket")).to_have_count(1)
    expect(page.locator("article.ticket").first).to_have_attribute("data-code", codes[0])
    page.goto(base + "/console/vouchers")
    row = page.locator(f"tr[data-code='{codes[1]}']")
    row.locator("input[name=reason]").fill("vendu par erreur")
    row.locator(".void-form button[type=submit]").click()
    expect(page.locator(".flash.ok")).to_contain_text(codes[1])
    expect(page.locator(f"tr[data-code='{codes[1]}']")).to_contain_text("annulé")
    shot(page, "fr-vouchers")

    # end s2 (open-ended, student 50 %): 10 min billed since it started
    page.goto(base + "/console/")
    card(page, "s2").locator("form[action$='/end'] button").click()
    expect(card(page, "s2")).to_have_attribute("data-state", "free")

    # the manager edits the tariff; a bad value is refused naming the key
    page.click("nav a[href='/console/tariff']")
    page.fill("input[name=block_price]", "abc")
    page.click("#tariff-form button[type=submit]")
    expect(page.locator(".flash.error")).to_contain_text("tariff.block_price")
    page.fill("input[name=block_price]", "300")
    page.click("#tariff-form button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("1")
    assert served.service.tariff.block_price == 300
    shot(page, "fr-tariff")

    # operators: add an account
    page.click("nav a[href='/console/operators']")
    page.fill("#operator-form input[name=name]", "karim")
    page.fill("#operator-form input[name=password]", "karim-pass-123")
    page.click("#operator-form button[type=submit]")
    expect(page.locator("tr[data-name=karim]")).to_be_visible()
    shot(page, "fr-operators")
    page.click("nav a[href='/console/audit']")
    expect(page.locator("#audit")).to_contain_text("voucher.void")
    expect(page.locator("#audit")).to_contain_text("operator:amina")
    shot(page, "fr-audit")

    # day close: its totals equal the ledger's records, read from disk independently
    records = ledger_records(served.cfg.data_dir)
    expected = ledger_net(records)
    cash = sum(r["fee"] for r in records if r["type"] == "session")
    assert cash == 200 + 100  # s1 one block; s2 one block at 50 % off
    assert expected == 200 + 100 + 800 + 800 - 800
    page.click("nav a[href='/console/report']")
    net_cell = page.locator("tr.net td[data-centimes]")
    assert int(net_cell.get_attribute("data-centimes")) == expected
    expect(page.locator("#r-sessions")).to_have_text("3")
    expect(page.locator("#r-vouchers")).to_have_text("2")
    expect(page.locator("#r-voids")).to_have_text("1")
    expect(page.locator("#r-records")).to_have_text(str(len(records)))
    shot(page, "fr-report")
    with page.expect_download() as dl:
        page.click("#csv-link")
    rows = list(csv.DictReader(io.StringIO(dl.value.path().read_text(encoding="utf-8"))))
    by = {(r["section"], r["item"]): r for r in rows}
    assert int(by[("total", "net")]["amount_centimes"]) == expected
    assert by[("total", "net")]["amount"] == f"{expected // 100}.{expected % 100:02d}"
    assert int(by[("total", "cash_sessions")]["amount_centimes"]) == cash
    assert int(by[("operator", "amina")]["amount_centimes"]) + int(
        by[("operator", "youssef")]["amount_centimes"]) == expected

    # the same pages in Arabic, right to left (with a session running on s2)
    status, _ = served.api("POST", "/sessions", grant["token"], {"station": "s2", "minutes": 45})
    assert status == 201
    page.click(".langs a[lang=ar]")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    expect(page.locator("h1")).to_have_text("إغلاق الصندوق")
    assert int(page.locator("tr.net td[data-centimes]").get_attribute("data-centimes")) \
        == expected
    for name, path in PAGES.items():
        page.goto(base + path)
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        if name == "grid":
            expect(page.locator("body")).to_have_attribute("data-live", "on")
            expect(card(page, "s2").locator(".badge.state")).to_have_text("قيد الاستعمال")
            expect(card(page, "s2").locator("[data-f=time_left]")).to_have_text("45:00")
        shot(page, f"ar-{name}")
    page.goto(ticket_url)
    expect(page.locator("article.ticket").first).to_contain_text("د.م.")
    shot(page, "ar-tickets")

    # logout ends the session: the grid asks for a login again
    page.click("form[action='/console/logout'] button")
    expect(page).to_have_url(re.compile(r"/console/login\?bye=1"))
    shot(page, "ar-login")
    page.goto(base + "/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    ctx.close()
    # sold, looked up, printed again and voided: no voucher code was ever in a URL
    leaked = [u for u in visited for c in codes
              if c.lower() in u.lower() or c.replace("-", "").lower() in u.lower()]
    assert not leaked, leaked


def test_pause_resume_and_pause_all_in_the_browser(served: ServedAgent, browser: Any) -> None:
    """The counter's pause and resume buttons, and the power-cut section (CONTRACT §7)."""
    expect.set_options(timeout=TIMEOUT)
    base = served.url
    ctx = browser.new_context(viewport={"width": 1024, "height": 700}, locale="fr-FR")
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    login(page, base)
    expect(page).to_have_url(re.compile(r"/console/$"))
    status, grant = served.api("POST", "/login", body={"name": "youssef", "password": PASSWORD})
    assert status == 200
    status, s = served.api("POST", "/sessions", grant["token"], {"station": "s1", "minutes": 30})
    assert status == 201, s
    s1 = card(page, "s1")
    expect(s1).to_have_attribute("data-run", "running")
    s1.locator("form[action$='/pause'] input[name=reason]").fill("coupure de courant")
    s1.locator("form[action$='/pause'] button").click()
    expect(page.locator(".flash.ok")).to_contain_text("le temps ne compte plus")
    expect(s1).to_have_attribute("data-run", "paused")
    expect(s1.locator("[data-f=paused_label]")).to_have_text("En pause")
    expect(s1.locator("form[action$='/pause']")).to_be_hidden()
    advance(served, 10 * 60)  # ten paused minutes: the grid still says 30:00
    expect(s1.locator("[data-f=time_left]")).to_have_text("30:00")
    shot(page, "fr-grid-paused")
    s1.locator("form[action$='/resume'] button").click()
    expect(s1).to_have_attribute("data-run", "running")
    advance(served, 60)
    expect(s1.locator("[data-f=time_left]")).to_have_text("29:00")
    page.locator("#power form[action$='/pause-all'] button").click()
    # every running session (s2 may still run from the test before)
    expect(page.locator(".flash.ok")).to_contain_text("session(s) en pause")
    expect(s1).to_have_attribute("data-run", "paused")
    page.locator("#power form[action$='/resume-all'] button").click()
    expect(page.locator(".flash.ok")).to_contain_text("session(s) reprise(s)")
    expect(s1).to_have_attribute("data-run", "running")
    s1.locator("form[action$='/end'] button").click()
    expect(s1).to_have_attribute("data-state", "free")
    ctx.close()
