"""The dashboard's words in English, French and Arabic (Babel catalogues, as the kiosk's).

Templates call ``_("English text", name=value)``; ``hub/locale/{fr,ar}/LC_MESSAGES/hub.po``
hold the translations (English is the msgid itself). The language of a request: the
logged-in technician's own choice (``users.language``, saved when she picks a language on
the login page or with the switch while logged in), else the ``cac_hub_lang`` cookie (set by
``GET /lang?to=fr&next=/``, the switch on every page and on the login page, kept for a year),
else the browser's ``Accept-Language``, else English. Arabic pages are right to left
(``<html dir="rtl">``).

Words built by the browser (hub/static/*.js) are ``t("English text", {field: value})``
calls there; every page carries their translations as JSON (``js_table``, read by
hub/static/i18n.js). Words built in Python are marked ``N_("...")`` (extracted by the test
that checks every msgid is translated). Alarm texts stay in English in the store and are
translated when shown (``alarm_text``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path

from aiohttp import web
from babel.messages.extract import extract_javascript
from yarl import URL

from common.pocatalogue import read_catalogue

LANGS = ("en", "fr", "ar")
DEFAULT_LANG = "en"
RTL = frozenset({"ar"})
LANG_NAMES = {"en": "English", "fr": "Français", "ar": "العربية"}
LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "hub"
COOKIE = "cac_hub_lang"
COOKIE_SECONDS = 365 * 24 * 3600


@cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid -> translation for ``lang`` (untranslated and fuzzy entries left out)."""
    return read_catalogue(LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po")


def translator(lang: str) -> Callable[..., str]:
    """``_(msgid, **fields)`` for ``lang``: the translation, else the English msgid."""
    cat = catalogue(lang) if lang != DEFAULT_LANG else {}

    def _(msgid: str, **kw: object) -> str:
        text = cat.get(msgid, msgid)
        return text.format(**kw) if kw else text
    return _


def from_accept_language(header: str) -> str | None:
    """The first of our languages in an ``Accept-Language`` header, by its q weight."""
    prefs: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in LANGS and q > 0:
            prefs.append((-q, i, base))
    return min(prefs)[2] if prefs else None


def request_lang(request: web.Request, user_lang: str | None = None) -> str:
    """The user's own choice, else the cookie, else ``Accept-Language``, else English."""
    if user_lang in LANGS:
        return str(user_lang)
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGS:
        return chosen
    return from_accept_language(request.headers.get("Accept-Language", "")) or DEFAULT_LANG


def N_(msgid: str) -> str:  # noqa: N802 - the gettext name for "mark, translate later"
    """Marks a msgid built in Python for extraction; translated where it is shown."""
    return msgid


ROLE_NAMES = {"viewer": N_("viewer"), "technician": N_("technician")}
COMMAND_STATUSES = {"pending": N_("pending"), "done": N_("done"), "failed": N_("failed"),
                    "expired": N_("expired"), "no answer": N_("no answer")}
STATIC_DIR = Path(__file__).with_name("static")


@cache
def js_msgids() -> tuple[str, ...]:
    """The msgids of every ``t("...")`` call in hub/static/*.js (Babel's JS extractor)."""
    ids: dict[str, None] = {}
    for path in sorted(STATIC_DIR.glob("*.js")):
        with path.open("rb") as f:
            for _line, _func, msg, _comments in extract_javascript(f, {"t": None}, [], {}):
                ids[msg if isinstance(msg, str) else msg[0]] = None
    return tuple(ids)


@cache
def js_table(lang: str) -> dict[str, str]:
    """msgid -> translation of the browser's words, for ``<script id="i18n-js">``."""
    _ = translator(lang)
    return {m: _(m) for m in js_msgids()}


def page_context(request: web.Request, user_lang: str | None = None) -> dict[str, object]:
    """What every template gets: ``lang``, ``dir``, ``_``, the language switch's names, the
    browser's words (``js_strings``) and ``alarm_text``."""
    lang = request_lang(request, user_lang)
    _ = translator(lang)
    return {"lang": lang, "dir": "rtl" if lang in RTL else "ltr", "_": _,
            "lang_names": LANG_NAMES, "js_strings": js_table(lang),
            "alarm_text": lambda kind, message: alarm_text(_, kind, message),
            "alarm_kind": lambda kind: _(ALARM_KINDS.get(kind, kind)),
            "command_status": lambda v: _(COMMAND_STATUSES[v]) if v in COMMAND_STATUSES else v}


# ---------------------------------------------------------------- alarm texts

ALARM_KINDS = {"offline": N_("offline"), "disk": N_("disk"), "temperature": N_("temperature"),
               "backlog": N_("backlog"), "clock_skew": N_("clock skew"),
               "content_stale": N_("content stale")}
_NUM = r"[-+]?\d+(?:\.\d+)?"
# hub/alarms.py's English texts (as stored) -> a msgid with the same numbers as fields;
# tests/hub/test_dashboard_i18n.py raises every kind with alarms.conditions and checks that
# each text is matched here, so a changed wording fails there, not silently in English
ALARM_TEXTS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (kind, re.compile(pattern), msgid) for kind, pattern, msgid in (
        ("offline", rf"offline, last heard (?P<mins>{_NUM}) min ago",
         N_("offline, last heard {mins} min ago")),
        ("disk", rf"disk (?P<pct>{_NUM})% full \(limit (?P<limit>{_NUM})%\)",
         N_("disk {pct}% full (limit {limit}%)")),
        ("temperature", rf"temperature (?P<c>{_NUM}) °C \(limit (?P<limit>{_NUM})\)",
         N_("temperature {c} °C (limit {limit} °C)")),
        ("backlog", rf"(?P<n>{_NUM}) usage records unacknowledged",
         N_("{n} usage records unacknowledged")),
        ("backlog", rf"backlog grew at each of the last (?P<k>{_NUM}) reports "
                    rf"\(now (?P<n>{_NUM})\)",
         N_("backlog grew at each of the last {k} reports (now {n})")),
        ("clock_skew", rf"clock off by (?P<s>{_NUM}) s", N_("clock off by {s} s")),
        ("content_stale", rf"content last synced (?P<h>{_NUM}) h ago",
         N_("content last synced {h} h ago")),
        ("content_stale", r"content never synced", N_("content never synced")),
    ))


