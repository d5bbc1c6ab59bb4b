"""Kivy widgets that draw localised text correctly: every label goes through
``i18n.layout_markup`` (wrap in logical order, then shape and reorder each line, one font
per script run). High-contrast colours, touch targets of at least 48 dp."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from kivy.clock import Clock
from kivy.core.text import Label as CoreLabel
from kivy.graphics import Color, Rectangle, RoundedRectangle
from kivy.metrics import dp
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from kiosk.i18n import font_path, layout_markup
from kiosk.icons import ICON_SCALE, icon_markup

BG = (0.05, 0.06, 0.08, 1)
PANEL = (0.14, 0.16, 0.20, 1)
RAISED = (0.22, 0.26, 0.36, 1)   # a button on a panel (white on it: 12:1)
FG = (1, 1, 1, 1)
MUTED = (0.80, 0.84, 0.90, 1)
ACCENT = (1.0, 0.83, 0.0, 1)     # yellow with black text: 15:1 contrast
DANGER = (0.80, 0.10, 0.10, 1)   # white on it: 5.6:1
GOOD = (0.0, 0.45, 0.22, 1)      # white on it: 7.4:1
WARN = (0.95, 0.45, 0.0, 1)
BLACK = (0, 0, 0, 1)
MIN_TOUCH_DP = 48
LONG_PRESS_SECONDS = 3.0      # hidden corner that opens the operator PIN screen


@cache
def _core(script: str, size: float) -> CoreLabel:
    return CoreLabel(font_name=font_path(script), font_size=size)


@cache
def measure(script: str, text: str, size: float) -> float:
    w, _h = _core(script, size).get_extents(text)
    return float(w)


class KLabel(Label):
    """A label of logical text (``src``) laid out for its language (``rtl``), with an icon
    (``icon``: a name of ``kiosk.icons``) before the words in reading order."""

    src = StringProperty("")
    icon = StringProperty("")
    rtl = BooleanProperty(False)
    align = StringProperty("start")  # start | center | end (mirrored for RTL)
    auto_height = BooleanProperty(False)
    bg = ListProperty([0, 0, 0, 0])

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("markup", True)
        kw.setdefault("color", FG)
        kw.setdefault("valign", "middle")
        super().__init__(**kw)
        self.font_name = font_path("latin")
        with self.canvas.before:
            self._bg_color = Color(*self.bg)
            self._bg_rect = Rectangle(pos=self.pos, size=self.size)
        self.bind(src=self._relayout, rtl=self._relayout, width=self._relayout,
                  icon=self._relayout,
                  font_size=self._relayout, align=self._relayout,
                  pos=self._redraw, size=self._redraw, bg=self._redraw,
                  texture_size=self._fit)
        self._laid_for: tuple[object, ...] = ()
        self._relayout()

    def _redraw(self, *_: object) -> None:
        self._bg_color.rgba = self.bg
        self._bg_rect.pos = self.pos
        self._bg_rect.size = self.size

    def _relayout(self, *_: object) -> None:
        pad = float(self.padding[0] + self.padding[2])
        width = max(0.0, self.width - pad - dp(4))
        key = (self.src, self.icon, self.rtl, round(width), self.font_size, self.align)
        if key == self._laid_for:
            return
        self._laid_for = key
        halign = {"start": "right" if self.rtl else "left", "center": "center",
                  "end": "left" if self.rtl else "right"}[self.align]
        self.halign = halign
        icon = icon_markup(self.icon, self.rtl, self.font_size * ICON_SCALE)
        if icon:
            width = max(0.0, width - self.font_size * (ICON_SCALE + 0.5))
        laid = layout_markup(self.src, self.rtl, width, self.font_size, measure)
        self.text_size = (max(1.0, self.width - pad), None)
        self.text = with_icon(laid.markup, icon, self.rtl) if icon else laid.markup

    def _fit(self, *_: object) -> None:
        if self.auto_height:
            self.height = max(dp(MIN_TOUCH_DP) * 0.5, self.texture_size[1] + dp(8))


def with_icon(markup: str, icon: str, rtl: bool) -> str:
    """``icon`` before the first line's words in reading order: on the right for RTL."""
    first, nl, rest = markup.partition("\n")
    if not first:
        return icon + nl + rest
    first = f"{first}  {icon}" if rtl else f"{icon}  {first}"
    return first + nl + rest


