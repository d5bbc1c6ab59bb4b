"""The kiosk application: polls the agent, shows the screen its answer calls for, counts the
session down locally between polls, warns, ends idle sessions, closes and wipes the
citizen's applications, and keeps the station locked down (no escape, no settings, no
close without the operator PIN).

The kiosk holds no state that matters: the agent owns sessions and money; a restarted
kiosk shows the running session again from the first poll. The rules (screen choice,
countdown, warnings, idle timeout, PIN lockout) are pure, in ``kiosk.model``; the screens
and their actions are in ``kiosk.screens``; the state they show is in Kivy properties here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.graphics import Color, Rectangle
from kivy.metrics import dp, sp
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.modalview import ModalView
from kivy.uix.widget import Widget

from kiosk import bar, screens
from kiosk.client import AgentRefused, AgentUnreachable, StationClient
from kiosk.config import KioskConfig
from kiosk.desktop import make_launcher
from kiosk.i18n import DEFAULT_LANG, Localizer
from kiosk.model import (
    Countdown,
    Warnings,
    decide,
    idle_verdict,
    moved_to,
    out_of_service,
    poll_delay,
    receipt_from_session,
)
from kiosk.prints import PrintWatcher
from kiosk.screens import modals
from kiosk.screens.pin import PinEntry
from kiosk.screens.portal import Library
from kiosk.screens.profile import ProfileEntry
from kiosk.screens.voucher import VoucherEntry
from kiosk.station_state import remember_lang, remembered_lang, state_file
from kiosk.voice import Player, Speech, Voice, spoken_text
from kiosk.widgets import BG, WARN, Corner, KButton
from kiosk.xidle import x_idle_seconds

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
WARNING_MODAL_SECONDS = 12
KEY_ESCAPE, KEY_F1 = 27, 282


class KioskApp(App):
    title = "CAC kiosk"

    # the state the screens show
    screen: str = StringProperty("")
    L: Localizer = ObjectProperty(None)
    large_text: bool = BooleanProperty(False)
    session: dict[str, Any] | None = ObjectProperty(None, allownone=True)
    receipt: dict[str, Any] | None = ObjectProperty(None, allownone=True)
    lock: dict[str, Any] | None = ObjectProperty(None, allownone=True)
    offline_detail: str = StringProperty("")
    offline_in_session: bool = BooleanProperty(False)
    next_poll: float = NumericProperty(0.0)
    modal_kind: str = StringProperty("")
    voucher_code: str = StringProperty("")
    voucher_status: str = StringProperty("")
    voucher_status_bad: bool = BooleanProperty(False)
    redeem_busy: bool = BooleanProperty(False)
    redeem_blocked_until: float = NumericProperty(0.0)
    pin_typed: str = StringProperty("")
    pin_status: str = StringProperty("")
    portal_query: str = StringProperty("")
    portal_packages: list[dict[str, Any]] | None = ObjectProperty(None, allownone=True)
    portal_package: dict[str, Any] | None = ObjectProperty(None, allownone=True)
    portal_text: str | None = ObjectProperty(None, allownone=True)
    portal_note: str = StringProperty("")
    portal_hits: list[dict[str, Any]] = ObjectProperty([])  # full-text results ...
    portal_hits_for: str = StringProperty("")  # ... for this query
    pdf_doc: Any = ObjectProperty(None, allownone=True)  # kiosk.screens.pdf.Document
    pdf_file: dict[str, Any] | None = ObjectProperty(None, allownone=True)
    pdf_page: int = NumericProperty(0)
    pdf_zoom: float = NumericProperty(1.0)
    print_jobs: list[dict[str, Any]] = ObjectProperty([])  # held at the counter (kiosk.prints)

    def __init__(self, client: StationClient, cfg: KioskConfig, *, station: str,
                 lang: str | None = None, screenshot: Path | None = None,
                 trace_path: Path | None = None) -> None:
        super().__init__()
        self.client = client
        self.cfg = cfg
        self.station = station
        self.screenshot_path = screenshot
        self.trace_path = trace_path
        self.events: list[dict[str, Any]] = []
        self.mono: Callable[[], float] = time.monotonic
        self.L = Localizer(lang or remembered_lang(self._state_file()) or DEFAULT_LANG)
        self.launcher = make_launcher(cfg)  # citizen desktop hook (kiosk/desktop.py)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kiosk-io")
        self._cleanup_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiosk-apps")
        self.voucher_entry = VoucherEntry(self)
        self.profile_entry = ProfileEntry(self)
        self.profile_choice: dict[str, str] = {}  # the "help us count" answers being chosen
        self.profile_asked: set[str] = set()  # sessions already asked (never twice)
        self.pin_entry = PinEntry(self)
        self.library = Library(self)
        self.prints = PrintWatcher(self)
        self.voice = Voice(cfg.state_dir / "voice-cache",
                           cfg.recorded_voice_dir or cfg.state_dir / "recorded-voice")
        self.player = Player()
        self.live: dict[str, Any] = {}   # labels that the tick updates in place
        self.countdown = Countdown()
        self.warnings = Warnings()
        self.receipt_deadline = 0.0
        # polling and transitions
        self.epoch = 0            # bumped by local transitions; older poll answers are dropped
        self.poll_busy = False
        self.fails = 0
        self.polled_once = False
        self.ending = False
        self.seen_message: str | None = None
        self.last_activity = self.mono()
        self.modal: ModalView | None = None
        self.allow_close = False
        self._interactive = False
        self._snap_scheduled = False
        self._cleaned_at_start = False

    # ---------------------------------------------------------------- Kivy hooks

    def build(self) -> Widget:
        root = FloatLayout()
        with root.canvas.before:
            Color(*BG)
            rect = Rectangle(pos=root.pos, size=root.size)
        root.bind(size=lambda w, s: setattr(rect, "size", s),
                  pos=lambda w, p: setattr(rect, "pos", p))
        self.content = BoxLayout()
        root.add_widget(self.content)
        root.add_widget(Corner(self.pin_entry.open, size_hint=(None, None),
                               size=(dp(64), dp(64)), pos_hint={"x": 0, "top": 1}))
        Window.bind(on_request_close=self._on_request_close, on_keyboard=self._on_keyboard,
                    on_touch_down=self._activity, on_key_down=self._activity)
        Window.clearcolor = BG
        if self.cfg.desktop is not None:  # citizen desktop hook: the bar (kiosk/bar.py)
            bar.register(self, self.cfg.desktop.bar_height)
        self.show("welcome")
        Clock.schedule_interval(self._tick, TICK_SECONDS)
        return root

    def open_settings(self, *_: Any) -> bool:
        return False  # F1 and the settings panel are off on a public kiosk

    def _on_request_close(self, *_: Any, **__: Any) -> bool:
        return not self.allow_close  # True refuses the close

    def _on_keyboard(self, _win: Any, key: int, *_: Any) -> bool:
        self._activity()
        return key in (KEY_ESCAPE, KEY_F1)

    def _activity(self, *_: Any) -> bool:
        self.last_activity = self.mono()
        return False

    def on_stop(self) -> None:
        with contextlib.suppress(Exception):
            self.player.stop()
        with contextlib.suppress(Exception):
            self.launcher.close_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._cleanup_pool.shutdown(wait=True)

    # ---------------------------------------------------------------- helpers

    def fs(self, size: float) -> float:
        return float(sp(size) * (self.cfg.large_text_scale if self.large_text else 1.0))

    def trace(self, event: str, **data: Any) -> None:
        rec = {"event": event, "t": time.time(), "mono": self.mono(), **data}
        self.events.append(rec)
        if self.trace_path is not None:
            with self.trace_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def run_bg(self, fn: Callable[..., Any], done: Callable[[Future[Any]], None],
               *args: Any, pool: ThreadPoolExecutor | None = None) -> None:
        """Run blocking ``fn`` off the UI thread; ``done(future)`` runs back on it."""
        fut = (pool or self._pool).submit(fn, *args)
        fut.add_done_callback(lambda f: Clock.schedule_once(lambda _dt: done(f), 0))

    def show(self, name: str) -> None:
        if name not in ("voucher", "pin"):
            self.voucher_code = ""
            self.voucher_status = ""
        arrived = name != self.screen
        self.screen = name
        self.live = {}
        self.content.clear_widgets()
        self.content.add_widget(screens.BUILDERS[name](self))
        self.trace("screen", name=name, lang=self.L.lang)
        if arrived and self.cfg.speak_on_arrival and self.modal is None:
            self.listen()
        if not self._interactive:
            self._interactive = True
            Window.bind(on_flip=self._first_flip)

    def _first_flip(self, *_: Any) -> None:
        Window.unbind(on_flip=self._first_flip)
        self.trace("interactive", screen=self.screen)

    def rebuild(self) -> None:
        if self.screen:
            self.show(self.screen)

    # ---------------------------------------------------------------- polling

    def _tick(self, _dt: float) -> None:
        now = self.mono()
        if not self.poll_busy and now >= self.next_poll:
            self.poll_now()
        if self.screen in ("session", bar.BAR_SCREEN):
            self._refresh_session(now)
        elif self.screen == "offline" and "retry" in self.live:
            wait = max(0, int(self.next_poll - now + 0.99))
            self.live["retry"].src = self.L.t("Trying again in {seconds} s", seconds=wait)
        elif self.screen == "receipt" and now >= self.receipt_deadline:
            self.receipt_done()
        elif self.screen == "voucher" and 0 < self.redeem_blocked_until <= now:
            self.redeem_blocked_until = 0.0
            self.voucher_status = ""
            self.rebuild()
        self._check_idle(now)
        self.prints.tick(now)
        bar.follow(self)  # citizen desktop hook: bar over the apps, or full screen

    def poll_now(self) -> None:
        if self.poll_busy:
            return
        self.poll_busy = True
        epoch = self.epoch
        self.run_bg(self.client.session, lambda f: self._on_poll(f, epoch))

    def _on_poll(self, fut: Future[Any], epoch: int) -> None:
        self.poll_busy = False
        now = self.mono()
        try:
            result = fut.result()
        except AgentUnreachable as exc:
            self.unreachable(f"{exc}")
            return
        except AgentRefused as exc:
            self.unreachable(f"{exc.status} {exc.code}: {exc.message}")
            return
        self.fails = 0
        self.offline_detail = ""
        self.next_poll = now + self.cfg.poll_seconds
        if epoch == self.epoch:
            self.apply(result)
        self._after_first_answer()

    def unreachable(self, detail: str) -> None:
        """A poll or a call found no agent: keep a session on screen, else out of service."""
        self.fails += 1
        self.offline_detail = detail
        in_session = self.session is not None
        self.next_poll = self.mono() + poll_delay(in_session, self.cfg.poll_seconds,
                                                  self.cfg.retry_seconds)
        log.warning("agent unreachable (%d): %s", self.fails, detail)
        if in_session and self.countdown.value(self.mono()) != 0:
            if not self.offline_in_session:
                self.offline_in_session = True
                if self.screen == "session":
                    self.rebuild()
        elif out_of_service(self.fails, self.polled_once) and self.screen != "offline":
            self.dismiss_modal()
            self.show("offline")
        self._after_first_answer()

    def _after_first_answer(self) -> None:
        self.polled_once = True
        if self.screenshot_path is not None and not self._snap_scheduled:
            self._snap_scheduled = True
            Clock.schedule_once(lambda _dt: self._write_screenshot(), 0.5)

    def _write_screenshot(self) -> None:
        assert self.screenshot_path is not None
        self.snapshot(self.screenshot_path)
        self.allow_close = True
        self.stop()

    def snapshot(self, target: Path) -> Path:
        """Write what the window shows now to ``target`` (PNG)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="kiosk-shot-"))
        made = Window.screenshot(name=str(tmp / "shot.png"))
        os.replace(made, target)
        with contextlib.suppress(OSError):
            tmp.rmdir()
        return target

    def apply(self, result: dict[str, Any]) -> None:
        """Show what the agent's answer to GET /session calls for."""
        now = self.mono()
        self.lock = result.get("lock")
        self._handle_message(result.get("message"))
        sess = result.get("session")
        had = self.session is not None
        if result.get("locked"):
            if had:
                self._cleanup_apps()
            self.session = None
            if self.screen != "locked":
                self.dismiss_modal()
                self.show("locked")
            return
        if sess is not None:
            new = self.session is None or self.session.get("id") != sess.get("id")
            came_back = self.offline_in_session
            self.session = sess
            self.offline_in_session = False
            self.countdown.set(sess.get("remaining_seconds"), now,
                               running=sess.get("state") != "paused")
            self.trace("session_view", id=sess.get("id"),
                       remaining=sess.get("remaining_seconds"), fee=sess.get("fee_so_far"))
            target = decide(self.screen, result, False)
            if target == "paused" and (self.screen != "paused" or new):
                self.dismiss_modal()  # an end dialog or a warning goes: the time stands
                self.show("paused")
            elif target in ("paused", "pin") and self.screen in ("paused", "pin"):
                return
            elif target != self.screen or (self.screen == "session" and (new or came_back)):
                self.show(target)
            elif self.screen in ("session", bar.BAR_SCREEN) and "fee" in self.live:
                self.live["fee"].src = self.L.money(int(sess.get("fee_so_far", 0)),
                                                    str(sess.get("currency", "MAD")))
            return
        if had:
            self._session_over(None, moved_to(result, self.session or {}))
            return
        if not self._cleaned_at_start:
            # nothing runs here: leftovers of a kiosk that died mid-session are wiped
            self._cleaned_at_start = True
            self.run_bg(self.launcher.wipe, lambda f: None, pool=self._cleanup_pool)
        target = decide(self.screen, result, False)
        if target != self.screen:
            self.dismiss_modal()
            self.show(target)

    def _handle_message(self, msg: dict[str, Any] | None) -> None:
        if msg is None:
            if self.modal_kind == "message":
                self.dismiss_modal()
            return
        if msg.get("id") == self.seen_message:
            return
        self.seen_message = str(msg.get("id"))
        self.trace("message", text=msg.get("text"))
        self.show_modal("message", modals.message(self, str(msg.get("text", ""))))

    # ---------------------------------------------------------------- modals

    def show_modal(self, kind: str, body: Widget) -> None:
        self.dismiss_modal()
        view = ModalView(auto_dismiss=False, size_hint=(0.75, 0.6),
                         background_color=(0, 0, 0, 0.75))
        view.add_widget(body)
        view.open(animation=False)
        self.modal = view
        self.modal_kind = kind
        self.trace("modal", kind=kind)
        if self.cfg.speak_on_arrival:
            self.listen()

    def _dismiss_if(self, kind: str) -> None:
        if self.modal_kind == kind:
            self.dismiss_modal()

    def dismiss_modal(self) -> None:
        if self.modal is not None:
            self.modal.dismiss(animation=False)
        self.modal = None
        self.modal_kind = ""

    # ---------------------------------------------------------------- session

    def _refresh_session(self, now: float) -> None:
        s = self.session
        if s is None:
            return
        remaining = self.countdown.value(now)
        if "time" in self.live:
            text = self.L.clock(remaining) if remaining is not None else self.L.clock(
                int(s.get("billed_seconds", 0)))
            self.live["time"].src = text
        fired = self.warnings.update(str(s.get("id")), remaining)
        if fired:
            self._warn(fired[0])
        if remaining == 0 and self.offline_in_session:
            self.session = None
            self.show("offline")

    def _warn(self, threshold: int) -> None:
        self.trace("warning", threshold=threshold)
        self.show_modal("warning", modals.warning(self, threshold))
        Clock.schedule_once(lambda _dt: self._dismiss_if("warning"), WARNING_MODAL_SECONDS)

    def ask_end(self) -> None:
        self.show_modal("confirm_end",
                        modals.confirm_end(self, lambda: self.end_session("citizen"),
                                           bar.your_files_buttons(self)))

    def end_session(self, reason: str) -> None:
        if self.ending:
            return
        self.ending = True
        self.epoch += 1
        self.dismiss_modal()
        self.run_bg(self.client.end, self._on_end, reason)

    def _on_end(self, fut: Future[Any]) -> None:
        self.ending = False
        try:
            record = fut.result()
        except AgentRefused as exc:
            if exc.status == 404:
                self._session_over(None)
            else:
                self._notice(exc.message)
            return
        except AgentUnreachable:
            self._notice("The centre's server does not answer. Please ask the operator.")
            return
        self._session_over(record)

    def _notice(self, msgid: str) -> None:
        self.show_modal("notice", modals.notice(self, msgid))

    def _session_over(self, record: dict[str, Any] | None, moved: str | None = None) -> None:
        last = self.session or {}
        self.epoch += 1
        self.session = None
        self.countdown.set(None, self.mono())
        # a session moved to another station: the receipt says where it goes on
        self.receipt = {"moved_to": moved} if moved else record or receipt_from_session(last)
        self.trace("session_over", record=self.receipt)
        self._cleanup_apps()
        self.dismiss_modal()
        self.receipt_deadline = self.mono() + self.cfg.receipt_seconds
        self.show("receipt")

    def _cleanup_apps(self) -> None:
        self.run_bg(self.launcher.end_of_session, lambda f: self.trace(
            "apps_closed", error=None if f.exception() is None else str(f.exception())),
            pool=self._cleanup_pool)

    def receipt_done(self) -> None:
        self.receipt = None
        self.large_text = False
        self.show("welcome")

    def launch_app(self, app_id: str) -> None:
        if self.session is None:
            return
        try:
            self.launcher.launch(app_id)
        except OSError as exc:
            log.warning("cannot start %s: %s", app_id, exc)
            self._notice("This application could not be opened. Please ask the operator.")
            return
        self.trace("app_launched", app=app_id)
        bar.in_front(self)  # citizen desktop hook

    # ---------------------------------------------------------------- idle

    def _check_idle(self, now: float) -> None:
        running = self.session is not None and self.launcher.any_running()
        x_idle = x_idle_seconds() if running else None
        verdict = idle_verdict(now=now, last_activity=self.last_activity,
                               idle_seconds=self.cfg.idle_seconds,
                               warning_seconds=self.cfg.idle_warning_seconds,
                               in_session=self.session is not None, screen=self.screen,
                               ending=self.ending, x_idle=x_idle)
        if verdict.end:
            self.trace("idle_end")
            self.end_session("idle")
        elif verdict.warn:
            text = self.L.t("Are you still there? Your session ends in {seconds} s.",
                            seconds=verdict.seconds_left)
            if self.modal_kind != "idle":
                self.show_modal("idle", modals.idle(self, text, self._activity))
            elif "idle" in self.live:
                self.live["idle"].src = text
        else:
            self._dismiss_if("idle")

    # ---------------------------------------------------------------- the voice

    def listen(self) -> None:
        """Say the open dialog, else the screen: a recorded file, else espeak-ng (off the UI
        thread), then play it; no voice or no sound device: silent (traced)."""
        key = self.modal_kind or self.screen
        root = self.modal if self.modal is not None else self.content
        text = spoken_text(root)
        lang = self.L.lang
        self.run_bg(self.voice.prepare, lambda f: self._speak(f, key, lang, text),
                    lang, key, text)

    def _speak(self, fut: Future[Any], key: str, lang: str, text: str) -> None:
        speech: Speech = fut.result()
        played = False
        if speech.path is not None and (self.modal_kind or self.screen) == key:
            played = self.player.play(speech.path)
        self.trace("voice", screen=key, lang=lang, text=text, source=speech.source,
                   path=str(speech.path) if speech.path else None, played=played,
                   detail=speech.detail)

    # ---------------------------------------------------------------- language, text size

    def _state_file(self) -> Path:
        return state_file(self.cfg.state_dir, self.station)

    def choose_language(self, lang: str) -> None:
        self.L = Localizer(lang)
        self.trace("language", lang=lang)
        self.run_bg(remember_lang, lambda f: None, self._state_file(), lang)
        self.rebuild()
        if self.cfg.speak_on_arrival:
            self.listen()

    def toggle_large_text(self) -> None:
        self.large_text = not self.large_text
        self.rebuild()


__all__ = ["KButton", "KioskApp", "WARN"]
