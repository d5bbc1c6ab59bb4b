"""The operator's exit PIN, opened by a long press in the top corner."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.widget import Widget

from kiosk.config import check_pin
from kiosk.model import FailureLockout, pin_return_screen, type_pin
from kiosk.screens.common import KEY_DP, btn, lab, page
from kiosk.widgets import DANGER, PANEL, WARN, KButton, KLabel

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def pin(app: KioskApp) -> Widget:
    display = KLabel(src="●" * len(app.pin_typed) or " ", font_size=app.fs(44),
                     align="center", size_hint_y=None, height=dp(76), bg=list(PANEL))
    keys = GridLayout(cols=3, spacing=dp(8), size_hint_y=None, size_hint_x=None,
                      width=dp(3 * 110))
    keys.bind(minimum_height=keys.setter("height"))
    for sym in "123456789 0<":
        if sym == " ":
            keys.add_widget(Widget(size_hint_y=None, height=dp(KEY_DP)))
            continue
        k = KButton(src="⌫" if sym == "<" else sym, font_size=app.fs(30), kid=f"pin_{sym}",
                    size_hint_y=None, height=dp(KEY_DP), fill=list(PANEL))
        k.bind(on_release=lambda _b, s=sym: app.pin_entry.key(s))
        keys.add_widget(k)
    center = BoxLayout(size_hint_y=None, height=dp(4 * (KEY_DP + 8)))
    center.add_widget(Widget())
    center.add_widget(keys)
    center.add_widget(Widget())
    body: list[Widget] = [lab(app, "Operator PIN", 28, align="center"), display, center,
                          lab(app, app.pin_status, 24, raw=True, align="center", color=WARN),
                          Widget()]
    return page(app, "Exit kiosk", body, lang_button=False,
                footer=[btn(app, "Back", "back", app.pin_entry.cancel),
                        btn(app, "Exit", "pin_ok", app.pin_entry.submit, fill=DANGER)])


class PinEntry:
    """The PIN screen's actions: open it over any screen, type, check the PIN off the UI
    thread (slow hash), exit on the right one; wrong ones count towards the lockout."""

    def __init__(self, app: KioskApp) -> None:
        self.app = app
        self.lockout = FailureLockout()
        self.return_to = "welcome"

    def open(self) -> None:
        app = self.app
        if app.screen == "pin":
            return
        self.return_to = app.screen or "welcome"
        app.pin_typed = ""
        app.pin_status = ""
        app.dismiss_modal()
        app.show("pin")

    def key(self, symbol: str) -> None:
        self.app.pin_typed = type_pin(self.app.pin_typed, symbol)
        self.app.show("pin")

    def cancel(self) -> None:
        self.app.pin_typed = ""
        self.app.show(pin_return_screen(self.return_to, self.app.session is not None))

    def submit(self) -> None:
        app = self.app
        if self.lockout.blocked(app.mono()):
            app.pin_status = app.L.t("Too many wrong PINs. Wait a minute.")
            app.show("pin")
            return
        if not app.cfg.exit_pin_hash:
            app.pin_status = app.L.t("No exit PIN is configured on this station.")
            app.show("pin")
            return
        app.run_bg(check_pin, self._on_pin, app.pin_typed, app.cfg.exit_pin_hash)

    def _on_pin(self, fut: Future[Any]) -> None:
        app = self.app
        app.pin_typed = ""
        if fut.result():
            app.trace("exit")
            app.allow_close = True
            app.stop()
            return
        self.lockout.failed(app.mono())
        app.pin_status = app.L.t("Wrong PIN")
        app.show("pin")
