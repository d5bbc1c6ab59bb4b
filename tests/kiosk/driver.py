"""Drives the real kiosk app (real Kivy window under X, real HTTP to a real agent API) by
simulated touches through one scenario, in a process of its own (one Kivy App per process).

    python tests/kiosk/driver.py SCENARIO OUTDIR

The agent runs in this process on a real port of 127.0.0.1, on a background thread with its
own asyncio loop and a FakeClock the scenario moves. The scenario runs on another thread
and touches the UI only through ``ui()`` (executed on Kivy's main thread). Exit status 0
means every check passed; failures are printed and written to OUTDIR/result.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "kiosk")]

SCENARIO, OUT = sys.argv[1], Path(sys.argv[2])
OUT.mkdir(parents=True, exist_ok=True)
os.environ["KIVY_HOME"] = str(OUT / "kivy-home")

from kiosk.kivyconf import configure_kivy  # noqa: E402

configure_kivy(windowed=True, size=(1280, 800))

from agent_support import TOKENS  # noqa: E402
from kiosk_agent import AgentThread  # noqa: E402
from kivy.base import EventLoop  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.tests.common import UnitTestTouch  # noqa: E402

from kiosk.app import KioskApp  # noqa: E402
from kiosk.client import StationClient  # noqa: E402
from kiosk.config import AppSpec, KioskConfig  # noqa: E402
from kiosk.i18n import LANGS, Localizer  # noqa: E402
from kiosk.widgets import ACCENT, KButton, walk  # noqa: E402

STEP_TIMEOUT = 15.0


class Failed(AssertionError):
    pass


def check(cond: object, what: str) -> None:
    if not cond:
        raise Failed(what)


# ---------------------------------------------------------------- the agent


# ---------------------------------------------------------------- UI helpers


class Driver:
    def __init__(self, app: KioskApp) -> None:
        self.app = app

    def ui(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on Kivy's thread and return its result."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def run(_dt: float) -> None:
            try:
                box["v"] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the scenario thread
                box["e"] = exc
            done.set()
        Clock.schedule_once(run, 0)
        if not done.wait(STEP_TIMEOUT):
            raise Failed("the UI thread did not answer")
        if "e" in box:
            raise box["e"]
        return box.get("v")

    def until(self, what: str, cond: Callable[[], object], timeout: float = STEP_TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.ui(cond)
            if v:
                return v
            time.sleep(0.05)
        raise Failed(f"timed out waiting for {what} (screen {self.app.screen!r}, "
                     f"modal {self.app.modal_kind!r})")

    def screen(self, name: str, timeout: float = STEP_TIMEOUT) -> None:
        self.until(f"screen {name}", lambda: self.app.screen == name, timeout)

    def find(self, kid: str) -> Any:
        roots = list(Window.children)
        for r in roots:
            for w in walk(r):
                if getattr(w, "kid", None) == kid:
                    return w
        return None

    def tap(self, kid: str) -> None:
        def go() -> None:
            w = self.find(kid)
            if w is None:
                raise Failed(f"no widget {kid!r} on screen {self.app.screen!r}")
            x, y = w.to_window(*w.center)
            t = UnitTestTouch(x, y)
            t.touch_down()
            t.touch_up()
        self.ui(go)
        time.sleep(0.05)

    def swipe(self, kid: str, dx: float, steps: int = 8) -> None:
        """A finger moved ``dx`` pixels across widget ``kid`` (negative: to the left), at a
        finger's pace (one move per frame: Kivy's scroll effects need real time between)."""
        touch: list[UnitTestTouch] = []
        start: list[float] = []

        def down() -> None:
            w = self.find(kid)
            if w is None:
                raise Failed(f"no widget {kid!r} on screen {self.app.screen!r}")
            x, y = w.to_window(*w.center)
            start[:] = [x, y]
            touch.append(UnitTestTouch(x, y))
            touch[0].touch_down()
        self.ui(down)
        for i in range(1, steps + 1):
            time.sleep(0.02)
            self.ui(lambda i=i: touch[0].touch_move(start[0] + dx * i / steps, start[1]))
        time.sleep(0.02)
        self.ui(lambda: touch[0].touch_up())
        time.sleep(0.05)

    def text(self, kid: str) -> str:
        return str(self.ui(lambda: self.find(kid).src))

    def enabled(self, kid: str) -> bool:
        return bool(self.ui(lambda: self.find(kid).enabled))

    def event(self, name: str, **match: Any) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for e in self.app.events:
                if e["event"] == name and all(e.get(k) == v for k, v in match.items()):
                    return e
            return None
        return dict(self.until(f"event {name} {match}", find))

    def shot(self, name: str) -> Path:
        """A screenshot of what is drawn now (after two frames)."""
        for _ in range(3):  # each round trip waits for the next frame
            self.ui(lambda: None)
        return Path(self.ui(lambda: self.app.snapshot(OUT / "screens" / f"{name}.png")))

    def type_code(self, code: str) -> None:
        for ch in code.replace("-", ""):
            self.tap(f"key_{ch}")

    def widgets_min_size(self) -> list[str]:
        """Buttons smaller than 48 dp on the current screen."""
        from kivy.metrics import dp

        def go() -> list[str]:
            return [f"{w.kid}:{w.width:.0f}x{w.height:.0f}"
                    for r in Window.children for w in walk(r)
                    if isinstance(w, KButton) and (w.height < dp(48) - 0.5
                                                   or w.width < dp(48) - 0.5)]
        return list(self.ui(go))


# ---------------------------------------------------------------- scenarios


def sc_flow(d: Driver, agent: AgentThread) -> None:
    """Language choice, good voucher, warnings at 5 and 1 minutes, end and receipt."""
    app = d.app
    d.event("interactive")
    d.screen("welcome")
    d.until("first poll", lambda: app.polled_once)
    check(not d.widgets_min_size(), f"small touch targets: {d.widgets_min_size()}")
    d.tap("lang_ar")
    d.until("arabic", lambda: app.L.lang == "ar" and app.screen == "welcome")
    state = app.cfg.state_dir / "station-s1.json"
    d.until("language remembered", lambda: state.is_file()
            and json.loads(state.read_text())["lang"] == "ar")
    # the start action is drawn right-to-left: the start-side widgets sit on the right
    lang_ar, lang_en = d.find("lang_ar"), d.find("lang_en")
    check(lang_ar.to_window(*lang_ar.center)[0] > lang_en.to_window(*lang_en.center)[0],
          "the language row is not mirrored in Arabic")
    d.tap("lang_fr")
    d.until("french", lambda: app.L.lang == "fr")
    sold = agent.call(agent.service.sell_voucher, 10, None, "amina")
    d.tap("start_voucher")
    d.screen("voucher")
    check(not d.enabled("redeem"), "start is enabled before the code is complete")
    d.type_code(sold["code"])
    check(d.text("key_0") == "0", "keypad")
    d.tap("redeem")
    d.screen("session")
    unlocked = d.event("unlocked")
    check(unlocked["remaining"] == 600, f"remaining at start {unlocked['remaining']}")
    fee_text = d.ui(lambda: app.live["fee"].src)
    check(fee_text == Localizer("fr").money(0), f"fee in the grace period {fee_text!r}")
    agent.advance(301)  # 4:59 left
    w5 = d.event("warning", threshold=300)
    check(d.app.modal_kind == "warning", "no 5-minute warning shown")
    d.shot("flow-warning-5min-fr")
    d.tap("warning_ok")
    d.until("warning closed", lambda: app.modal_kind == "")
    agent.advance(240)  # 0:59 left
    w1 = d.event("warning", threshold=60)
    check(w1["mono"] > w5["mono"], "warnings out of order")
    shown = d.ui(lambda: app.live["time"].src)
    check(shown.startswith("00:5") or shown == "01:00", f"time left shown as {shown!r}")
    d.tap("warning_ok")
    d.tap("end")
    d.until("confirm", lambda: app.modal_kind == "confirm_end")
    d.tap("end_yes")
    d.screen("receipt")
    rec = d.event("session_over")["record"]
    check(rec["billed_seconds"] == 541, f"billed {rec['billed_seconds']}")
    check(d.text("fee") == Localizer("fr").money(rec["fee"]), "receipt fee")
    check(d.text("voucher_left") == "0 min", f"voucher left {d.text('voucher_left')!r}")
    check(d.text("duration") == "9 min 01 s", f"duration {d.text('duration')!r}")
    check(agent.call(agent.service.station_session, "s1")["session"] is None,
          "the agent still has a session")
    d.tap("done")
    d.screen("welcome")


def sc_wrong(d: Driver, agent: AgentThread) -> None:
    """Wrong codes, then the agent's rate limit (429) shown with the wait and Start disabled."""
    app = d.app
    d.screen("welcome")
    d.tap("start_voucher")
    d.screen("voucher")
    bad = Localizer("fr").t("This code is not valid. Check it and try again.")
    d.type_code("0000000000")
    for i in range(5):  # the code stays in the field: tap Start again
        d.tap("redeem")
        d.until(f"refusal {i}", lambda i=i: len([e for e in app.events
                                                 if e["event"] == "redeem_refused"]) > i)
        check(d.text("voucher_status") == bad, f"status {d.text('voucher_status')!r}")
    d.shot("voucher-wrong-fr")
    d.tap("redeem")
    e = d.event("redeem_refused", status=429)
    check(e["code"] == "too_many_attempts", str(e))
    status = d.text("voucher_status")
    check(status.startswith("Trop de codes erronés. Réessayez dans "), status)
    check(not d.enabled("redeem"), "Start stays enabled while rate-limited")
    d.shot("voucher-rate-limited-fr")
    check(app.screen == "voucher", "left the voucher screen")


