"""The receipt after a session: duration, fee, voucher time left."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.widget import Widget

from kiosk.screens.common import btn, lab, page
from kiosk.widgets import ACCENT, MUTED, hrow

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def receipt(app: KioskApp) -> Widget:
    r = app.receipt or {}
    if r.get("moved_to"):
        return page(app, "Receipt", [
            Widget(),
            lab(app, app.L.t("Your session continues on station {station}.",
                             station=r["moved_to"]), 40, raw=True, align="center"),
            lab(app, "Your applications were closed and your files removed. Thank you!",
                24, align="center", color=MUTED),
            Widget()], footer=[btn(app, "Done", "done", app.receipt_done, fill=ACCENT)])
    rows: list[Widget] = [lab(app, "Session ended", 40, align="center")]

    def line(title: str, value: str, kid: str) -> BoxLayout:
        v = lab(app, value, 32, raw=True, align="end", size_hint_y=1, auto_height=False)
        v.kid = kid
        return hrow([lab(app, title, 28, size_hint_y=1, auto_height=False, color=MUTED), v],
                    app.L.rtl, size_hint_y=None, height=dp(64))

    rows.append(line("Duration", app.L.duration(int(r.get("billed_seconds", 0))), "duration"))
    rows.append(line("Fee", app.L.money(int(r.get("fee", 0)), str(r.get("currency", "MAD"))),
                     "fee"))
    if r.get("voucher_minutes_left") is not None:
        rows.append(line("Voucher time left",
                         app.L.t("{minutes} min", minutes=r["voucher_minutes_left"]),
                         "voucher_left"))
    rows.append(lab(app, "Your applications were closed and your files removed. Thank you!",
                    24, align="center", color=MUTED))
    rows.append(Widget())
    return page(app, "Receipt", rows,
                footer=[btn(app, "Done", "done", app.receipt_done, fill=ACCENT)])
