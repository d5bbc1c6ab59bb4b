"""The dashboard in English, French and Arabic: every message of the templates translated
(Babel catalogues hub/locale), the language from the cookie set by the switch, else from
Accept-Language, else English; Arabic pages right to left. An in-process hub on a real
broker, over HTTP."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from helpers import MosquittoBroker
from jinja2.ext import babel_extract

from hub import i18n, users
from hub.daemon import Hub
from hub.store import Store
from tests.hub.factories import hub_config

TEMPLATES = Path(i18n.__file__).with_name("templates")
PASSWORD = "dash-pass-123"


def template_msgids() -> set[str]:
    ids: set[str] = set()
    for p in sorted(TEMPLATES.glob("*.html")):
        with p.open("rb") as f:
            for _line, _func, msg, _comments in babel_extract(f, ("_",), [], {}):
                m = msg if isinstance(msg, str) or msg is None else msg[0]
                if m:  # _(variable): a msgid marked N_() in Python (python_msgids)
                    ids.add(m)
    return ids


HUB = Path(i18n.__file__).parent


def python_msgids() -> set[str]:
    """``N_("...")`` and ``_("...")`` msgids of the hub's Python modules (Babel)."""
    from babel.messages.extract import extract_python

    ids: set[str] = set()
    for p in sorted(HUB.glob("*.py")):
        with p.open("rb") as f:
            for _line, _func, msg, _comments in extract_python(f, ("N_", "_"), [], {}):
                m = msg if isinstance(msg, str) or msg is None else msg[0]
                if m:
                    ids.add(m)
    return ids


def all_msgids() -> set[str]:
    """Every msgid of the hub: templates, JS string tables (t() in hub/static), Python."""
    return template_msgids() | set(i18n.js_msgids()) | python_msgids()


def _fields(s: str) -> list[str]:
    import string
    return sorted(f for _, f, _, _ in string.Formatter().parse(s) if f)


def test_every_template_message_is_translated() -> None:
    ids = template_msgids()
    assert len(ids) > 40
    for lang in ("fr", "ar"):
        cat = i18n.catalogue(lang)
        missing = sorted(ids - set(cat))
        assert missing == [], (lang, missing)
        for msgid in ids:
            assert _fields(cat[msgid]) == _fields(msgid), (lang, msgid)


def test_accept_language_first_guess() -> None:
    assert i18n.from_accept_language("ar-MA,ar;q=0.9,fr;q=0.8") == "ar"
    assert i18n.from_accept_language("de-DE,fr;q=0.5,en;q=0.7") == "en"
    assert i18n.from_accept_language("fr;q=0, ar;q=0.1") == "ar"
    assert i18n.from_accept_language("de, *;q=0.5") is None
    assert i18n.from_accept_language("") is None


