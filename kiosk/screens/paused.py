"""The session paused by the counter (CONTRACT §7): its time stands still, the citizen
cannot leave this screen (no buttons but the larger text); the counter resumes or moves it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kivy.uix.widget import Widget

from kiosk.screens.common import lab, page
from kiosk.widgets import ACCENT, MUTED

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def paused(app: KioskApp) -> Widget:
    s = app.session or {}
    remaining = s.get("remaining_seconds")
    shown = app.L.clock(int(remaining) if remaining is not None
                        else int(s.get("billed_seconds", 0)))
    body: list[Widget] = [
        Widget(),
        lab(app, "Your session is paused.", 40, align="center"),
        lab(app, "Your time is not counted while the session is paused.", 28,
            align="center"),
        lab(app, "Time left" if remaining is not None else "Time used", 22, align="center",
            color=MUTED),
        lab(app, shown, 56, raw=True, align="center", color=ACCENT),
    ]
    if s.get("pause_reason"):
        body.append(lab(app, str(s["pause_reason"]), 26, raw=True, align="center",
                        color=ACCENT))
    body.extend([lab(app, "Please see the operator.", 28, align="center", color=MUTED),
                 Widget()])
    return page(app, "Session paused", body, lang_button=False)
