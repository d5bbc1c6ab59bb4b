"""Ask the operator: the station's number to tell at the counter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kivy.uix.widget import Widget

from kiosk.screens.common import btn, lab, page
from kiosk.widgets import ACCENT

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def operator(app: KioskApp) -> Widget:
    body: list[Widget] = [
        Widget(),
        lab(app, "Please go to the counter. The operator will start your session on this "
                 "station.", 32, align="center"),
        lab(app, app.L.t("Station {station}", station=app.station), 40, raw=True,
            align="center", color=ACCENT),
        Widget(),
    ]
    return page(app, "Ask the operator", body,
                footer=[btn(app, "Back", "back", lambda: app.show("welcome"))])
