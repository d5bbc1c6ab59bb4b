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
            for _line, _func, msg, _comments in extract_python(f, {"N_": None, "_": None}, [], {}):
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


def test_every_message_is_translated() -> None:
    """Templates, the JS string tables (t() in hub/static/*.js) and the Python-side words
    (N_): each msgid has a French and an Arabic translation with the same fields."""
    ids = all_msgids()
    assert len(template_msgids()) > 100 and len(i18n.js_msgids()) > 10
    assert {"Wrong name or password.", "technician", "viewer", "no data"} <= ids
    for lang in ("fr", "ar"):
        cat = i18n.catalogue(lang)
        missing = sorted(ids - set(cat))
        assert missing == [], (lang, missing)
        for msgid in ids:
            assert _fields(cat[msgid]) == _fields(msgid), (lang, msgid)


# two English words in a row in a JS string literal: a sentence built in the browser
JS_WORDS = re.compile(r"(?<![\w-])[A-Za-z]{3,}(?:\s+[A-Za-z]{2,})+")


def test_the_js_builds_no_english_words() -> None:
    """Every JS string literal outside t("...") is markup or code: no two English words in a
    row (a sentence built in the browser would be shown untranslated)."""
    import warnings

    from babel.messages import jslexer  # the lexer of Babel's JS extractor (deprecated API)

    for path in sorted((HUB / "static").glob("*.js")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            toks = [t for t in jslexer.tokenize(path.read_text(), jsx=False)
                    if t.type not in ("linecomment", "multilinecomment")]
        for i, tok in enumerate(toks):
            if tok.type != "string":
                continue
            in_t = i >= 2 and toks[i - 1].value == "(" and toks[i - 2].value == "t"
            # a data value (the fleet JSON's uplink): a key of a map or compared with
            data = (i + 1 < len(toks) and toks[i + 1].value == ":") or "".join(
                x.value for x in toks[i - 2:i]).endswith(("===", "!=="))
            text = re.sub(r"<[^>]*>", " ", tok.value[1:-1])
            if not in_t and not data and text != "use strict":
                assert not JS_WORDS.search(text), (path.name, tok.lineno, text)
    # the fleet's uplink values are shown through t() too
    assert {"internet up", "internet down", "hub link only"} <= set(i18n.js_msgids())


def test_every_alarm_text_is_translated_when_shown() -> None:
    """Each kind hub/alarms.py raises (English, as stored) comes out French and Arabic with
    its numbers; an unknown text is shown as stored."""
    from hub import alarms
    from hub.config import AlarmConfig
    from hub.fleet import CacView
    from wire.messages import Health

    now = 1_800_000_000.0
    cfg = AlarmConfig(offline_minutes=1, backlog_records=500, backlog_samples=3)
    hot = Health(at="2027-01-15T09:00:00+00:00", boot_id="b", version="1", uptime_s=1,
                 cpu_percent=1, load=[0.0], mem_percent=1, mem_total=1, disk_percent=97.0,
                 disk_free=1, disk_total=2, temps={"cpu": 91.0}, backlog=600,
                 content={"last_success_at": "2020-01-01T00:00:00+00:00"})
    seen = {}
    views = [CacView("c1", False, "offline", now - 9000, now - 1800, None, None, None, None),
             CacView("c2", True, "online", now - 9000, now, None, "1", hot, now)]
    for v in views:
        for cond in alarms.conditions(v, now, cfg, [1, 2, 3, 4, 5]):
            seen[cond.message] = cond.kind
    grew = Health(**{**{f: getattr(hot, f) for f in hot.__struct_fields__}, "backlog": 7,
                     "content": {}, "at": "bad"})
    for cond in alarms.conditions(CacView("c3", True, "online", now, now, None, "1", grew,
                                          now), now, cfg, [1, 2, 3, 4, 5]):
        seen[cond.message] = cond.kind
    never = Health(**{**{f: getattr(grew, f) for f in grew.__struct_fields__},
                      "content": {"installed": 0}})
    for cond in alarms.conditions(CacView("c4", True, "online", now - 9e5, now, None, "1",
                                          never, now), now, cfg):
        seen[cond.message] = cond.kind
    assert {k for k, _ in i18n.ALARM_KINDS.items()} == set(alarms.KINDS)
    assert len({m for m in seen}) >= 8, seen
    assert set(seen.values()) == set(alarms.KINDS), seen
    for lang in ("fr", "ar"):
        _ = i18n.translator(lang)
        for message, kind in seen.items():
            shown = i18n.alarm_text(_, kind, message)
            assert shown != message, (lang, message)
            assert re.findall(r"\d+", shown) == re.findall(r"\d+", message.split("(limit")[0]
                                                            ) + re.findall(
                r"\d+", "".join(message.split("(limit")[1:])), (lang, message, shown)
    fr = i18n.translator("fr")
    assert i18n.alarm_text(fr, "disk", "disk 97% full (limit 90%)") == \
        "disque plein à 97 % (limite 90 %)"
    assert i18n.alarm_text(fr, "disk", "something new") == "something new"


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


async def test_the_language_is_the_users_own(hub: Hub) -> None:
    """Picked on the login page, the language is saved for the account (users.language) and
    follows the technician to another browser, whatever its Accept-Language; the switch while
    logged in changes it; an account that never chose gets the browser's first guess."""
    import sqlite3

    def stored(name: str) -> str | None:
        with sqlite3.connect(f"file:{hub.config.db_path}?mode=ro", uri=True) as db:
            return users.language(db, name)

    async def login(http: aiohttp.ClientSession, name: str, password: str,
                    lang: str | None = None, accept: str = "fr") -> aiohttp.ClientResponse:
        data = {"name": name, "password": password, "next": "/alarms"}
        if lang:
            data["lang"] = lang
        return await http.post(url(hub, "/login"), data=data, allow_redirects=False,
                               headers={"Accept-Language": accept})

    def jar() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async with jar() as a:
        # the switch on the login page keeps next and adds the choice for the form
        async with a.get(url(hub, "/lang?to=ar&next=/login%3Fnext%3D%252Freports"),
                         allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login?next=/reports&lang=ar"
        async with a.get(url(hub, "/login?next=%2Freports&lang=ar"),
                         headers={"Accept-Language": "fr"}) as r:
            page = await r.text()
        assert '<input type="hidden" name="lang" value="ar">' in page
        assert '<html lang="ar" dir="rtl">' in page
        # a wrong password: the error in Arabic, nothing saved
        r = await login(a, "tech", "wrong-password", "ar")
        assert r.status == 401
        assert i18n.catalogue("ar")["Wrong name or password."] in await r.text()
        assert stored("tech") is None
        r = await login(a, "tech", PASSWORD, "ar")
        assert r.status == 303
        assert stored("tech") == "ar"

    async with jar() as b:  # another browser, in French, logs in without choosing
        r = await login(b, "tech", PASSWORD, accept="fr-FR,fr")
        assert r.status == 303
        async with b.get(url(hub, "/alarms"), headers={"Accept-Language": "fr"}) as r:
            page = await r.text()
        assert '<html lang="ar" dir="rtl">' in page
        assert f'data-role="technician">{i18n.catalogue("ar")["technician"]}<' in page
        # the switch while logged in: saved for the account
        async with b.get(url(hub, "/lang?to=fr&next=/alarms"), allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/alarms"
        assert stored("tech") == "fr"

    async with jar() as c:  # a third browser in Arabic: the account's French wins
        assert (await login(c, "tech", PASSWORD, accept="ar")).status == 303
        async with c.get(url(hub, "/reports"), headers={"Accept-Language": "ar"}) as r:
            assert '<html lang="fr" dir="ltr">' in await r.text()
        # bad input: a clear 400 and the account's language unchanged
        async with c.get(url(hub, "/lang?to=xx&next=/"), allow_redirects=False) as r:
            assert r.status == 400
        assert stored("tech") == "fr"

    with Store(hub.config.db_path) as store, store.transaction():
        users.add_user(store.db, "other", "viewer", PASSWORD, time.time())
    async with jar() as d:  # never chose: Accept-Language is the first guess
        assert (await login(d, "other", PASSWORD, accept="ar-MA,ar")).status == 303
        async with d.get(url(hub, "/alarms"), headers={"Accept-Language": "ar-MA,ar"}) as r:
            page = await r.text()
        assert '<html lang="ar" dir="rtl">' in page and stored("other") is None
        assert f'>{i18n.catalogue("ar")["viewer"]}<' in page