def sc_down(d: Driver, agent: AgentThread) -> None:
    """Agent down and back: out of service with retry; during a session the time goes on."""
    app = d.app
    d.screen("welcome")
    d.until("first poll", lambda: app.polled_once)
    agent.down()
    d.screen("offline")
    d.shot("offline-fr")
    agent.up()
    d.screen("welcome", timeout=10)
    agent.call(agent.service.start_session, "s1", 30, None, "amina")
    d.screen("session")
    agent.down()
    d.until("offline banner", lambda: app.offline_in_session)
    check(app.screen == "session", "a session must stay on screen while the agent is away")
    before = d.ui(lambda: app.countdown.value(app.mono()))
    time.sleep(1.2)
    after = d.ui(lambda: app.countdown.value(app.mono()))
    check(after < before, f"the time left does not count down offline ({before} -> {after})")
    agent.up()
    d.until("back online", lambda: not app.offline_in_session, timeout=10)
    check(app.screen == "session", "session screen after the agent came back")


def sc_control(d: Driver, agent: AgentThread) -> None:
    """Lock, unlock and an operator message, as the agent's poll answer says."""
    app = d.app
    d.screen("welcome")
    agent.call(agent.service.start_session, "s1", 30, None, "amina")
    d.screen("session")
    agent.advance(120)  # a cash session: past the grace period, one block is due
    d.until("fee so far updated", lambda: app.live["fee"].src == Localizer("fr").money(200))
    agent.call(agent.service.lock_station, "s1", "operator:amina", "Maintenance 15 min")
    d.screen("locked")
    check(d.find("end") is None, "session controls still visible when locked")
    d.shot("locked-fr")
    agent.call(agent.service.unlock_station, "s1", "operator:amina")
    d.screen("welcome")
    agent.call(agent.service.send_message, "s1", "Le centre ferme à 18h", 60, "operator:amina")
    d.until("message", lambda: app.modal_kind == "message")
    d.shot("message-fr")
    d.tap("message_ok")
    d.until("message closed", lambda: app.modal_kind == "")


