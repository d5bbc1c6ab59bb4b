"""The kiosk application: polls the agent, shows the screen its answer calls for, counts the
session down locally between polls, warns, ends idle sessions, closes and wipes the
citizen's applications, and keeps the station locked down (no escape, no settings, no
close without the operator PIN).

The kiosk holds no state that matters: the agent owns sessions and money; a restarted
kiosk shows the running session again from the first poll.
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
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.modalview import ModalView
from kivy.uix.widget import Widget

from kiosk import bar, screens
from kiosk.client import AgentRefused, AgentUnreachable, StationClient
from kiosk.config import KioskConfig, check_pin
from kiosk.desktop import make_launcher
from kiosk.i18n import DEFAULT_LANG, LANGS, Localizer
from kiosk.model import (
    SESSION_SCREENS,
    Countdown,
    Warnings,
    add_symbol,
    decide,
    del_symbol,
    redeem_error_message,
)
from kiosk.widgets import ACCENT, BG, DANGER, WARN, KButton
from kiosk.xidle import x_idle_seconds

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
LONG_PRESS_SECONDS = 3.0      # hidden corner that opens the operator PIN screen
PIN_MAX_FAILURES = 5
PIN_BLOCK_SECONDS = 60
OFFLINE_AFTER_FAILURES = 2    # polls that fail in a row before the out-of-service screen
WARNING_MODAL_SECONDS = 12
KEY_ESCAPE, KEY_F1 = 27, 282


class Corner(Widget):
    """An invisible corner: a long press opens the operator's PIN screen."""

    def __init__(self, on_long_press: Callable[[], None], **kw: Any) -> None:
        super().__init__(**kw)
        self._cb = on_long_press
        self._ev: Any = None

    def on_touch_down(self, touch: Any) -> bool:
        if not self.collide_point(*touch.pos):
            return False
        self._ev = Clock.schedule_once(lambda _dt: self._cb(), LONG_PRESS_SECONDS)
        touch.grab(self)
        return True

    def on_touch_up(self, touch: Any) -> bool:
        if touch.grab_current is self:
            touch.ungrab(self)
            if self._ev is not None:
                self._ev.cancel()
                self._ev = None
            return True
        return False


