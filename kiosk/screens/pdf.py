"""A PDF from the library, read inside the kiosk's own window (issue 21): its pages rendered
by PDFium (PyPI ``pypdfium2``), one at a time; a swipe or the big buttons turn the page,
"zoom in" / "zoom out" enlarge it, and a zoomed page scrolls in both directions.

Rendering runs off the UI thread (``render_pages``: bytes in, RGBA pixels out); the UI only
makes textures of the page on screen. A file that is not a PDF, or is damaged, gives the
library's usual "cannot be opened here" note, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kivy.graphics import Color, Rectangle
from kivy.graphics.texture import Texture
from kivy.metrics import dp
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

from kiosk.screens.common import btn, lab, page
from kiosk.widgets import MUTED, hrow

if TYPE_CHECKING:
    from kiosk.app import KioskApp

MAX_PAGES = 60  # a longer document shows its first pages and says so
RENDER_WIDTH_PX = 1400  # pixels across a page at zoom 1 (sharp up to about 1.5x)
ZOOMS = (1.0, 1.5, 2.0, 3.0)
SWIPE_DP = 80  # a horizontal move this long, on an unzoomed page, turns it


@dataclass(frozen=True)
class Page:
    width: int
    height: int
    rgba: bytes


@dataclass(frozen=True)
class Document:
    pages: tuple[Page, ...]
    total: int  # pages in the file (more than ``pages`` when it was cut at MAX_PAGES)


def render_pages(data: bytes, width_px: int = RENDER_WIDTH_PX,
                 max_pages: int = MAX_PAGES) -> Document:
    """Every page (up to ``max_pages``) as RGBA pixels ``width_px`` wide; ValueError for a
    file PDFium cannot open."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise ValueError(f"not a readable PDF: {exc}") from None
    try:
        out = []
        total = len(pdf)
        for i in range(min(total, max_pages)):
            pg = pdf[i]
            w, _h = pg.get_size()
            bitmap = pg.render(scale=width_px / max(w, 1.0), rev_byteorder=True,
                               force_bitmap_format=pdfium.raw.FPDFBitmap_BGRA)
            rows = bytes(bitmap.buffer)
            if bitmap.stride != bitmap.width * 4:  # drop the row padding
                rows = b"".join(rows[r * bitmap.stride:r * bitmap.stride + bitmap.width * 4]
                                for r in range(bitmap.height))
            out.append(Page(bitmap.width, bitmap.height, rows))
            pg.close()
        return Document(tuple(out), total)
    finally:
        pdf.close()


def texture_of(p: Page) -> Texture:
    tex = Texture.create(size=(p.width, p.height), colorfmt="rgba")
    tex.blit_buffer(p.rgba, colorfmt="rgba", bufferfmt="ubyte")
    tex.flip_vertical()  # PDFium's first row is the top, Kivy's the bottom
    return tex


class PageView(ScrollView):
    """One page; scrolls when zoomed, turns the page on a horizontal swipe when not."""

    def __init__(self, app: KioskApp, **kw: Any) -> None:
        super().__init__(**kw)
        self.app = app
        self._start: tuple[float, float] | None = None

    def on_touch_down(self, touch: Any) -> bool:
        if self.collide_point(*touch.pos):
            self._start = touch.pos
        return bool(super().on_touch_down(touch))

    def on_touch_up(self, touch: Any) -> bool:
        start, self._start = self._start, None
        if start is not None and self.app.pdf_zoom == ZOOMS[0]:
            dx, dy = touch.pos[0] - start[0], touch.pos[1] - start[1]
            if abs(dx) >= dp(SWIPE_DP) and abs(dx) > 2 * abs(dy):
                forward = dx < 0  # a swipe to the left brings the next page...
                if self.app.L.rtl:  # ... and to the right in a right-to-left language
                    forward = not forward
                self.app.library.turn(1 if forward else -1)
                return True
        return bool(super().on_touch_up(touch))


def portal_pdf(app: KioskApp) -> Widget:
    doc: Document | None = app.pdf_doc
    title = str((app.pdf_file or {}).get("title") or (app.pdf_file or {}).get("path", ""))
    if doc is None or not doc.pages:
        return page(app, title, [lab(app, "Loading…", 24, align="center", color=MUTED)],
                    raw_title=True, footer=[btn(app, "Back", "back", app.library.pdf_back)])
    n = app.pdf_page
    pg = doc.pages[n]
    view = PageView(app, do_scroll_x=True, do_scroll_y=True)
    view.kid = "pdf_view"
    img = Widget(size_hint=(None, None))  # the page drawn as one textured rectangle
    img.kid = "pdf_page"
    with img.canvas:
        Color(1, 1, 1, 1)
        rect = Rectangle(texture=texture_of(pg), pos=img.pos, size=img.size)

    def place(*_: Any) -> None:
        rect.pos, rect.size = img.pos, img.size

    img.bind(pos=place, size=place)

    def fit(*_: Any) -> None:  # the page as wide as the view times the zoom
        w = max(view.width, 1) * app.pdf_zoom
        img.size = (w, w * pg.height / pg.width)

    view.bind(size=fit)
    fit()
    view.add_widget(img)
    where = app.L.t("Page {n} of {total}", n=app.L.number(n + 1),
                    total=app.L.number(doc.total))
    body: list[Widget] = [view, lab(app, where, 22, raw=True, align="center", color=MUTED)]
    if doc.total > len(doc.pages):
        body.append(lab(app, "Only the first pages are shown here.", 20, align="center",
                        color=MUTED))
    turn = hrow([btn(app, "Previous page", "pdf_prev", lambda: app.library.turn(-1),
                     enabled=n > 0, height=64),
                 btn(app, "Zoom out", "pdf_zoom_out", lambda: app.library.zoom(-1),
                     enabled=app.pdf_zoom > ZOOMS[0], height=64),
                 btn(app, "Zoom in", "pdf_zoom_in", lambda: app.library.zoom(1),
                     enabled=app.pdf_zoom < ZOOMS[-1], height=64),
                 btn(app, "Next page", "pdf_next", lambda: app.library.turn(1),
                     enabled=n + 1 < len(doc.pages), height=64)],
                app.L.rtl, size_hint_y=None, height=dp(64), spacing=dp(8))
    body.append(turn)
    return page(app, title, body, raw_title=True,
                footer=[btn(app, "Back", "back", app.library.pdf_back)])
