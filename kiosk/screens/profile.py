"""The optional "help us count" screen after a voucher redeem (CONTRACT §9b): why the
citizen came, an age band, a gender, as big buttons with an icon and a word each. Nothing
is required: "Skip" sends nothing, "Done" sends what was chosen, once per session."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from kivy.metrics import dp
from kivy.uix.gridlayout import GridLayout
from kivy.uix.widget import Widget

from kiosk.client import AgentRefused, AgentUnreachable
from kiosk.model import PROFILE_CHOICES, PROFILE_WORDS
from kiosk.screens.common import btn, lab, page
from kiosk.widgets import ACCENT, PANEL, hrow

if TYPE_CHECKING:
    from kiosk.app import KioskApp

PROFILE_KEY_DP = 64  # an answer, as tall as skip and done (>= 48 dp)
ROW_TITLES = {"purpose": "Why did you come today?", "age_band": "Your age",
              "gender": "You are"}


def profile(app: KioskApp) -> Widget:
    body: list[Widget] = [lab(app, "Optional and anonymous: it helps us count who we serve.",
                              20, align="center")]
    for part, values in PROFILE_CHOICES.items():
        body.append(lab(app, ROW_TITLES[part], 22))
        keys: list[Widget] = []
        for value in values:
            chosen = app.profile_choice.get(part) == value
            keys.append(btn(app, PROFILE_WORDS[part][value], f"prof_{part}_{value}",
                            _chooser(app, part, value),
                            size=22, height=PROFILE_KEY_DP, fill=ACCENT if chosen else PANEL))
        if len(keys) > 5:  # the purposes: two rows of three
            grid = GridLayout(cols=3, spacing=dp(10), size_hint_y=None,
                              height=dp(PROFILE_KEY_DP * 2 + 10))
            for k in _reading_order(keys, 3, app.L.rtl):
                grid.add_widget(k)
            body.append(grid)
        else:
            body.append(hrow(keys, app.L.rtl, size_hint_y=None, height=dp(PROFILE_KEY_DP)))
    body.append(Widget())
    skip = btn(app, "Skip", "profile_skip", app.profile_entry.skip, size=26)
    done = btn(app, "Done", "profile_done", app.profile_entry.done, fill=ACCENT, size=26,
               enabled=bool(app.profile_choice))
    return page(app, "Help us count", body, footer=[skip, done])


def _chooser(app: KioskApp, part: str, value: str) -> Callable[[], None]:
    return lambda: app.profile_entry.choose(part, value)


def _reading_order(keys: list[Widget], cols: int, rtl: bool) -> list[Widget]:
    """A grid's cells in reading order: each row mirrored for right-to-left."""
    rows = [keys[i:i + cols] for i in range(0, len(keys), cols)]
    return [k for r in rows for k in (reversed(r) if rtl else r)]


class ProfileEntry:
    """The screen's actions: choose (tap again to unchoose), skip, done (sent once)."""

    def __init__(self, app: KioskApp) -> None:
        self.app = app

    def choose(self, part: str, value: str) -> None:
        app = self.app
        choice = dict(app.profile_choice)
        if choice.get(part) == value:
            del choice[part]
        else:
            choice[part] = value
        app.profile_choice = choice
        app.show("profile")

    def skip(self) -> None:
        app = self.app
        app.profile_choice = {}
        app.trace("profile_skipped")
        app.show("session")

    def done(self) -> None:
        app = self.app
        choice = dict(app.profile_choice)
        app.profile_choice = {}
        if choice:
            app.trace("profile_sent", profile=choice)
            app.run_bg(app.client.profile, self._on_sent, choice)
        app.show("session")

    def _on_sent(self, fut: Future[Any]) -> None:
        try:
            fut.result()
        except (AgentRefused, AgentUnreachable) as exc:  # counting is never worth a fuss
            self.app.trace("profile_failed", detail=str(exc))
            return
        self.app.trace("profile_ok")
