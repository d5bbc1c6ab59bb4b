"""The first screen: the language choice, a voucher, the operator, the offline library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kivy.metrics import dp
from kivy.uix.widget import Widget

from kiosk.i18n import LANG_NAMES, LANGS
from kiosk.screens.common import BIG_DP, btn, lab, page
from kiosk.widgets import ACCENT, BLACK, MUTED, PANEL, KButton, hrow

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def welcome(app: KioskApp) -> Widget:
    langs = []
    for code in LANGS:
        b = KButton(src=LANG_NAMES[code], rtl=code == "ar", font_size=app.fs(28),
                    kid=f"lang_{code}", fill=list(ACCENT if code == app.L.lang else PANEL),
                    color=BLACK if code == app.L.lang else (1, 1, 1, 1),
                    size_hint_y=None, height=dp(BIG_DP), align="center")
        b.bind(on_release=lambda _b, c=code: app.choose_language(c))
        langs.append(b)
    body: list[Widget] = [
        lab(app, "Welcome to the Community Access Center", 40, align="center"),
        lab(app, "Choose your language", 22, align="center", color=MUTED),
        hrow(langs, app.L.rtl, size_hint_y=None, height=dp(BIG_DP)),
        Widget(size_hint_y=None, height=dp(12)),
        btn(app, "Start with a voucher", "start_voucher", lambda: app.show("voucher"),
            fill=ACCENT, size=30),
        hrow([btn(app, "Ask the operator", "ask_operator", lambda: app.show("operator")),
              btn(app, "Offline library", "portal", app.library.open)],
             app.L.rtl, size_hint_y=None, height=dp(BIG_DP)),
        Widget(),
    ]
    return page(app, "Welcome", body, lang_button=False)