class KioskApp(App):
    title = "CAC kiosk"

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
        self.L = Localizer(lang or self._remembered_lang() or DEFAULT_LANG)
        self.large_text = False
        self.launcher = make_launcher(cfg)  # citizen desktop hook (kiosk/desktop.py)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kiosk-io")
        self._cleanup_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiosk-apps")
        # state shown by the screens
        self.screen = ""
        self.live: dict[str, Any] = {}
        self.session: dict[str, Any] | None = None
        self.countdown = Countdown()
        self.warnings = Warnings()
        self.receipt: dict[str, Any] | None = None
        self.receipt_deadline = 0.0
        self.lock: dict[str, Any] | None = None
        self.offline_detail = ""
        self.offline_in_session = False
        self.voucher_code = ""
        self.voucher_status = ""
        self.voucher_status_bad = False
        self.redeem_busy = False
        self.redeem_blocked_until = 0.0
        self.pin_typed = ""
        self.pin_status = ""
        self.pin_failures = 0
        self.pin_blocked_until = 0.0
        self.pin_return = "welcome"
        self.portal_query = ""
        self.portal_packages: list[dict[str, Any]] | None = None
        self.portal_package: dict[str, Any] | None = None
        self.portal_text: str | None = None
        self.portal_note = ""
        self.portal_return = "welcome"
        # polling and transitions
        self.epoch = 0            # bumped by local transitions; older poll answers are dropped
        self.poll_busy = False
        self.next_poll = 0.0
        self.fails = 0
        self.polled_once = False
        self.ending = False
        self.seen_message: str | None = None
        self.last_activity = self.mono()
        self.modal: ModalView | None = None
        self.modal_kind = ""
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
        root.add_widget(Corner(self.open_pin, size_hint=(None, None), size=(dp(64), dp(64)),
                               pos_hint={"x": 0, "top": 1}))
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
        self.screen = name
        self.live = {}
        self.content.clear_widgets()
        self.content.add_widget(screens.BUILDERS[name](self))
        self.trace("screen", name=name, lang=self.L.lang)
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
            self._unreachable(f"{exc}")
            return
        except AgentRefused as exc:
            self._unreachable(f"{exc.status} {exc.code}: {exc.message}")
            return
        self.fails = 0
        self.offline_detail = ""
        self.next_poll = now + self.cfg.poll_seconds
        if epoch == self.epoch:
            self.apply(result)
        self._after_first_answer()

    def _unreachable(self, detail: str) -> None:
        self.fails += 1
        self.offline_detail = detail
        in_session = self.session is not None
        self.next_poll = self.mono() + (self.cfg.poll_seconds if in_session
                                        else self.cfg.retry_seconds)
        log.warning("agent unreachable (%d): %s", self.fails, detail)
        if in_session and self.countdown.value(self.mono()) != 0:
            if not self.offline_in_session:
                self.offline_in_session = True
                if self.screen == "session":
                    self.rebuild()
        elif ((self.fails >= OFFLINE_AFTER_FAILURES or not self.polled_once)
              and self.screen != "offline"):
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
            self.countdown.set(sess.get("remaining_seconds"), now)
            self.trace("session_view", id=sess.get("id"),
                       remaining=sess.get("remaining_seconds"), fee=sess.get("fee_so_far"))
            target = decide(self.screen, result, False)
            if target != self.screen or (self.screen == "session" and (new or came_back)):
                self.show(target)
            elif self.screen in ("session", bar.BAR_SCREEN) and "fee" in self.live:
                self.live["fee"].src = self.L.money(int(sess.get("fee_so_far", 0)),
                                                    str(sess.get("currency", "MAD")))
            return
        if had:
            self._session_over(None)
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
        ok = screens.btn(self, "OK", "message_ok", self.dismiss_modal, fill=ACCENT)
        self.show_modal("message", screens.modal_body(
            self, "Message from the operator", str(msg.get("text", "")), [ok], raw_text=True))

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
        text = ("5 minutes left. Save your work." if threshold >= 300
                else "1 minute left. Save your work now.")
        ok = screens.btn(self, "OK", "warning_ok", self.dismiss_modal, fill=ACCENT)
        self.show_modal("warning", screens.modal_body(self, "Time is running out", text, [ok]))
        Clock.schedule_once(lambda _dt: self.modal_kind == "warning" and self.dismiss_modal(),
                            WARNING_MODAL_SECONDS)

    def ask_end(self) -> None:
        yes = screens.btn(self, "Yes, end", "end_yes", lambda: self.end_session("citizen"),
                          fill=DANGER)
        no = screens.btn(self, "No, continue", "end_no", self.dismiss_modal)
        extra = bar.your_files_buttons(self)  # citizen desktop hook: copy to USB
        self.show_modal("confirm_end", screens.modal_body(
            self, "End session", "End your session now? Your applications will be closed "
                                 "and your files removed.", [no, *extra, yes]))

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
        ok = screens.btn(self, "OK", "notice_ok", self.dismiss_modal, fill=ACCENT)
        self.show_modal("notice", screens.modal_body(self, "Sorry", msgid, [ok]))

    def _session_over(self, record: dict[str, Any] | None) -> None:
        last = self.session or {}
        self.epoch += 1
        self.session = None
        self.countdown.set(None, self.mono())
        self.receipt = record or {
            "billed_seconds": last.get("billed_seconds", 0), "fee": last.get("fee_so_far", 0),
            "currency": last.get("currency", "MAD"),
            "voucher_minutes_left": last.get("voucher_minutes_left")}
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
        if (self.session is None or self.screen not in SESSION_SCREENS
                or self.cfg.idle_seconds <= 0 or self.ending):
            if self.modal_kind == "idle":
                self.dismiss_modal()
            return
        idle = now - self.last_activity
        if self.launcher.any_running():
            x_idle = x_idle_seconds()
            if x_idle is not None:
                idle = min(idle, x_idle)
        left = self.cfg.idle_seconds - idle
        if left <= 0:
            self.trace("idle_end")
            self.end_session("idle")
        elif left <= self.cfg.idle_warning_seconds:
            text = self.L.t("Are you still there? Your session ends in {seconds} s.",
                            seconds=int(left + 0.99))
            if self.modal_kind != "idle":
                here = screens.btn(self, "I am here", "idle_here", self._activity, fill=ACCENT)
                self.show_modal("idle", screens.modal_body(self, "Are you still there?", text,
                                                           [here], raw_text=True,
                                                           live_key="idle"))
            elif "idle" in self.live:
                self.live["idle"].src = text
        elif self.modal_kind == "idle":
            self.dismiss_modal()

    # ---------------------------------------------------------------- language, text size

    def _state_file(self) -> Path:
        return self.cfg.state_dir / f"station-{self.station}.json"

    def _remembered_lang(self) -> str | None:
        try:
            lang = json.loads(self._state_file().read_text(encoding="utf-8")).get("lang")
        except (OSError, ValueError, AttributeError):
            return None
        return lang if lang in LANGS else None

    def _remember_lang(self, lang: str) -> None:
        path = self._state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"lang": lang}), encoding="utf-8")
        os.replace(tmp, path)

    def choose_language(self, lang: str) -> None:
        self.L = Localizer(lang)
        self.trace("language", lang=lang)
        self.run_bg(self._remember_lang, lambda f: None, lang)
        self.rebuild()

    def toggle_large_text(self) -> None:
        self.large_text = not self.large_text
        self.rebuild()

    # ---------------------------------------------------------------- voucher

    def voucher_key(self, symbol: str) -> None:
        self.voucher_code = add_symbol(self.voucher_code, symbol)
        if self.redeem_blocked_until <= self.mono():
            self.voucher_status = ""
        self.show("voucher")

    def voucher_del(self) -> None:
        self.voucher_code = del_symbol(self.voucher_code)
        self.show("voucher")

    def voucher_clear(self) -> None:
        self.voucher_code = ""
        self.show("voucher")

    def redeem(self) -> None:
        if self.redeem_busy or self.redeem_blocked_until > self.mono():
            return
        self.redeem_busy = True
        self.voucher_status = self.L.t("Checking your code…")
        self.voucher_status_bad = False
        self.trace("redeem_tap", code=self.voucher_code)
        self.show("voucher")
        self.epoch += 1
        self.run_bg(self.client.redeem, self._on_redeem, self.voucher_code)

    def _on_redeem(self, fut: Future[Any]) -> None:
        self.redeem_busy = False
        try:
            sess = fut.result()
        except AgentRefused as exc:
            msgid, fields = redeem_error_message(exc.status, exc.code, exc.retry_after)
            if exc.status == 429:
                self.redeem_blocked_until = self.mono() + (exc.retry_after or 60)
            self.voucher_status = self.L.t(msgid, **fields)
            self.voucher_status_bad = True
            self.trace("redeem_refused", status=exc.status, code=exc.code)
            if self.screen == "voucher":
                self.show("voucher")
            return
        except AgentUnreachable as exc:
            self._unreachable(str(exc))
            self.show("offline")
            return
        self.session = sess
        self.countdown.set(sess.get("remaining_seconds"), self.mono())
        self.last_activity = self.mono()
        self.show("session")
        self.trace("unlocked", id=sess.get("id"), remaining=sess.get("remaining_seconds"))

    # ---------------------------------------------------------------- operator PIN

    def open_pin(self) -> None:
        if self.screen == "pin":
            return
        self.pin_return = self.screen or "welcome"
        self.pin_typed = ""
        self.pin_status = ""
        self.dismiss_modal()
        self.show("pin")

    def pin_key(self, symbol: str) -> None:
        self.pin_typed = self.pin_typed[:-1] if symbol == "<" else (self.pin_typed + symbol)[:12]
        self.show("pin")

    def pin_cancel(self) -> None:
        self.pin_typed = ""
        target = self.pin_return
        if target in SESSION_SCREENS and self.session is None:
            target = "welcome"
        self.show(target)

    def pin_submit(self) -> None:
        if self.pin_blocked_until > self.mono():
            self.pin_status = self.L.t("Too many wrong PINs. Wait a minute.")
            self.show("pin")
            return
        if not self.cfg.exit_pin_hash:
            self.pin_status = self.L.t("No exit PIN is configured on this station.")
            self.show("pin")
            return
        self.run_bg(check_pin, self._on_pin, self.pin_typed, self.cfg.exit_pin_hash)

    def _on_pin(self, fut: Future[Any]) -> None:
        self.pin_typed = ""
        if fut.result():
            self.trace("exit")
            self.allow_close = True
            self.stop()
            return
        self.pin_failures += 1
        if self.pin_failures >= PIN_MAX_FAILURES:
            self.pin_failures = 0
            self.pin_blocked_until = self.mono() + PIN_BLOCK_SECONDS
        self.pin_status = self.L.t("Wrong PIN")
        self.show("pin")

    # ---------------------------------------------------------------- offline library

    def open_portal(self) -> None:
        self.portal_return = "session" if self.session is not None else "welcome"
        self.portal_query = ""
        self.portal_packages = None
        self.show("portal")
        self.run_bg(self.client.content, self._on_content)

    def _on_content(self, fut: Future[Any]) -> None:
        try:
            self.portal_packages = list(fut.result())
        except (AgentRefused, AgentUnreachable) as exc:
            log.warning("content list unavailable: %s", exc)
            self.portal_packages = []
        if self.screen == "portal":
            self.show("portal")

    def portal_type(self, ch: str) -> None:
        self.portal_query = (self.portal_query + ch)[:40]
        self.show("portal")

    def portal_del(self) -> None:
        self.portal_query = self.portal_query[:-1]
        self.show("portal")

    def portal_back(self) -> None:
        self.show("session" if self.session is not None else "welcome")

    def open_package(self, pkg: dict[str, Any]) -> None:
        self.portal_package = pkg
        self.portal_text = None
        self.portal_note = ""
        self.show("portal_item")

    def open_file(self, f: dict[str, Any]) -> None:
        url = str(f.get("url", ""))
        media = str(f.get("media_type", ""))
        self.trace("open_file", url=url)
        if bar.open_in_office(self, f):  # citizen desktop hook: templates in LibreOffice
            return
        if media.startswith("text/"):
            self.run_bg(self.client.fetch_text, self._on_text, url)
        elif self.cfg.open_command:
            full = url if url.startswith("http") else self.client.base + url
            try:
                self.launcher.launch_command("portal", [a.format(url=full)
                                                        for a in self.cfg.open_command])
                self.portal_note = "Opened in a new window."
            except OSError:
                self.portal_note = "This file cannot be opened here. Please ask the operator."
            self.show("portal_item")
        else:
            self.portal_note = "This file cannot be opened here. Please ask the operator."
            self.show("portal_item")

    def _on_text(self, fut: Future[Any]) -> None:
        try:
            self.portal_text = str(fut.result())[:20000]
        except AgentUnreachable:
            self.portal_note = "This file cannot be opened here. Please ask the operator."
        if self.screen == "portal_item":
            self.show("portal_item")

    def portal_item_back(self) -> None:
        if self.portal_text is not None:
            self.portal_text = None
            self.show("portal_item")
        else:
            self.show("portal")


__all__ = ["KButton", "KioskApp", "WARN"]
