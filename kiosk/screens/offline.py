"""Out of service: the agent does not answer; the retry countdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kivy.uix.widget import Widget

from kiosk.screens.common import btn, lab, page
from kiosk.widgets import MUTED

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def offline(app: KioskApp) -> Widget:
    wait = max(0, int(app.next_poll - app.mono()))
    retry = lab(app, app.L.t("Trying again in {seconds} s", seconds=wait), 26, raw=True,
                align="center", color=MUTED)
    app.live = {"retry": retry}
    body: list[Widget] = [
        Widget(),
        lab(app, "This station is out of service for a moment.", 40, align="center"),
        lab(app, "It cannot reach the centre's server. Please ask the operator.", 28,
            align="center"),
        retry,
        Widget(),
    ]
    if app.offline_detail:
        body.insert(-1, lab(app, app.offline_detail, 18, raw=True, align="center",
                            color=MUTED))
    return page(app, "Out of service", body,
                footer=[btn(app, "Try again now", "retry", app.poll_now)])
