"""The anonymous visit profile at the counter (issue 18, CONTRACT §9b) in a real browser
(Debian's Chromium through Playwright), in French and Arabic: three rows of big buttons in
the start form, "skip" chosen unless the operator taps an answer; the closed session record
in the ledger (read from its files) carries what was tapped, or no profile when skipped.
Screenshots go to test-artifacts/console/profile-*.png."""

from __future__ import annotations

import re
from typing import Any

import pytest
from console.console_support import ARTIFACTS, ServedAgent, ledger_records
from playwright.sync_api import Page, expect

from tests.console.test_console_browser import card, login

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
TIMEOUT = 15_000


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"profile-{name}.png"), full_page=True)


def closed(served: ServedAgent, session_id: str) -> dict[str, Any]:
    [rec] = [r for r in ledger_records(served.cfg.data_dir)
             if r["type"] == "session" and r["id"] == session_id]
    return rec


def end_on(served: ServedAgent, sid: str) -> str:
    status, body = served.station(sid, "GET", "/session")
    assert status == 200 and body["session"] is not None, body
    session_id = str(body["session"]["id"])
    assert served.station(sid, "POST", "/session/end")[0] == 200
    return session_id


def test_profile_buttons_at_the_counter_fr_and_ar(served: ServedAgent, browser: Any) -> None:
    expect.set_options(timeout=TIMEOUT)
    base = served.url
    ctx = browser.new_context(viewport={"width": 1024, "height": 900}, locale="fr-FR")
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT)
    login(page, base)
    expect(page).to_have_url(re.compile(r"/console/$"))
    assert served.station("s1", "GET", "/session")[0] == 200
    s1 = card(page, "s1")
    expect(s1).to_have_attribute("data-state", "free")
    form = s1.locator("form[action$='/start']")
    for key in ("purpose", "age_band", "gender"):
        expect(form.locator(f"[data-impact={key}] input[value='']")).to_be_checked()
    expect(form.locator(".impact-row")).to_have_count(3)
    expect(form).to_contain_text("Démarche administrative")
    expect(form).to_contain_text("Passer")
    # each button is a big touch target
    box = form.locator("[data-impact=gender] .big-choice span").nth(1).bounding_box()
    assert box is not None and box["height"] >= 48 and box["width"] >= 48, box
    # tap three answers and start
    form.locator("[data-impact=purpose] label:has-text('Emploi')").click()
    form.locator("[data-impact=age_band] label:has-text('18-24')").click()
    form.locator("[data-impact=gender] label:has-text('Femme')").click()
    expect(form.locator("[data-impact=gender] input[value=f]")).to_be_checked()
    shot(page, "fr-chosen")
    form.locator("button[value=fixed]").click()
    expect(page.locator(".flash.ok")).to_contain_text("s1")
    expect(s1).to_have_attribute("data-state", "session")
    rec = closed(served, end_on(served, "s1"))
    assert rec["profile"] == {"purpose": "job", "age_band": "18-24", "gender": "f"}

    # skipped in one tap (a row changed its mind back to "skip"), the other rows untouched
    page.reload()
    expect(s1).to_have_attribute("data-state", "free")
    form.locator("[data-impact=gender] label:has-text('Homme')").click()
    form.locator("[data-impact=gender] label.skip").click()
    form.locator("button[value=open]").click()
    expect(s1).to_have_attribute("data-state", "session")
    rec = closed(served, end_on(served, "s1"))
    assert "profile" not in rec

    # Arabic, right to left
    page.goto(f"{base}/console/lang?to=ar&next=/console/")
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(s1).to_have_attribute("data-state", "free")
    expect(form).to_contain_text("تخطي")
    expect(form).to_contain_text("امرأة")
    form.locator("[data-impact=purpose] label:has-text('إجراء إداري')").click()
    form.locator("[data-impact=age_band] label:has-text('55 فما فوق')").click()
    shot(page, "ar-chosen")
    form.locator("button[value=fixed]").click()
    expect(s1).to_have_attribute("data-state", "session")
    rec = closed(served, end_on(served, "s1"))
    assert rec["profile"] == {"purpose": "egov", "age_band": "55+"}
    ctx.close()