def sc_pause(d: Driver, agent: AgentThread) -> None:
    """Paused at the counter: the paused screen (no way out for the citizen, the time stands
    still), resumed, then moved: the old kiosk says where the session went."""
    app = d.app
    d.screen("welcome")
    s = agent.call(agent.service.start_session, "s1", 30, None, "amina")
    d.screen("session")
    d.tap("end")  # the end dialog is open when the counter pauses
    d.until("end dialog", lambda: app.modal_kind == "confirm_end")
    agent.advance(60)
    agent.call(agent.service.pause, s["id"], "Coupure de courant", "operator:amina")
    d.screen("paused")
    check(app.modal_kind == "", "the end dialog stayed over the paused screen")
    for kid in ("end", "lang_menu", "bar_end", "end_yes"):
        check(d.find(kid) is None, f"{kid} is on the paused screen")
    d.shot("paused-fr")
    agent.advance(600)  # ten paused minutes: no time counted

    def views() -> int:
        return sum(1 for e in app.events if e["event"] == "session_view")
    seen = d.ui(views)
    d.until("two more polls", lambda: views() >= seen + 2)
    view = agent.call(agent.service.station_session, "s1")["session"]
    check(view["state"] == "paused" and view["remaining_seconds"] == 29 * 60,
          f"time went on while paused: {view}")
    check(app.screen == "paused", f"left the paused screen: {app.screen}")
    agent.call(agent.service.resume, s["id"], "operator:amina")
    d.screen("session")
    agent.call(agent.service.move, s["id"], "s2", "operator:amina")
    d.screen("receipt")
    check((app.receipt or {}).get("moved_to") == "s2", f"receipt {app.receipt}")
    d.shot("moved-fr")
    check(agent.call(agent.service.station_session, "s2")["session"]["id"] == s["id"],
          "the session is not on s2")


def sc_idle(d: Driver, agent: AgentThread) -> None:
    """No touch during a session: 'are you still there?', then the session ends (idle)."""
    app = d.app
    d.screen("welcome")
    agent.call(agent.service.start_session, "s1", 30, None, "amina")
    d.screen("session")
    d.until("idle warning", lambda: app.modal_kind == "idle", timeout=15)
    d.tap("idle_here")
    d.until("idle warning gone", lambda: app.modal_kind != "idle")
    check(app.screen == "session", "a touch must keep the session")
    d.until("idle warning again", lambda: app.modal_kind == "idle", timeout=15)
    d.event("idle_end")
    d.screen("receipt")
    check(agent.call(agent.service.station_session, "s1")["session"] is None,
          "the agent still has the idle session")
    audit = agent.call(agent.service.audit_entries, None, None, 50)
    ends = [a for a in audit if a.get("action") == "session.end"]
    check(ends and ends[-1].get("details", ends[-1]).get("reason") == "idle"
          or any("idle" in json.dumps(a) for a in ends), f"no idle end in the audit: {ends}")
    d.screen("welcome", timeout=10)  # the receipt goes back by itself


