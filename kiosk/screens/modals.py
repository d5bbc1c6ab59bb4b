"""The dialogs shown over a screen: the operator's message, the time warning, the end
confirmation, a notice, the idle question. Each returns its body; ``KioskApp.show_modal``
opens it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kivy.uix.widget import Widget

from kiosk.model import warning_msgid
from kiosk.screens.common import btn, modal_body
from kiosk.widgets import ACCENT, DANGER, RAISED

if TYPE_CHECKING:
    from kiosk.app import KioskApp


def message(app: KioskApp, text: str) -> Widget:
    ok = btn(app, "OK", "message_ok", app.dismiss_modal, fill=ACCENT)
    return modal_body(app, "Message from the operator", text, [ok], raw_text=True)


def warning(app: KioskApp, threshold: int) -> Widget:
    ok = btn(app, "OK", "warning_ok", app.dismiss_modal, fill=ACCENT)
    return modal_body(app, "Time is running out", warning_msgid(threshold), [ok])


def confirm_end(app: KioskApp, on_yes: Callable[[], None],
                extra: Sequence[Widget] = ()) -> Widget:
    """``extra``: more choices between "no" and "yes" (the citizen desktop's "your files")."""
    yes = btn(app, "Yes, end", "end_yes", on_yes, fill=DANGER)
    no = btn(app, "No, continue", "end_no", app.dismiss_modal, fill=RAISED)
    return modal_body(app, "End session", "End your session now? Your applications will be "
                                          "closed and your files removed.", [no, *extra, yes])


def notice(app: KioskApp, msgid: str) -> Widget:
    ok = btn(app, "OK", "notice_ok", app.dismiss_modal, fill=ACCENT)
    return modal_body(app, "Sorry", msgid, [ok])


def idle(app: KioskApp, text: str, on_here: Callable[[], object]) -> Widget:
    here = btn(app, "I am here", "idle_here", on_here, fill=ACCENT)
    return modal_body(app, "Are you still there?", text, [here], raw_text=True,
                      live_key="idle")
