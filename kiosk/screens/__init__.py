"""The kiosk's screens, one module each; ``BUILDERS`` maps a screen's name to the function
that builds its body from the app's state (``KioskApp.show`` puts it in place), and
``modals`` builds the dialogs shown over a screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kivy.uix.widget import Widget

from kiosk.screens.common import btn, lab, modal_body
from kiosk.screens.locked import locked
from kiosk.screens.offline import offline
from kiosk.screens.operator import operator
from kiosk.screens.paused import paused
from kiosk.screens.pdf import portal_pdf
from kiosk.screens.pin import pin
from kiosk.screens.portal import portal, portal_item
from kiosk.screens.profile import profile
from kiosk.screens.receipt import receipt
from kiosk.screens.session import session
from kiosk.screens.voucher import voucher
from kiosk.screens.welcome import welcome

if TYPE_CHECKING:
    from kiosk.app import KioskApp

BUILDERS: dict[str, Callable[[KioskApp], Widget]] = {
    "welcome": welcome, "voucher": voucher, "operator": operator, "session": session,
    "receipt": receipt, "locked": locked, "offline": offline, "pin": pin, "portal": portal,
    "portal_item": portal_item, "paused": paused, "portal_pdf": portal_pdf,
    "profile": profile,
}

__all__ = ["BUILDERS", "btn", "lab", "modal_body"]
