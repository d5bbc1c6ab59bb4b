"""The running session: time left (or used), fee so far, the apps and the library."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from kivy.metrics import dp
from kivy.uix.gridlayout import GridLayout
from kivy.uix.widget import Widget

from kiosk.prints import summary
from kiosk.screens.common import btn, lab, page
from kiosk.widgets import DANGER, MUTED, WARN, hrow, vbox

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def session(app: KioskApp) -> Widget:
    s = app.session or {}
    remaining = app.countdown.value(app.mono())
    if remaining is None:
        time_title = "Time used"
        time_text = app.L.clock(int(s.get("billed_seconds", 0)))
    else:
        time_title = "Time left"
        time_text = app.L.clock(remaining)
    fee = app.L.money(int(s.get("fee_so_far", 0)), str(s.get("currency", "MAD")))
    t_label = lab(app, time_text, 64, raw=True, align="center")
    f_label = lab(app, fee, 64, raw=True, align="center")
    app.live = {"time": t_label, "fee": f_label}
    tiles = hrow([
        vbox([lab(app, time_title, 24, align="center", color=MUTED), t_label],
             padding=dp(12)),
        vbox([lab(app, "Fee so far", 24, align="center", color=MUTED), f_label],
             padding=dp(12)),
    ], app.L.rtl, size_hint_y=None, height=dp(170))
    body: list[Widget] = [tiles]
    if s.get("paid_by") == "voucher" and s.get("voucher_minutes_left") is not None:
        body.append(lab(app, app.L.t("Voucher: {minutes} min left",
                                     minutes=s["voucher_minutes_left"]), 22, raw=True,
                        align="center", color=MUTED))
    if s.get("resumed"):
        body.append(lab(app, "Your session was restored after an interruption; the "
                             "interruption was not counted.", 22, align="center",
                        color=MUTED))
    held = summary(app.print_jobs)
    if held is not None:
        pages, price, currency = held
        body.append(lab(app, app.L.t(
            "Your prints: {pages} pages, {price}. Collect them at the counter.",
            pages=app.L.number(pages), price=app.L.money(price, currency)), 24, raw=True,
            align="center", color=WARN, icon="print"))
    if app.offline_in_session:
        body.append(lab(app, "Connection to the centre's server lost; your time is still "
                             "counted.", 22, align="center", color=WARN))
    apps = [btn(app, a.name, f"app_{a.id}", partial(app.launch_app, a.id))
            for a in app.cfg.apps]
    apps.append(btn(app, "Offline library", "portal", app.library.open))
    grid = GridLayout(cols=2, spacing=dp(12), size_hint_y=None)
    grid.bind(minimum_height=grid.setter("height"))
    for b in apps:
        grid.add_widget(b)
    body.extend([grid, Widget()])
    return page(app, "Your session", body,
                footer=[btn(app, "End session", "end", app.ask_end, fill=DANGER)])
