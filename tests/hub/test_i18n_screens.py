"""Every dashboard page in English, French and Arabic in Debian's Chromium, against real
processes (Mosquitto, `cac-hub`, `cac-simulate`, a real `cac-agent`: the stack of
tests/hub/test_dashboard_e2e.py). The language is picked with the login page's switch;
each page is right to left in Arabic, shows no English message whose translation differs
(the words the browser builds included), and the login page's buttons and language links
are touch targets of 48 px or more. Screenshots: test-artifacts/hub/<lang>-<page>.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub import i18n
from tests.hub.test_dashboard_e2e import (
    AGENT_CAC,
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    TECH,
    Stack,
    get_json,
    sim_ids,
    until,
)
from tests.hub.test_dashboard_i18n import all_msgids

pytestmark = [pytest.mark.system, pytest.mark.slow]

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "hub"
PAGES = ("fleet", "cac", "alarms", "commands", "reports")

# the visible text nodes of the page, and what overflows the window sideways
TEXTS_JS = """() => {
  const out = [];
  const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (w.nextNode()) {
    const n = w.currentNode, el = n.parentElement;
    if (!el || el.closest("script,style,noscript,svg title")) { continue; }
    const t = n.textContent.trim();
    if (t) { out.push(t); }
  }
  for (const el of document.querySelectorAll("[placeholder],[title],[aria-label]")) {
    for (const a of ["placeholder", "title", "aria-label"]) {
      if (el.getAttribute(a)) { out.push(el.getAttribute(a).trim()); }
    }
  }
  return out;
}"""


def english_left(texts: list[str], lang: str) -> list[str]:
    """Texts that are an English msgid (no fields) whose translation is different."""
    cat = i18n.catalogue(lang)
    ids = {m for m in all_msgids() if "{" not in m and cat.get(m, m) != m}
    return sorted({t for t in texts if t in ids or t.rstrip(" .:") in ids})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("i18n-screens"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def shoot(stack: Stack, lang: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    seen: dict[str, Any] = {"left": {}, "dir": {}, "overflow": {}}
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            ctx = b.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{stack.hub}/")
            assert "/login" in page.url
            page.click(f"#langs a[lang={lang}]")  # the login page's switch
            page.wait_for_selector(f"html[lang={lang}]")
            seen["targets"] = page.eval_on_selector_all(
                "#langs a, form.login button", "els => els.map(e => { const r = "
                "e.getBoundingClientRect(); return [e.textContent, r.width, r.height]; })")
            page.screenshot(path=str(SHOTS / f"{lang}-login.png"), full_page=True)
            seen["left"]["login"] = english_left(page.evaluate(TEXTS_JS), lang)
            seen["dir"]["login"] = page.get_attribute("html", "dir")
            seen["overflow"]["login"] = page.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth")
            page.fill("input[name=name]", TECH)
            page.fill("input[name=password]", PASSWORD)
            page.click("form.login button[type=submit]")
            page.wait_for_selector("#who")
            urls = {"fleet": "/", "cac": f"/cacs/{AGENT_CAC}", "alarms": "/alarms",
                    "commands": "/commands", "reports": "/reports"}
            for name in PAGES:
                page.goto(stack.hub + urls[name])
                if name == "fleet":
                    page.wait_for_selector("#fleet[data-loaded='1']")
                    seen["states"] = page.eval_on_selector_all(
                        "#fleet td.state", "tds => tds.map(td => td.textContent)")
                    seen["updated"] = page.text_content("#updated")
                page.screenshot(path=str(SHOTS / f"{lang}-{name}.png"), full_page=True)
                seen["left"][name] = english_left(page.evaluate(TEXTS_JS), lang)
                seen["dir"][name] = page.get_attribute("html", "dir")
                seen["overflow"][name] = page.evaluate(
                    "() => document.documentElement.scrollWidth - window.innerWidth")
            seen["alarm_texts"] = page.goto(stack.hub + "/alarms") and page.eval_on_selector_all(
                "#alarms td.message", "tds => tds.map(td => td.textContent)")
            seen["lang"] = page.get_attribute("html", "lang")
        finally:
            b.close()
    return seen


@pytest.mark.parametrize("lang", ["en", "fr", "ar"])
def test_every_dashboard_page_in_each_language(stack: Stack, lang: str) -> None:
    # something on every page first: the killed CAC's offline alarm, the agent's health
    until(lambda: any(a["kind"] == "offline" for a in get_json(
        f"{stack.hub}/api/v1/alarms?active=1", stack.api_token)), "the offline alarm")
    until(lambda: any(c["cac_id"] == AGENT_CAC and c["health"] for c in get_json(
        f"{stack.hub}/api/v1/cacs", stack.api_token)), "the agent's health")
    seen = shoot(stack, lang)
    want_dir = "rtl" if lang == "ar" else "ltr"
    assert seen["lang"] == lang
    assert seen["dir"] == {p: want_dir for p in ("login", *PAGES)}
    if lang != "en":
        assert seen["left"] == {p: [] for p in ("login", *PAGES)}, seen["left"]
    _ = i18n.translator(lang)
    # the words the browser builds: the fleet's states and the update line
    assert set(seen["states"]) <= {_("online"), _("offline")} and len(seen["states"]) >= \
        len(sim_ids())
    assert _("offline") in seen["states"]
    assert seen["updated"].endswith("UTC") and (lang == "en" or "updated" not in seen["updated"])
    # the stored English alarm text, shown in the page's language
    start = _("offline, last heard {mins} min ago").split("{")[0]
    offline = [t for t in seen["alarm_texts"] if t.startswith(start)]
    assert offline, seen["alarm_texts"]
    # touch targets of the login page: the three languages and the button
    assert len(seen["targets"]) == 4
    for text, w, h in seen["targets"]:
        assert w >= 48 and h >= 48, (text, w, h)
    # nothing wider than the window
    assert seen["overflow"] == {p: 0 for p in ("login", *PAGES)}, seen["overflow"]
