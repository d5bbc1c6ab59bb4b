"""What every screen is made of: translated labels, buttons, the header with the larger-text
and language buttons, the page frame with its footer row, and the body of a dialog. Screens
are built in Python from the app's state for the current language (so a language change or
the larger-text option simply rebuilds the screen); rows are mirrored for Arabic."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.widget import Widget

from kiosk.icons import ICON_FOR_SCREEN, ICON_FOR_TEXT, for_kid
from kiosk.widgets import ACCENT, BLACK, PANEL, RAISED, WARN, KButton, KLabel, Panel, hrow, vbox

if TYPE_CHECKING:
    from kiosk.app import KioskApp

KEY_DP = 72  # keypad keys
VOUCHER_KEY_DP = 60  # 32 symbols + edit row on an 800 px screen
BIG_DP = 88  # main actions


def lab(app: KioskApp, text: str, size: float = 24, *, raw: bool = False,
        color: Any = None, **kw: Any) -> KLabel:
    """A label: ``text`` is a msgid (translated) unless ``raw`` (already localised data);
    a state's msgid brings its icon (``kiosk.icons.ICON_FOR_TEXT``) unless ``icon`` is given."""
    if not raw:
        kw.setdefault("icon", ICON_FOR_TEXT.get(text, ""))
    kw.setdefault("auto_height", "height" not in kw and "size_hint_y" not in kw)
    if kw["auto_height"]:
        kw.setdefault("size_hint_y", None)
    if color is not None:
        kw["color"] = color
    return KLabel(src=text if raw else app.L.t(text), rtl=app.L.rtl,
                  font_size=app.fs(size), **kw)


def btn(app: KioskApp, text: str, kid: str, on_press: Callable[[], object], *,
        size: float = 26, height: float = BIG_DP, fill: Any = PANEL, raw: bool = False,
        enabled: bool = True, **kw: Any) -> KButton:
    """A button; its icon comes from its ``kid`` (``kiosk.icons.ICON_FOR_KID``) unless
    ``icon`` is given."""
    kw.setdefault("icon", for_kid(kid))
    color = BLACK if fill in (ACCENT, WARN) else (1, 1, 1, 1)
    b = KButton(src=text if raw else app.L.t(text), rtl=app.L.rtl, font_size=app.fs(size),
                kid=kid, fill=list(fill), color=color, enabled=enabled,
                size_hint_y=None, height=max(dp(48), dp(height)), **kw)
    b.bind(on_release=lambda *_: on_press() if b.enabled else None)
    return b


def header(app: KioskApp, title: str, *, lang_button: bool = True,
           raw_title: bool = False) -> BoxLayout:
    items: list[Widget] = [lab(app, title, 30, raw=raw_title, size_hint_y=1,
                               auto_height=False, icon=ICON_FOR_SCREEN.get(app.screen, ""))]
    items.append(listen_button(app))
    big = btn(app, "Larger text", "large_text", app.toggle_large_text, size=20, height=56,
              size_hint_x=None, width=dp(250),
              fill=ACCENT if app.large_text else PANEL)
    items.append(big)
    if lang_button:
        items.append(btn(app, "Language", "lang_menu", lambda: app.show("welcome"), size=20,
                         height=56, size_hint_x=None, width=dp(190)))
    return hrow(items, app.L.rtl, size_hint_y=None, height=dp(64))


def listen_button(app: KioskApp, width: float = 170) -> KButton:
    """Speaks the screen (or the open dialog): its main text and its choices."""
    return btn(app, "Listen", "listen", app.listen, size=20, height=56, size_hint_x=None,
               width=dp(width), fill=RAISED)


def page(app: KioskApp, title: str, body: list[Widget], *, lang_button: bool = True,
         footer: list[Widget] | None = None, raw_title: bool = False) -> BoxLayout:
    root = vbox([header(app, title, lang_button=lang_button, raw_title=raw_title)],
                padding=dp(20), spacing=dp(16))
    content = vbox(body, spacing=dp(16))
    root.add_widget(content)
    if footer:
        root.add_widget(hrow(footer, app.L.rtl, size_hint_y=None, height=dp(BIG_DP)))
    return root


def modal_body(app: KioskApp, title: str, text: str, buttons: list[KButton], *,
               raw_text: bool = False, live_key: str | None = None) -> Panel:
    panel = Panel(padding=dp(24), spacing=dp(16), fill=list(PANEL))
    panel.add_widget(hrow([lab(app, title, 32, align="center", size_hint_y=1,
                               auto_height=False), listen_button(app)],
                          app.L.rtl, size_hint_y=None, height=dp(64)))
    body = lab(app, text, 26, raw=raw_text, align="center")
    if live_key:
        app.live[live_key] = body
    panel.add_widget(body)
    panel.add_widget(Widget())  # the room left goes between the words and the buttons
    panel.add_widget(hrow(list(buttons), app.L.rtl, size_hint_y=None, height=dp(BIG_DP)))
    return panel
