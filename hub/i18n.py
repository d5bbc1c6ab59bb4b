"""The dashboard's words in English, French and Arabic (Babel catalogues, as the kiosk's).

Templates call ``_("English text", name=value)``; ``hub/locale/{fr,ar}/LC_MESSAGES/hub.po``
hold the translations (English is the msgid itself). The language of a request: the
``cac_hub_lang`` cookie (set by ``GET /lang?to=fr&next=/``, the switch on every page and on
the login page, kept for a year), else the browser's ``Accept-Language``, else English.
Arabic pages are right to left (``<html dir="rtl">``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from aiohttp import web

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


def request_lang(request: web.Request) -> str:
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGS:
        return chosen
    return from_accept_language(request.headers.get("Accept-Language", "")) or DEFAULT_LANG


def page_context(request: web.Request) -> dict[str, object]:
    """What every template gets: ``lang``, ``dir``, ``_`` and the language switch's names."""
    lang = request_lang(request)
    return {"lang": lang, "dir": "rtl" if lang in RTL else "ltr", "_": translator(lang),
            "lang_names": LANG_NAMES}


async def choose_lang(request: web.Request) -> web.Response:
    """GET /lang?to=ar&next=/path: remember the language in a cookie, go back."""
    lang = request.query.get("to", "")
    nxt = request.query.get("next", "/")
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/"
    if lang not in LANGS:
        return web.json_response({"error": "unknown_language",
                                  "message": f"to must be one of {', '.join(LANGS)}"},
                                 status=400)
    resp = web.Response(status=303, headers={"Location": nxt})
    resp.set_cookie(COOKIE, lang, max_age=COOKIE_SECONDS, httponly=True, samesite="Lax",
                    path="/")
    return resp


def setup(app: web.Application) -> None:
    app.router.add_get("/lang", choose_lang)
