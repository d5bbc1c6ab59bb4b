"""The offline library: search with an on-screen keyboard per script (package titles here,
the pages' text at the agent, results as big cards with a snippet), the package list, and
one package with its files."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any

from kivy.metrics import dp
from kivy.uix.gridlayout import GridLayout
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

from kiosk.client import AgentRefused, AgentUnreachable
from kiosk.i18n import fold
from kiosk.model import type_search
from kiosk.screens.common import btn, lab, page
from kiosk.widgets import MUTED, PANEL, WARN, KButton, KLabel, hrow

if TYPE_CHECKING:
    from kiosk.app import KioskApp

log = logging.getLogger(__name__)

CANNOT_OPEN = "This file cannot be opened here. Please ask the operator."
TEXT_MAX_CHARS = 20000

SEARCH_KEYS = {
    "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوية",
    "zgh": "ⴰⴱⴳⴷⴹⴻⴼⴽⵀⵃⵄⵅⵇⵉⵊⵍⵎⵏⵓⵔⵕⵖⵙⵚⵛⵜⵟⵡⵢⵣⵥ",
    "fr": "ABCDEFGHIJKLMNOPQRSTUVWXYZÉÈÀÇ",
    "en": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
}


def portal(app: KioskApp) -> Widget:
    q = app.portal_query
    field = KLabel(src=q or app.L.t("Search the library"), rtl=app.L.rtl, font_size=app.fs(28),
                   size_hint_y=None, height=dp(64), bg=list(PANEL),
                   color=(1, 1, 1, 1) if q else MUTED, padding=(dp(12), dp(4)))
    keys = GridLayout(cols=10, spacing=dp(6), size_hint_y=None)
    keys.bind(minimum_height=keys.setter("height"))
    letters = SEARCH_KEYS[app.L.lang]
    for ch in (reversed(letters) if app.L.rtl else letters):
        k = KButton(src=ch, rtl=app.L.rtl, font_size=app.fs(24), kid=f"search_{ch}",
                    size_hint_y=None, height=dp(56), fill=list(PANEL))
        k.bind(on_release=lambda _b, c=ch: app.library.type(c))
        keys.add_widget(k)
    edit = hrow([btn(app, "Space", "search_space", lambda: app.library.type(" "), height=56),
                 btn(app, "Delete", "search_del", app.library.delete, height=56)],
                app.L.rtl, size_hint_y=None, height=dp(56))
    results = GridLayout(cols=1, spacing=dp(8), size_hint_y=None)
    results.bind(minimum_height=results.setter("height"))
    packages = app.portal_packages
    if packages is None:
        results.add_widget(lab(app, "Loading…", 24, align="center", color=MUTED))
    else:
        shown = [p for p in packages if fold(q) in fold(str(p.get("title", "")))]
        hits = app.portal_hits if q and app.portal_hits_for == q else []
        if not packages:
            results.add_widget(lab(app, "No content is available yet.", 26, align="center",
                                   color=MUTED))
        elif not shown and not hits:
            results.add_widget(lab(app, "Nothing matches your search.", 26, align="center",
                                   color=MUTED))
        for p in shown:
            results.add_widget(btn(app, str(p.get("title", p.get("id", "?"))),
                                   f"pkg_{p.get('id')}", partial(app.library.open_package, p),
                                   raw=True, align="start", height=72))
        if hits:
            results.add_widget(lab(app, "Found in the pages", 22, color=MUTED))
        for i, h in enumerate(hits):
            results.add_widget(btn(app, str(h.get("title") or h.get("path", "?")), f"hit_{i}",
                                   partial(app.library.open_hit, h), raw=True, align="start",
                                   height=64))
            if h.get("snippet"):
                results.add_widget(lab(app, str(h["snippet"]), 20, raw=True, color=MUTED))
    scroll = ScrollView(do_scroll_x=False)
    scroll.add_widget(results)
    body: list[Widget] = [field, keys, edit, scroll]
    return page(app, "Offline library", body,
                footer=[btn(app, "Back", "back", app.library.back)])


def portal_item(app: KioskApp) -> Widget:
    p = app.portal_package or {}
    box = GridLayout(cols=1, spacing=dp(8), size_hint_y=None)
    box.bind(minimum_height=box.setter("height"))
    if p.get("description"):
        box.add_widget(lab(app, str(p["description"]), 24, raw=True, color=MUTED))
    if app.portal_text is not None:
        box.add_widget(lab(app, app.portal_text, 22, raw=True))
    else:
        for f in p.get("files", []):
            title = str(f.get("title") or f.get("path", "?"))
            box.add_widget(btn(app, title, f"file_{f.get('path')}",
                               partial(app.library.open_file, f), raw=True, align="start",
                               height=64))
    if app.portal_note:
        box.add_widget(lab(app, app.portal_note, 22, align="center", color=WARN))
    scroll = ScrollView(do_scroll_x=False)
    scroll.add_widget(box)
    return page(app, str(p.get("title", "")), [scroll], raw_title=True,
                footer=[btn(app, "Back", "back", app.library.item_back)])


def _load_pdf(client: Any, url: str) -> Any:
    """Off the UI thread: fetch a PDF from the agent and render its pages."""
    from kiosk.screens.pdf import render_pages

    return render_pages(client.fetch_bytes(url))


class Library:
    """The library screens' actions: the content list and text files from the agent, other
    files in the configured viewer (closed with the session's apps)."""

    def __init__(self, app: KioskApp) -> None:
        self.app = app

    def open(self) -> None:
        app = self.app
        app.portal_query = ""
        app.portal_packages = None
        app.show("portal")
        app.run_bg(app.client.content, self._on_content)

    def _on_content(self, fut: Future[Any]) -> None:
        app = self.app
        try:
            app.portal_packages = list(fut.result())
        except (AgentRefused, AgentUnreachable) as exc:
            log.warning("content list unavailable: %s", exc)
            app.portal_packages = []
        if app.screen == "portal":
            app.show("portal")

    def type(self, ch: str) -> None:
        self.app.portal_query = type_search(self.app.portal_query, ch)
        self._search()

    def delete(self) -> None:
        self.app.portal_query = self.app.portal_query[:-1]
        self._search()

    def _search(self) -> None:
        """Show the title matches now and ask the agent for the pages that hold the words;
        an answer for an older query is dropped."""
        app = self.app
        app.show("portal")
        q = app.portal_query
        if q.strip():
            app.run_bg(app.client.search, partial(self._on_hits, q), q, app.L.lang)

    def _on_hits(self, query: str, fut: Future[Any]) -> None:
        app = self.app
        if query != app.portal_query:
            return
        try:
            hits = list(fut.result())
        except (AgentRefused, AgentUnreachable) as exc:
            log.warning("search unavailable: %s", exc)
            hits = []
        app.portal_hits, app.portal_hits_for = hits, query
        app.trace("search", query=query, hits=len(hits))
        if app.screen == "portal":
            app.show("portal")

    def open_hit(self, hit: dict[str, Any]) -> None:
        """A search result: its package's screen, with the file opened as from the list."""
        pkg = next((p for p in self.app.portal_packages or []
                    if p.get("id") == hit.get("package")), None)
        if pkg is None:
            return
        f = next((f for f in pkg.get("files", []) if f.get("path") == hit.get("path")), None)
        self.open_package(pkg)
        if f is not None:
            self.open_file(f)

    def back(self) -> None:
        self.app.show("session" if self.app.session is not None else "welcome")

    def open_package(self, pkg: dict[str, Any]) -> None:
        app = self.app
        app.portal_package = pkg
        app.portal_text = None
        app.portal_note = ""
        app.show("portal_item")

    def open_file(self, f: dict[str, Any]) -> None:
        app = self.app
        url = str(f.get("url", ""))
        media = str(f.get("media_type", ""))
        app.trace("open_file", url=url)
        from kiosk import bar

        if bar.open_in_office(app, f):  # citizen desktop hook: templates in LibreOffice
            return
        if media.partition(";")[0].strip() == "application/pdf":
            app.pdf_file, app.pdf_doc, app.pdf_page, app.pdf_zoom = f, None, 0, 1.0
            app.show("portal_pdf")
            app.run_bg(_load_pdf, self._on_pdf, app.client, url)
        elif media.startswith("text/"):
            app.run_bg(app.client.fetch_text, self._on_text, url)
        elif app.cfg.open_command:
            full = url if url.startswith("http") else app.client.base + url
            try:
                app.launcher.launch_command("portal", [a.format(url=full)
                                                       for a in app.cfg.open_command])
                app.portal_note = "Opened in a new window."
            except OSError:
                app.portal_note = CANNOT_OPEN
            app.show("portal_item")
        else:
            app.portal_note = CANNOT_OPEN
            app.show("portal_item")

    def _on_pdf(self, fut: Future[Any]) -> None:
        app = self.app
        try:
            app.pdf_doc = fut.result()
        except (AgentUnreachable, ValueError) as exc:
            log.warning("pdf %s: %s", (app.pdf_file or {}).get("url"), exc)
            app.portal_note = CANNOT_OPEN
            if app.screen == "portal_pdf":
                app.show("portal_item")
            return
        app.trace("pdf_open", pages=len(app.pdf_doc.pages), total=app.pdf_doc.total)
        if app.screen == "portal_pdf":
            app.show("portal_pdf")

    def turn(self, step: int) -> None:
        app = self.app
        doc = app.pdf_doc
        if doc is None:
            return
        n = min(max(app.pdf_page + step, 0), len(doc.pages) - 1)
        if n != app.pdf_page:
            app.pdf_page, app.pdf_zoom = n, 1.0
            app.trace("pdf_page", page=n)
            app.show("portal_pdf")

    def zoom(self, step: int) -> None:
        from kiosk.screens.pdf import ZOOMS

        app = self.app
        i = min(max(ZOOMS.index(app.pdf_zoom) + step if app.pdf_zoom in ZOOMS else 0, 0),
                len(ZOOMS) - 1)
        app.pdf_zoom = ZOOMS[i]
        app.trace("pdf_zoom", zoom=app.pdf_zoom)
        app.show("portal_pdf")

    def pdf_back(self) -> None:
        app = self.app
        app.pdf_doc = None  # the pixels go with the screen
        app.show("portal_item")

    def _on_text(self, fut: Future[Any]) -> None:
        app = self.app
        try:
            app.portal_text = str(fut.result())[:TEXT_MAX_CHARS]
        except AgentUnreachable:
            app.portal_note = CANNOT_OPEN
        if app.screen == "portal_item":
            app.show("portal_item")

    def item_back(self) -> None:
        app = self.app
        if app.portal_text is not None:
            app.portal_text = None
            app.show("portal_item")
        else:
            app.show("portal")
