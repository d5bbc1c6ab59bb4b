"""The station locked by the operator, with the reason given."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kivy.uix.widget import Widget

from kiosk.screens.common import lab, page
from kiosk.widgets import ACCENT, MUTED

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def locked(app: KioskApp) -> Widget:
    lock = app.lock or {}
    body: list[Widget] = [Widget(), lab(app, "This station is locked.", 40, align="center")]
    if lock.get("reason"):
        body.append(lab(app, str(lock["reason"]), 28, raw=True, align="center", color=ACCENT))
    body.extend([lab(app, "Please see the operator.", 28, align="center", color=MUTED),
                 Widget()])
    return page(app, "Station locked", body, lang_button=True)