def alarm_text(_: Callable[..., str], kind: str, message: str) -> str:
    """An alarm's stored English text in the page's language (as stored if unknown)."""
    for k, pattern, msgid in ALARM_TEXTS:
        if k == kind:
            m = pattern.fullmatch(message)
            if m:
                return _(msgid, **m.groupdict())
    return message


# ---------------------------------------------------------------- the switch

Remember = Callable[[web.Request, str], Awaitable[None]]


async def choose_lang(request: web.Request, remember: Remember | None = None
                      ) -> web.Response:
    """GET /lang?to=ar&next=/path: remember the language in a cookie (and, through
    ``remember``, for the logged-in user), go back. On the login page the choice rides along
    in ``/login?lang=ar`` so that the login saves it for the account."""
    lang = request.query.get("to", "")
    nxt = request.query.get("next", "/")
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        nxt = "/"
    if lang not in LANGS:
        return web.json_response({"error": "unknown_language",
                                  "message": f"to must be one of {', '.join(LANGS)}"},
                                 status=400)
    if remember is not None:
        await remember(request, lang)
    target = URL(nxt)
    if target.path == "/login":  # the login saves it for the account (form field "lang")
        nxt = str(target.update_query(lang=lang))
    resp = web.Response(status=303, headers={"Location": nxt})
    set_cookie(resp, lang)
    return resp


def set_cookie(resp: web.StreamResponse, lang: str) -> None:
    resp.set_cookie(COOKIE, lang, max_age=COOKIE_SECONDS, httponly=True, samesite="Lax",
                    path="/")


def setup(app: web.Application, remember: Remember | None = None) -> None:
    async def handler(request: web.Request) -> web.Response:
        return await choose_lang(request, remember)
    app.router.add_get("/lang", handler)