@pytest.fixture
async def hub(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[Hub]:
    cfg = hub_config(str(tmp_path / "hub"), mosquitto.port, 0, hub_id="hub-i18n")
    with Store(cfg.db_path) as store, store.transaction():
        users.add_user(store.db, "tech", "technician", PASSWORD, time.time())
    h = Hub(cfg)
    await h.start()
    assert await asyncio.to_thread(h.link.wait_connected, 10.0)
    try:
        yield h
    finally:
        await h.stop()


def url(hub: Hub, path: str) -> str:
    return f"http://127.0.0.1:{hub.http_port}{path}"


def english_left(page: str, lang: str) -> list[str]:
    """Messages shown in English on a page in ``lang`` (whose translation differs)."""
    cat = i18n.catalogue(lang)
    text = html.unescape(page)
    return sorted(m for m in template_msgids() if "{" not in m and cat[m] != m
                  and re.search(rf">\s*{re.escape(m)}\s*<", text))


async def test_pages_in_each_language_and_the_switch(hub: Hub) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async def get(path: str, accept: str = "") -> str:
            headers = {"Accept-Language": accept} if accept else {}
            async with http.get(url(hub, path), headers=headers) as resp:
                assert resp.status == 200, path
                return await resp.text()

        page = await get("/login")
        assert '<html lang="en" dir="ltr">' in page and "<h1>Log in</h1>" in page
        page = await get("/login", "ar-MA,ar;q=0.9,fr;q=0.8")
        assert '<html lang="ar" dir="rtl">' in page and "<h1>تسجيل الدخول</h1>" in page
        assert english_left(page, "ar") == []
        page = await get("/login", "fr-FR,fr;q=0.9")
        assert '<html lang="fr" dir="ltr">' in page and "<h1>Connexion</h1>" in page

        # the switch on the login page: remembered in a cookie, over Accept-Language
        assert 'href="/lang?to=fr&amp;next=/login"' in page
        async with http.get(url(hub, "/lang?to=ar&next=/login"), allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login?lang=ar"
        cookie = next(c for c in http.cookie_jar if c.key == i18n.COOKIE)
        assert cookie.value == "ar" and cookie["httponly"]
        assert '<html lang="ar" dir="rtl">' in await get("/login", "fr")

        # bad input: a clear 400, the cookie unchanged; no open redirect
        async with http.get(url(hub, "/lang?to=xx&next=/"), allow_redirects=False) as r:
            assert r.status == 400 and (await r.json())["error"] == "unknown_language"
        assert next(c for c in http.cookie_jar if c.key == i18n.COOKIE).value == "ar"
        async with http.get(url(hub, "/lang?to=fr&next=//evil.example/"),
                            allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"

        # logged in, every page in Arabic then French, nothing left in English
        async with http.post(url(hub, "/login"), data={"name": "tech", "password": PASSWORD,
                                                       "next": "/"},
                             allow_redirects=False) as r:
            assert r.status == 303
        for lang in ("ar", "fr"):
            async with http.get(url(hub, f"/lang?to={lang}&next=/alarms")) as r:
                assert r.status == 200
            for path in ("/alarms", "/commands", "/reports"):
                page = await get(path)
                want = "rtl" if lang == "ar" else "ltr"
                assert f'<html lang="{lang}" dir="{want}">' in page, path
                assert english_left(page, lang) == [], (lang, path)
        fr = i18n.catalogue("fr")
        assert f">{fr['Usage and revenue']}<" in page


SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard" / "i18n"


def browse(base: str) -> dict[str, str]:
    """Chromium with an Arabic browser locale: the first guess is Arabic; the switch to
    French is remembered; screenshots of each page in both languages."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium",
                               args=["--no-sandbox", "--disable-gpu"], timeout=60_000)
        try:
            ctx = b.new_context(locale="ar-MA", viewport={"width": 1280, "height": 800})
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{base}/")
            seen["first"] = str(page.get_attribute("html", "dir"))
            page.screenshot(path=str(SHOTS / "ar-login.png"), full_page=True)
            page.fill("input[name=name]", "tech")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#who")
            for lang in ("ar", "fr"):
                page.click(f"#langs a[lang={lang}]")
                for name in ("alarms", "commands", "reports"):
                    page.goto(f"{base}/{name}")
                    seen[f"{lang}-{name}"] = str(page.get_attribute("html", "dir"))
                    page.screenshot(path=str(SHOTS / f"{lang}-{name}.png"), full_page=True)
            page.goto(f"{base}/reports")
            seen["remembered"] = str(page.get_attribute("html", "lang"))
        finally:
            b.close()
    return seen


async def test_a_browser_in_arabic_then_french(hub: Hub) -> None:
    seen = await asyncio.to_thread(browse, f"http://127.0.0.1:{hub.http_port}")
    assert seen["first"] == "rtl"  # the browser's Accept-Language: Arabic
    for name in ("alarms", "commands", "reports"):
        assert seen[f"ar-{name}"] == "rtl" and seen[f"fr-{name}"] == "ltr"
    assert seen["remembered"] == "fr"