def sc_apps(d: Driver, agent: AgentThread) -> None:
    """An app launched during a session is killed and its folder wiped at the end."""
    profile = OUT / "apps" / "dummy-profile"
    d.screen("welcome")
    agent.call(agent.service.start_session, "s1", 30, None, "amina")
    d.screen("session")
    d.tap("app_dummy")
    d.until("app wrote its files", lambda: (profile / "pid").is_file()
            and (profile / "cache" / "history.txt").is_file())
    pid = int((profile / "pid").read_text())
    os.kill(pid, 0)
    d.tap("end")
    d.tap("end_yes")
    d.screen("receipt")
    d.event("apps_closed")
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    check(not alive, "the app still runs after the session")
    check(profile.is_dir() and list(profile.iterdir()) == [], "the profile folder was not wiped")


def sc_portal(d: Driver, agent: AgentThread) -> None:
    """The offline library: the agent without a content endpoint yet shows 'no content'."""
    d.screen("welcome")
    d.tap("portal")
    d.until("content answer", lambda: d.app.portal_packages is not None)
    check(d.app.portal_packages == [], "a 404 must read as no content")
    d.shot("portal-empty-fr")
    d.tap("back")
    d.screen("welcome")


def sc_pdf(d: Driver, agent: AgentThread) -> None:
    """A PDF of the library read inside the kiosk: rendered pages, the page buttons, a
    swipe (mirrored in Arabic), zoom (a zoomed page scrolls instead of turning), back; a
    file that is not a PDF gives the "cannot be opened" note."""
    import http.server
    from functools import partial

    from pdf_sample import sample_pdf

    from kiosk.screens.portal import CANNOT_OPEN

    app = d.app
    root = OUT / "pdf-files"
    root.mkdir(parents=True, exist_ok=True)
    (root / "guide.pdf").write_bytes(sample_pdf(3))
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(
        http.server.SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    files = [{"path": name, "title": title, "media_type": "application/pdf",
              "url": f"{base}/{name}", "size": 1, "sha256": "0" * 64}
             for name, title in (("guide.pdf", "Guide (PDF)"), ("broken.pdf", "Broken"))]
    pkg = {"id": "pdfs", "version": 1, "title": "PDF", "language": "fr", "description": "",
           "files": files}
    try:
        d.screen("welcome")
        for lang in ("fr", "ar"):
            def setup(lang: str = lang) -> None:
                app.L = Localizer(lang)
                app.portal_packages = [pkg]
                app.library.open_package(pkg)
            d.ui(setup)
            d.screen("portal_item")
            app.events.clear()
            d.tap("file_guide.pdf")
            d.event("pdf_open", pages=3, total=3)
            d.screen("portal_pdf")
            check(d.find("pdf_page") is not None, "no page image")
            check(not d.enabled("pdf_prev") and d.enabled("pdf_next"), "page buttons")
            d.shot(f"pdf-{lang}-page1")
            d.tap("pdf_next")
            d.event("pdf_page", page=1)
            # a swipe towards the reading direction's start brings the next page
            d.swipe("pdf_view", -300 if lang == "fr" else 300)
            d.event("pdf_page", page=2)
            check(not d.enabled("pdf_next"), "the last page has no next")
            d.swipe("pdf_view", 300 if lang == "fr" else -300)
            d.event("pdf_page", page=1)
            d.tap("pdf_zoom_in")
            d.event("pdf_zoom", zoom=1.5)
            wide = d.ui(lambda: d.find("pdf_page").width > d.find("pdf_view").width)
            check(bool(wide), "a zoomed page is wider than its view")
            d.shot(f"pdf-{lang}-zoomed-top")
            d.swipe("pdf_view", -300 if lang == "fr" else 300)  # scrolls, does not turn
            check(app.pdf_page == 1, "a zoomed page must scroll, not turn")
            time.sleep(1.0)  # the scroll's kinetic effect settles
            d.shot(f"pdf-{lang}-zoomed")
            d.tap("back")
            d.screen("portal_item")
            check(app.pdf_doc is None, "the pixels stay in memory after back")
            d.tap("file_broken.pdf")
            d.until("the broken PDF's note", lambda: app.portal_note == CANNOT_OPEN)
            d.screen("portal_item")
            app.portal_note = ""
    finally:
        server.shutdown()


def sc_screens(d: Driver, agent: AgentThread) -> None:
    """Every screen (and dialog) in every language, saved as PNG; no untranslated text."""
    app = d.app
    d.screen("welcome")
    check_glyphs(d)
    d.until("first poll", lambda: app.polled_once)
    agent.down()  # keep the poll from changing screens under us
    d.until("unreachable", lambda: app.fails >= 1)
    app.cfg = KioskConfig(**{**app.cfg.__dict__, "poll_seconds": 3600.0,
                             "retry_seconds": 3600, "idle_seconds": 0})
    d.ui(lambda: setattr(app, "next_poll", app.mono() + 3600))
    fake_session = {"id": "x", "remaining_seconds": 1234, "fee_so_far": 400, "currency": "MAD",
                    "paid_by": "voucher", "voucher_minutes_left": 20, "billed_seconds": 600}
    packages = [{"id": "guide-cin", "version": 1, "title": "Carte nationale : les démarches",
                 "language": "fr", "description": "Comment demander la CNIE.",
                 "files": [{"path": "index.txt", "size": 10, "sha256": "0" * 64,
                            "title": "Étapes", "media_type": "text/plain",
                            "url": "/content/guide-cin/index.txt"}]},
                {"id": "toolkit", "version": 2, "title": "دليل المقاول الذاتي",
                 "language": "ar", "description": "", "files": []}]
    for lang in LANGS:
        def setup(lang: str = lang) -> None:
            app.L = Localizer(lang)
            app.session = None
            app.dismiss_modal()
        d.ui(setup)

        def show(name: str, shot: str = "", lang: str = lang, **state: Any) -> None:
            def go() -> None:
                for k, v in state.items():
                    setattr(app, k, v)
                if name == "session":
                    app.countdown.set(1234, app.mono())
                app.show(name)
            d.ui(go)
            d.shot(f"{lang}-{shot or name}")
            check_icons(d, f"{lang}-{shot or name}")
        show("welcome")
        show("voucher", voucher_code="7K3QF-9", voucher_status="")
        show("operator")
        show("session", session=fake_session)
        for kind, opener in (("warning", lambda: app._warn(300)),
                             ("confirm_end", app.ask_end),
                             ("idle", None), ("message", None)):
            if kind == "idle":
                def opener() -> None:
                    from kiosk import screens
                    app.show_modal("idle", screens.modal_body(
                        app, "Are you still there?",
                        app.L.t("Are you still there? Your session ends in {seconds} s.",
                                seconds=17), [], raw_text=True))
            elif kind == "message":
                def opener(lang: str = lang) -> None:
                    app.seen_message = None
                    app._handle_message({"id": f"m-{lang}", "text": "Le centre ferme à 18h"})
            d.ui(opener)
            d.shot(f"{lang}-session-{kind}")
            check_icons(d, f"{lang}-session-{kind}")
            d.ui(app.dismiss_modal)
        show("session", shot="session-resumed", session={**fake_session, "resumed": True})
        show("profile", session=fake_session,
             profile_choice={"purpose": "job", "age_band": "18-24"})
        show("paused", session={**fake_session, "state": "paused",
                                "pause_reason": "Coupure de courant"})
        show("receipt", session=None, receipt_deadline=app.mono() + 3600,
             receipt={"billed_seconds": 3725, "fee": 1000, "currency": "MAD",
                      "voucher_minutes_left": 12})
        show("receipt", shot="receipt-moved", receipt={"moved_to": "s2"})
        show("locked", lock={"reason": "Maintenance", "by": "operator:amina"})
        show("offline", offline_detail="")
        show("pin", pin_typed="12", pin_status="")
        show("portal", portal_packages=packages, portal_query="")
        hits = [{"package": "guide-cin", "path": "index.txt", "title": "Étapes",
                 "snippet": "… déposez la demande de carte nationale au bureau le plus proche …"},
                {"package": "toolkit", "path": "a.html", "title": "البطاقة الوطنية",
                 "snippet": "… يجب تجديد البِطاقة الوطنية قبل انتهاء صلاحيتها …"}]
        show("portal", shot="portal-search", portal_packages=packages, portal_query="carte",
             portal_hits=hits, portal_hits_for="carte")
        show("portal_item", portal_package=packages[0], portal_text=None, portal_note="")
        d.ui(lambda: setattr(app, "large_text", True))
        show("welcome", shot="welcome-larger-text")
        d.ui(lambda: setattr(app, "large_text", False))
    missing = sorted(Localizer.missing)
    check(not missing, f"untranslated messages: {missing}")


# buttons that are symbols themselves: keypad keys and the language names
SYMBOL_KEYS = ("key_", "pin_", "lang_", "search_")


def check_icons(d: Driver, where: str) -> None:
    """Every action button on screen has an icon of the icon font and words beside it; the
    screen's title has its state's icon; no touch target under 48 dp."""
    from kiosk.icons import CODEPOINTS, for_kid, glyph, icon_font

    check(icon_font() is not None, "the icon font is not installed")

    def go() -> list[str]:
        bad = []
        for r in Window.children:
            for w in walk(r):
                if not isinstance(w, KButton) or str(w.kid).startswith("lang_") or (
                        str(w.kid).startswith(SYMBOL_KEYS) and len(w.src) <= 1):
                    continue
                if not (w.icon in CODEPOINTS and w.icon == for_kid(w.kid)
                        and glyph(w.icon, w.rtl) in w.text and w.src.strip()):
                    bad.append(f"{w.kid}:{w.icon!r}:{w.src!r}")
        return bad
    bad = d.ui(go)
    check(not bad, f"{where}: buttons without an icon or words: {bad}")
    small = d.widgets_min_size()
    check(not small, f"{where}: touch targets under 48 dp: {small}")


def check_glyphs(d: Driver) -> None:
    """Each icon the kiosk uses is drawn by the icon font as a glyph of its own: not empty,
    not what the font draws for a code point it lacks."""
    from kivy.core.text import Label as CoreLabel

    from kiosk.icons import CODEPOINTS, icon_font

    font = icon_font()
    check(font is not None, "the icon font is not installed")

    def pixels(ch: str) -> bytes:
        lab = CoreLabel(text=ch, font_name=font, font_size=48)
        lab.refresh()
        return bytes(lab.texture.pixels)

    def go() -> list[str]:
        # what the font draws for a code point it lacks (seen: the same as a space; "A" is
        # not in an icon font), and for a space
        missing = {pixels("A"), pixels(" "), pixels(chr(0xFFFF))}
        return [name for name, cp in CODEPOINTS.items() if pixels(chr(cp)) in missing]
    bad = d.ui(go)
    check(not bad, f"icons drawn as a box or nothing: {bad}")


def write_tone(path: Path, seconds: float = 0.5) -> Path:
    """A stand-in for a CAC's own recording: a 440 Hz tone, 16-bit mono WAV."""
    import math
    import struct
    import wave
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 22050
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(rate * seconds)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def voice_after(d: Driver, count: int) -> dict[str, Any]:
    """The voice event after the first ``count`` ones (the answer to the next listen)."""
    def find() -> dict[str, Any] | None:
        found = [e for e in d.app.events if e["event"] == "voice"]
        return found[count] if len(found) > count else None
    return dict(d.until("voice event", find, timeout=40))


def listen(d: Driver) -> dict[str, Any]:
    before = len([e for e in d.app.events if e["event"] == "voice"])
    d.tap("listen")
    return voice_after(d, before)


def sc_voice(d: Driver, agent: AgentThread) -> None:
    """The listen button: espeak-ng speaks the screen's words (fr, ar) into a cached WAV;
    a recorded file wins; Tamazight without a recording and a missing sound device are
    silent, without error. The test checks the WAVs (tests/kiosk/test_voice.py)."""
    app = d.app
    d.screen("welcome")
    d.until("first poll", lambda: app.polled_once)
    spoken: dict[str, Any] = {}
    for lang in ("fr", "ar"):
        d.tap(f"lang_{lang}")
        d.until(lang, lambda lang=lang: app.L.lang == lang)
        spoken[f"{lang}-welcome"] = listen(d)
        d.tap("ask_operator")
        d.screen("operator")
        spoken[f"{lang}-operator"] = listen(d)
        d.tap("back")
        d.screen("welcome")
    again = listen(d)  # the same words again: the cached file
    spoken["ar-welcome-again"] = again
    # the CAC drops a recording of the Tamazight welcome screen into the folder
    write_tone(OUT / "recorded-voice" / "zgh" / "welcome.wav")
    d.tap("lang_zgh")
    d.until("zgh", lambda: app.L.lang == "zgh")
    spoken["zgh-welcome"] = listen(d)
    d.tap("ask_operator")
    d.screen("operator")
    spoken["zgh-operator"] = listen(d)  # no recording, no voice
    d.tap("back")
    d.screen("welcome")
    # a recording wins over espeak-ng's voice too
    write_tone(OUT / "recorded-voice" / "fr" / "operator.wav")
    d.tap("lang_fr")
    d.until("fr", lambda: app.L.lang == "fr")
    d.tap("ask_operator")
    d.screen("operator")
    spoken["fr-operator-recorded"] = listen(d)
    d.tap("back")
    d.screen("welcome")
    # a dialog speaks its own words
    d.ui(lambda: app._notice("This application could not be opened. Please ask the operator."))
    d.until("notice", lambda: app.modal_kind == "notice")
    spoken["fr-notice"] = listen(d)
    d.tap("notice_ok")
    d.until("no dialog", lambda: app.modal is None)
    check(app.screen == "welcome", "still on the welcome screen after speaking")
    (OUT / "voice.json").write_text(json.dumps(spoken, ensure_ascii=False, indent=1))


def sc_voice_arrival(d: Driver, agent: AgentThread) -> None:
    """speak_on_arrival: each new screen is spoken when it opens, and played (the test gives
    SDL a sound device that writes to a file)."""
    app = d.app
    d.screen("welcome")
    first = d.event("voice", screen="welcome")
    d.tap("ask_operator")
    d.screen("operator")
    second = d.event("voice", screen="operator")
    n = len([e for e in app.events if e["event"] == "voice"])
    d.tap("back")
    d.screen("welcome")
    back = voice_after(d, n)
    (OUT / "voice.json").write_text(json.dumps({"welcome": first, "operator": second,
                                                "back": back}, ensure_ascii=False, indent=1))


def sc_profile(d: Driver, agent: AgentThread) -> None:
    """The "help us count" screen after a redeem (CONTRACT §9b): in French the answers
    reach the agent's session and its closed record; in Arabic the rows are mirrored and
    "Skip" sends nothing; never asked twice in one session."""
    app = d.app
    d.screen("welcome")
    d.until("first poll", lambda: app.polled_once)

    def redeem() -> None:
        sold = agent.call(agent.service.sell_voucher, 10, None, "amina")
        d.tap("start_voucher")
        d.screen("voucher")
        d.type_code(sold["code"])
        d.tap("redeem")
        d.screen("profile")

    def agent_profile() -> Any:
        view = agent.call(agent.service.station_session, "s1")["session"]
        return view["profile"]

    redeem()
    check_icons(d, "profile-fr")
    skip, done = d.find("profile_skip"), d.find("profile_done")
    check(skip.height >= done.height and skip.width >= done.width - 1,
          f"skip smaller than done: {skip.size} < {done.size}")
    answer = d.find("prof_purpose_job")
    check(skip.height >= answer.height, f"skip lower than an answer: {skip.height}")
    check(not d.enabled("profile_done"), "done is enabled before any answer")
    for kid in ("prof_purpose_job", "prof_purpose_egov", "prof_age_band_25-34",
                "prof_gender_f", "prof_gender_m", "prof_gender_m"):  # m chosen, then unchosen
        d.tap(kid)
    want = {"purpose": "egov", "age_band": "25-34"}
    check(app.profile_choice == want, f"chosen {app.profile_choice}")
    d.tap("prof_gender_f")
    want["gender"] = "f"
    check(d.find("prof_purpose_egov").fill == list(ACCENT), "the chosen answer is not marked")
    check(d.find("prof_purpose_job").fill != list(ACCENT), "an answer left stays marked")
    d.shot("profile-fr")
    d.tap("profile_done")
    d.screen("session")
    d.event("profile_ok")
    check(agent_profile() == want, f"the agent's session profile {agent_profile()}")
    time.sleep(1.0)  # a few polls: the question does not come back
    check(app.screen == "session", f"left the session screen for {app.screen}")
    sent = next(i for i, e in enumerate(app.events) if e["event"] == "profile_sent")
    check(not any(e["event"] == "screen" and e["name"] == "profile"
                  for e in app.events[sent:]), "the question came back in the same session")
    d.tap("end")
    d.until("confirm", lambda: app.modal_kind == "confirm_end")
    d.tap("end_yes")
    d.screen("receipt")
    rec = d.event("session_over")["record"]
    check(rec.get("profile") == want, f"closed record profile {rec.get('profile')}")
    d.tap("done")
    d.screen("welcome")

    d.tap("lang_ar")
    d.until("arabic", lambda: app.L.lang == "ar")
    redeem()
    check_icons(d, "profile-ar")
    f, x = d.find("prof_gender_f"), d.find("prof_gender_x")
    check(f.to_window(*f.center)[0] > x.to_window(*x.center)[0],
          "the gender row is not mirrored in Arabic")
    egov, school = d.find("prof_purpose_egov"), d.find("prof_purpose_school")
    check(egov.to_window(*egov.center)[0] > school.to_window(*school.center)[0],
          "the purposes are not mirrored in Arabic")
    sk, dn = d.find("profile_skip"), d.find("profile_done")
    check(sk.to_window(*sk.center)[0] > dn.to_window(*dn.center)[0],
          "the footer is not mirrored in Arabic")
    d.tap("prof_age_band_55+")
    d.shot("profile-ar")
    d.tap("profile_skip")  # skip wins over an answer chosen: nothing is sent
    d.screen("session")
    d.event("profile_skipped")
    time.sleep(1.0)
    check(agent_profile() is None, f"skip sent a profile: {agent_profile()}")
    check(not any(e["event"] == "profile_sent" and e["profile"].get("age_band") == "55+"
                  for e in app.events), "skip sent the chosen answer")
    check(app.screen == "session", f"left the session screen for {app.screen}")


def sc_bench(d: Driver, agent: AgentThread) -> None:
    """bench/kiosk.py: tap 'Start' with a good code -> first frame of the session screen,
    beside the agent's redeem round trip alone (same process, same agent)."""
    app = d.app
    d.screen("welcome")
    d.until("first poll", lambda: app.polled_once)
    from kiosk.client import StationClient
    direct = StationClient(agent.url, "s2", TOKENS["s2"])
    redeem_alone, tap_to_unlocked = [], []
    for _ in range(int(os.environ.get("BENCH_ROUNDS", "7"))):
        code = agent.call(agent.service.sell_voucher, 30, None, "amina")["code"]
        t0 = time.perf_counter()
        direct.redeem(code)
        redeem_alone.append(time.perf_counter() - t0)
        agent.call(agent.service.end_on_station, "s2", __import__("agent.session").session
                   .EndReason.OPERATOR)
        code = agent.call(agent.service.sell_voucher, 30, None, "amina")["code"]
        d.tap("start_voucher")
        d.screen("voucher")
        d.type_code(code)
        marks: dict[str, float] = {}

        def on_flip(*_: Any, marks: dict[str, float] = marks) -> None:
            if app.screen == "session" and "visible" not in marks:
                marks["visible"] = time.perf_counter()

        def tap_start(marks: dict[str, float] = marks, on_flip: Any = on_flip) -> None:
            Window.bind(on_flip=on_flip)
            w = d.find("redeem")
            x, y = w.to_window(*w.center)
            t = UnitTestTouch(x, y)
            marks["tap"] = time.perf_counter()
            t.touch_down()
            t.touch_up()
        d.ui(tap_start)
        d.until("session visible", lambda marks=marks: "visible" in marks)
        d.ui(lambda on_flip=on_flip: Window.unbind(on_flip=on_flip))
        tap_to_unlocked.append(marks["visible"] - marks["tap"])
        d.tap("end")
        d.tap("end_yes")
        d.screen("receipt")
        d.tap("done")
        d.screen("welcome")
    (OUT / "bench.json").write_text(json.dumps({"redeem_alone": redeem_alone,
                                                "tap_to_unlocked": tap_to_unlocked}))


SCENARIOS = {"flow": sc_flow, "wrong": sc_wrong, "down": sc_down, "control": sc_control,
             "pause": sc_pause, "pdf": sc_pdf,
             "idle": sc_idle, "apps": sc_apps, "portal": sc_portal, "screens": sc_screens,
             "bench": sc_bench, "voice": sc_voice, "voice_arrival": sc_voice_arrival,
             "profile": sc_profile}

DUMMY_APP = """
import os, sys, time, pathlib
p = pathlib.Path(sys.argv[1])
(p / "cache").mkdir(parents=True, exist_ok=True)
(p / "cache" / "history.txt").write_text("a citizen's private history")
(p / "pid").write_text(str(os.getpid()))
time.sleep(300)
"""


def kiosk_config() -> KioskConfig:
    apps: tuple[AppSpec, ...] = ()
    if SCENARIO == "apps":
        script = OUT / "apps" / "dummy.py"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(DUMMY_APP)
        profile = OUT / "apps" / "dummy-profile"
        apps = (AppSpec("dummy", "Web browser", (sys.executable, str(script), str(profile)),
                        (profile,)),)
    # idle: the warning shows after 3 s without a touch and leaves 5 s to tap "I'm here", so a
    # loaded machine's slow frame cannot end the session before the driver's tap lands
    return KioskConfig(idle_seconds=8 if SCENARIO == "idle" else 0, idle_warning_seconds=5,
                       receipt_seconds=2 if SCENARIO == "idle" else 60, poll_seconds=0.3,
                       retry_seconds=1, state_dir=OUT / "state", apps=apps,
                       speak_on_arrival=SCENARIO == "voice_arrival",
                       ask_profile=SCENARIO == "profile",
                       recorded_voice_dir=OUT / "recorded-voice")


# agent.toml keys of a scenario's agent over the test config's (desktop_driver: [uplink])
agent_config: dict[str, Any] = {}


def main() -> int:
    agent = AgentThread(OUT / "agent-data", **agent_config)
    client = StationClient(agent.url, "s1", TOKENS["s1"], timeout=2.0)
    app = KioskApp(client, kiosk_config(), station="s1", lang="fr",
                   trace_path=OUT / "trace.jsonl")
    result: dict[str, Any] = {"scenario": SCENARIO, "ok": False}

    def scenario() -> None:
        d = Driver(app)
        try:
            d.until("window", lambda: EventLoop.window is not None and app.screen != "")
            SCENARIOS[SCENARIO](d, agent)
            result["ok"] = True
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["traceback"] = traceback.format_exc()
            with_shot = OUT / "screens" / f"FAILED-{SCENARIO}.png"
            with contextlib.suppress(BaseException):
                d.ui(lambda: app.snapshot(with_shot))
        finally:
            def stop() -> None:
                app.allow_close = True
                app.stop()
            Clock.schedule_once(lambda _dt: stop(), 0)

    app.bind(on_start=lambda *_: threading.Thread(target=scenario, daemon=True).start())
    app.run()
    agent.close()
    (OUT / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    if not result["ok"]:
        print(result.get("traceback", ""), file=sys.stderr)
        print(f"FAILED {SCENARIO}: {result.get('error')}", file=sys.stderr)
        return 1
    print(f"ok {SCENARIO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
