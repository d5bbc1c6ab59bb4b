"""Voucher code entry: the Crockford keypad, the code as typed, the agent's answer."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from kivy.metrics import dp
from kivy.uix.gridlayout import GridLayout
from kivy.uix.widget import Widget

from kiosk.client import AgentRefused, AgentUnreachable
from kiosk.model import (
    VOUCHER_ALPHABET,
    add_symbol,
    code_complete,
    del_symbol,
    redeem_block_seconds,
    redeem_error_message,
)
from kiosk.screens.common import VOUCHER_KEY_DP, btn, lab, page
from kiosk.widgets import ACCENT, MUTED, PANEL, WARN, KButton, KLabel, hrow

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def voucher(app: KioskApp) -> Widget:
    code = app.voucher_code
    shown = code or "_____-_____"
    display = KLabel(src=shown, font_size=app.fs(40), align="center", size_hint_y=None,
                     height=dp(64), bg=list(PANEL))
    keys = GridLayout(cols=8, spacing=dp(8), size_hint_y=None)  # 4 rows fit in 800 px
    keys.bind(minimum_height=keys.setter("height"))
    for sym in VOUCHER_ALPHABET:
        k = KButton(src=sym, font_size=app.fs(30), kid=f"key_{sym}", align="center",
                    size_hint_y=None, height=dp(VOUCHER_KEY_DP), fill=list(PANEL))
        k.bind(on_release=lambda _b, s=sym: app.voucher_entry.key(s))
        keys.add_widget(k)
    status = lab(app, app.voucher_status, 24, raw=True, align="center",
                 color=WARN if app.voucher_status_bad else MUTED)
    status.kid = "voucher_status"
    edit = hrow([btn(app, "Delete", "key_del", app.voucher_entry.delete, height=VOUCHER_KEY_DP),
                 btn(app, "Clear", "key_clear", app.voucher_entry.clear, height=VOUCHER_KEY_DP)],
                app.L.rtl, size_hint_y=None, height=dp(VOUCHER_KEY_DP))
    body: list[Widget] = [lab(app, "Type the code printed on your voucher", 22, align="center"),
                          display, keys, edit, status]
    start = btn(app, "Start", "redeem", app.voucher_entry.redeem, fill=ACCENT, size=30,
                enabled=code_complete(code) and not app.redeem_busy
                and app.redeem_blocked_until <= app.mono())
    return page(app, "Start with a voucher", body,
                footer=[btn(app, "Back", "back", lambda: app.show("welcome")), start])


class VoucherEntry:
    """The voucher screen's actions: keys, then the redeem call to the agent."""

    def __init__(self, app: KioskApp) -> None:
        self.app = app

    def key(self, symbol: str) -> None:
        app = self.app
        app.voucher_code = add_symbol(app.voucher_code, symbol)
        if app.redeem_blocked_until <= app.mono():
            app.voucher_status = ""
        app.show("voucher")

    def delete(self) -> None:
        self.app.voucher_code = del_symbol(self.app.voucher_code)
        self.app.show("voucher")

    def clear(self) -> None:
        self.app.voucher_code = ""
        self.app.show("voucher")

    def redeem(self) -> None:
        app = self.app
        if app.redeem_busy or app.redeem_blocked_until > app.mono():
            return
        app.redeem_busy = True
        app.voucher_status = app.L.t("Checking your code…")
        app.voucher_status_bad = False
        app.trace("redeem_tap", code=app.voucher_code)
        app.show("voucher")
        app.epoch += 1
        app.run_bg(app.client.redeem, self._on_redeem, app.voucher_code)

    def _on_redeem(self, fut: Future[Any]) -> None:
        app = self.app
        app.redeem_busy = False
        try:
            sess = fut.result()
        except AgentRefused as exc:
            msgid, fields = redeem_error_message(exc.status, exc.code, exc.retry_after)
            if exc.status == 429:
                app.redeem_blocked_until = app.mono() + redeem_block_seconds(exc.retry_after)
            app.voucher_status = app.L.t(msgid, **fields)
            app.voucher_status_bad = True
            app.trace("redeem_refused", status=exc.status, code=exc.code)
            if app.screen == "voucher":
                app.show("voucher")
            return
        except AgentUnreachable as exc:
            app.unreachable(str(exc))
            app.show("offline")
            return
        app.session = sess
        app.countdown.set(sess.get("remaining_seconds"), app.mono())
        app.last_activity = app.mono()
        sid = str(sess.get("id", ""))
        if app.cfg.ask_profile and sid and sid not in app.profile_asked:
            app.profile_asked.add(sid)  # never asked twice in one session
            app.profile_choice = {}
            app.show("profile")
        else:
            app.show("session")
        app.trace("unlocked", id=sess.get("id"), remaining=sess.get("remaining_seconds"))
