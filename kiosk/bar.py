"""The kiosk as a bar over the citizen's applications (X11 with openbox, see
kiosk/citizen/openbox-rc.xml): while an app is in front the kiosk window shrinks to a strip
at the top of the screen (time left, fee so far, back to the kiosk, end) and reserves that
strip with a strut, so maximised apps fill the rest; whenever the kiosk has something to
say (a warning, a message, the idle question, the lock, the receipt) it covers the whole
screen again. The window stays in openbox's "above" layer in both shapes."""

from __future__ import annotations

import contextlib
import logging
import subprocess
from typing import TYPE_CHECKING

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.metrics import dp
from kivy.uix.widget import Widget

from kiosk.prints import summary
from kiosk.widgets import ACCENT, DANGER, MUTED, WARN, hrow

if TYPE_CHECKING:
    from kiosk.app import KioskApp

log = logging.getLogger(__name__)

BAR_SCREEN = "bar"
X_TIMEOUT_SECONDS = 5
SETTLE_SECONDS = (0.3, 1.0)


def _x(*argv: str) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(argv, check=False, timeout=X_TIMEOUT_SECONDS,  # noqa: S603
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def screen_size() -> tuple[int, int]:
    try:
        out = subprocess.run(["xdotool", "getdisplaygeometry"], capture_output=True,  # noqa: S607
                             text=True, timeout=X_TIMEOUT_SECONDS, check=True).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        w, h = Window.system_size
        return int(w), int(h)


class Stacking:
    """Full screen or bar: what the kiosk window is now on the X display."""

    def __init__(self, bar_height: int) -> None:
        self.bar_height = bar_height
        self.mode = "full"
        self.screen: tuple[int, int] | None = None

    def window_id(self) -> str | None:
        with contextlib.suppress(Exception):
            return hex(int(Window.get_window_info().window))
        return None

    def want(self, mode: str) -> None:
        if mode == self.mode:
            return
        wid = self.window_id()
        if wid is None:
            return
        if self.screen is None:
            self.screen = screen_size()
        w, h = self.screen
        self.mode = mode
        Window.borderless = True
        if mode == "bar":
            Window.fullscreen = False
            Window.size = (w, self.bar_height)  # also the size hints of a fixed-size window
            _x("wmctrl", "-i", "-r", wid, "-e", f"0,0,0,{w},{self.bar_height}")
            strut = f"0,0,{self.bar_height},0,0,0,0,0,0,{w - 1},0,0"
        else:
            Window.size = (w, h)
            _x("wmctrl", "-i", "-r", wid, "-e", f"0,0,0,{w},{h}")
            strut = "0,0,0,0,0,0,0,0,0,0,0,0"
        _x("xprop", "-id", wid, "-f", "_NET_WM_STRUT_PARTIAL", "32c", "-set",
           "_NET_WM_STRUT_PARTIAL", strut)
        _x("wmctrl", "-i", "-r", wid, "-b", "add,above")
        # openbox keeps windows out of struts when it handles the resize that SDL sends
        # after ours: put the window back in place once that has happened
        geometry = f"0,0,0,{w},{self.bar_height if mode == 'bar' else h}"
        def settle(_dt: float, m: str = mode, g: str = geometry) -> None:
            if self.mode == m:
                _x("wmctrl", "-i", "-r", wid, "-e", g)

        for delay in SETTLE_SECONDS:
            Clock.schedule_once(settle, delay)
        if mode == "full":
            _x("wmctrl", "-i", "-a", wid)
        log.info("kiosk window %s: %s", wid, mode)


def follow(app: KioskApp) -> None:
    """Called every tick: the bar while an app is in front and the kiosk is quiet, full
    screen otherwise; back to the session screen when the citizen closed the app."""
    stacking: Stacking | None = getattr(app, "stacking", None)
    if stacking is None:
        return
    if app.screen == BAR_SCREEN and not app.launcher.any_running():
        app.show("session")
    quiet = app.screen == BAR_SCREEN and app.modal is None
    stacking.want("bar" if quiet else "full")
    if app.screen == BAR_SCREEN:
        # a dialog over the bar (end the session? a warning): the strip under it is hidden,
        # not shown dimmed and stretched to the whole screen with its two buttons (issue 22)
        for w in app.content.children:
            w.opacity = 0 if app.modal is not None else 1
            w.disabled = app.modal is not None


def bar(app: KioskApp) -> Widget:
    """The strip over the apps: time left, fee so far, back to the kiosk, end."""
    from kiosk.screens import btn, lab

    s = app.session or {}
    remaining = app.countdown.value(app.mono())
    text = app.L.clock(remaining if remaining is not None else int(s.get("billed_seconds", 0)))
    t_label = lab(app, text, 34, raw=True, align="center", size_hint_y=1, auto_height=False)
    fee = app.L.money(int(s.get("fee_so_far", 0)), str(s.get("currency", "MAD")))
    f_label = lab(app, fee, 24, raw=True, align="center", size_hint_y=1, auto_height=False,
                  color=MUTED)
    app.live = {"time": t_label, "fee": f_label}
    t_label.kid = "bar_time"
    h = 64
    note = lab(app, "Your files are deleted when the session ends.", 16, align="center",
               size_hint_y=1, auto_height=False, color=MUTED)
    held = summary(app.print_jobs)
    if held is not None:  # printed from an app: the job waits at the counter (issue 17)
        pages, price, currency = held
        note = lab(app, app.L.t(
            "Your prints: {pages} pages, {price}. Collect them at the counter.",
            pages=app.L.number(pages), price=app.L.money(price, currency)), 16, raw=True,
            align="center", size_hint_y=1, auto_height=False, color=WARN, icon="print")
        note.kid = "bar_prints"
    items: list[Widget] = [
        t_label, f_label, note,
        btn(app, "Back to the kiosk", "bar_back", lambda: app.show("session"), size=20,
            height=h, fill=ACCENT),
        btn(app, "End session", "bar_end", app.ask_end, size=20, height=h, fill=DANGER),
    ]
    row = hrow(items, app.L.rtl, padding=(dp(8), dp(4)), spacing=dp(8))
    if app.modal is not None:  # drawn again while a dialog is up: stays hidden (see follow)
        row.opacity, row.disabled = 0, True
    return row


def your_files_buttons(app: KioskApp) -> list[Widget]:
    """In the end dialog: "Copy my files to the USB stick" when the citizen has files and a
    stick is plugged in (the dialog already says that files are removed)."""
    from kiosk.desktop import CitizenLauncher
    from kiosk.screens import btn
    from kiosk.usb import removable_mounts

    launcher = app.launcher
    if not isinstance(launcher, CitizenLauncher) or not launcher.home_files():
        return []
    sticks = removable_mounts()
    if not sticks:
        return []

    def copy() -> None:
        app.run_bg(launcher.copy_to, lambda f: app.trace(
            "usb_copied", count=None if f.exception() else f.result(),
            error=None if f.exception() is None else str(f.exception())), sticks[0])
    return [btn(app, "Copy my files to the USB stick", "usb_copy", copy, fill=ACCENT)]


def open_in_office(app: KioskApp, f: dict[str, object]) -> bool:
    """A library file the office suite edits (the SME toolkit's templates) opens there,
    during a session, with the kiosk as the bar; True when it did."""
    from kiosk.desktop import CitizenLauncher

    launcher = app.launcher
    if app.session is None or not isinstance(launcher, CitizenLauncher):
        return False
    url = str(f.get("url", ""))
    full = url if url.startswith("http") else app.client.base + url
    try:
        opened = launcher.open_document(full, str(f.get("media_type", "")))
    except OSError as exc:
        log.warning("cannot open %s in the office suite: %s", url, exc)
        return False
    if opened:
        app.trace("app_launched", app="office", url=url)
        app.show(BAR_SCREEN)
    return opened


def register(app: KioskApp, bar_height: int) -> None:
    """Hook the bar into the kiosk (the screen builder, the stacking)."""
    from kiosk import screens

    screens.BUILDERS[BAR_SCREEN] = bar
    if hasattr(app.launcher, "client"):  # the start page lists the offline library
        app.launcher.client = app.client
    app.stacking = Stacking(bar_height)


def in_front(app: KioskApp) -> None:
    """An app was opened: the kiosk becomes the bar."""
    if getattr(app, "stacking", None) is not None:
        app.show(BAR_SCREEN)


__all__ = ["BAR_SCREEN", "Stacking", "bar", "follow", "in_front", "register"]