class KButton(ButtonBehavior, KLabel):
    """A large, high-contrast button; ``kid`` names it for tests and traces."""

    fill = ListProperty(list(PANEL))
    kid = StringProperty("")
    enabled = BooleanProperty(True)
    radius = NumericProperty(dp(10))

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("align", "center")
        kw.setdefault("padding", (dp(12), dp(8)))
        super().__init__(**kw)
        if self.height < dp(MIN_TOUCH_DP):
            self.height = dp(MIN_TOUCH_DP)
        with self.canvas.before:
            self._fill_color = Color(*self.fill)
            self._fill_rect = RoundedRectangle(pos=self.pos, size=self.size,
                                               radius=[self.radius])
        self.bind(pos=self._repaint, size=self._repaint, fill=self._repaint,
                  state=self._repaint, enabled=self._repaint)

    def _repaint(self, *_: object) -> None:
        r, g, b, a = self.fill
        if not self.enabled:
            r, g, b = (r * 0.4 + 0.1, g * 0.4 + 0.1, b * 0.4 + 0.1)
        elif self.state == "down":
            r, g, b = (r * 0.7, g * 0.7, b * 0.7)
        self._fill_color.rgba = (r, g, b, a)
        self._fill_rect.pos = self.pos
        self._fill_rect.size = self.size

    def on_touch_down(self, touch: Any) -> bool:
        if not self.enabled:
            return bool(self.collide_point(*touch.pos))
        return bool(super().on_touch_down(touch))


class Corner(Widget):
    """An invisible corner: a long press opens the operator's PIN screen."""

    def __init__(self, on_long_press: Callable[[], None], **kw: Any) -> None:
        super().__init__(**kw)
        self._cb = on_long_press
        self._ev: Any = None

    def on_touch_down(self, touch: Any) -> bool:
        if not self.collide_point(*touch.pos):
            return False
        self._ev = Clock.schedule_once(lambda _dt: self._cb(), LONG_PRESS_SECONDS)
        touch.grab(self)
        return True

    def on_touch_up(self, touch: Any) -> bool:
        if touch.grab_current is self:
            touch.ungrab(self)
            if self._ev is not None:
                self._ev.cancel()
                self._ev = None
            return True
        return False


class Row(BoxLayout):
    """A horizontal row; ``mirrored``: its children were added right to left (Arabic)."""

    mirrored = BooleanProperty(False)


def hrow(widgets: list[Widget], rtl: bool, **kw: Any) -> BoxLayout:
    """A horizontal row in reading order: mirrored for right-to-left languages."""
    kw.setdefault("spacing", dp(12))
    row = Row(orientation="horizontal", mirrored=rtl, **kw)
    for w in reversed(widgets) if rtl else widgets:
        row.add_widget(w)
    return row


def vbox(widgets: list[Widget], **kw: Any) -> BoxLayout:
    kw.setdefault("spacing", dp(12))
    box = BoxLayout(orientation="vertical", **kw)
    for w in widgets:
        box.add_widget(w)
    return box


class Panel(BoxLayout):
    """A vertical box with a background colour."""

    fill = ListProperty(list(PANEL))

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("orientation", "vertical")
        super().__init__(**kw)
        with self.canvas.before:
            self._c = Color(*self.fill)
            self._r = RoundedRectangle(pos=self.pos, size=self.size, radius=[dp(12)])
        self.bind(pos=self._up, size=self._up, fill=self._up)

    def _up(self, *_: object) -> None:
        self._c.rgba = self.fill
        self._r.pos = self.pos
        self._r.size = self.size


def reading_order(root: Widget) -> list[Widget]:
    """Every widget under ``root`` in the order a reader meets them: top to bottom, and
    along a row in the language's direction (Kivy keeps children last-added first)."""
    out = [root]
    kids = list(reversed(root.children))
    if isinstance(root, Row) and root.mirrored:
        kids.reverse()
    for child in kids:
        out.extend(reading_order(child))
    return out


def walk(root: Widget) -> list[Widget]:
    """Every widget under ``root`` (itself included)."""
    out = [root]
    for child in root.children:
        out.extend(walk(child))
    return out
