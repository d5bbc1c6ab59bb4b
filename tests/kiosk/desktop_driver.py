"""The citizen's computer end to end: the real kiosk (Kivy) on an X display with openbox, a
real agent API, real Chromium and real LibreOffice run as the citizen user.

    python tests/kiosk/desktop_driver.py desktop OUTDIR DISPLAY POLICY_DIR DOWNLOAD_URL

Runs as root (it switches to the citizen user itself). Exit status 0 means every check
passed; OUT/result.json has the details and the measured times.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DISPLAY, POLICY_DIR, DOWNLOAD_URL = sys.argv[3], Path(sys.argv[4]), sys.argv[5]
os.environ["DISPLAY"] = DISPLAY
sys.argv = sys.argv[:3]

import driver  # noqa: E402 (configures Kivy from sys.argv)
from cups_support import PrivateCups, cups_available, make_pdf  # noqa: E402
from driver import OUT, Driver, Failed, check  # noqa: E402
from kiosk_agent import AgentThread  # noqa: E402
from xshot import screenshot  # noqa: E402

from kiosk.config import parse_config  # noqa: E402
from kiosk.desktop import SESSION_DIRS, live_pids, uid_of  # noqa: E402

HOME = Path("/var/lib/cac-citizen/home")
APP_TIMEOUT = 60.0
times: dict[str, float] = {}
CUPS: list[PrivateCups] = []  # station s1's held queue, when CUPS is installed here


def x(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False,
                          env={**os.environ, "DISPLAY": DISPLAY}).stdout


def windows() -> list[tuple[str, int, int, int, int, str]]:
    """(id, x, y, w, h, title) of every managed window (wmctrl -l -G)."""
    out = []
    for line in x("wmctrl", "-l", "-G").splitlines():
        parts = line.split(None, 7)
        if len(parts) >= 7:
            title = parts[7] if len(parts) > 7 else ""
            out.append((parts[0], *(int(v) for v in parts[2:6]), title))  # type: ignore[arg-type]
    return out


def wait_window(what: str, pred: Any, timeout: float = APP_TIMEOUT) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in windows():
            if pred(w):
                return w
        time.sleep(0.1)
    raise Failed(f"no {what} window; windows: {windows()}")


def kiosk_window() -> tuple:
    return wait_window("kiosk", lambda w: w[5] == "CAC kiosk", 5)


def until(what: str, cond: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise Failed(f"timed out waiting for {what}")


def keys(wid: str, *names: str) -> None:
    x("xdotool", "windowactivate", "--sync", wid)
    for k in names:
        x("xdotool", "key", "--clearmodifiers", k)
        time.sleep(0.15)


def type_text(wid: str, text: str) -> None:
    x("xdotool", "windowactivate", "--sync", wid)
    x("xdotool", "type", "--delay", "20", text)


def go_to(wid: str, url: str) -> None:
    keys(wid, "ctrl+l")
    type_text(wid, url)
    keys(wid, "Return")


def text_at_top_left() -> bool:
    """Dark pixels where a text file's first lines would be (x 8..400, below the toolbar):
    Chromium's "This page is blocked" has nothing there (its icon and text are centred)."""
    from xshot import pixels
    _w, _h, rows = pixels(DISPLAY)
    for row in rows[190:260]:
        band = row[8 * 3:400 * 3]
        if any(band[i] < 100 and band[i + 1] < 100 and band[i + 2] < 100
               for i in range(0, len(band), 3)):
            return True
    return False


def hidden(w: Any) -> bool:
    """The widget or one of its parents is fully transparent."""
    while w is not None:
        if w.opacity == 0:
            return True
        w = w.parent if w.parent is not w else None
    return False


def red_pixels_outside_dialog() -> int:
    """Reddish pixels (the bar's End button, dimmed or not) on the screen outside the
    centred dialog (the kiosk's ModalView: 75 % x 60 %)."""
    from xshot import pixels

    w, h, rows = pixels(DISPLAY)
    n = 0
    for y in range(0, h, 3):
        row = rows[y]
        inside_y = 0.19 * h < y < 0.81 * h
        for x_ in range(0, w, 3):
            if inside_y and 0.12 * w < x_ < 0.88 * w:
                continue
            r, g, b = row[3 * x_], row[3 * x_ + 1], row[3 * x_ + 2]
            if r > 30 and r > 2 * g and r > 2 * b:
                n += 1
    return n


def history_urls() -> list[str]:
    db = HOME / ".config" / "chromium" / "Default" / "History"
    if not db.is_file():
        return []
    copy = OUT / "History.copy"
    copy.write_bytes(db.read_bytes())
    with contextlib.closing(sqlite3.connect(copy)) as c:
        return [r[0] for r in c.execute("SELECT url FROM urls")]


def sc_desktop(d: Driver, agent: AgentThread) -> None:
    uid = uid_of("cac-citizen")
    d.screen("welcome")
    check(not live_pids(uid), "citizen processes before the session")
    agent.call(agent.service.start_session, "s1", 30, None, "amina")
    d.screen("session")
    for app_id in ("browser", "writer", "calc", "files"):
        check(d.find(f"app_{app_id}") is not None, f"no {app_id} button")
    d.shot("session-with-apps")

    # --- the browser
    t0 = time.monotonic()
    d.tap("app_browser")
    chrome = wait_window("Chromium", lambda w: "Chromium" in w[5] and w[4] > 300)
    until("the start page", lambda: any("CAC" in w[5] and "Chromium" in w[5]
                                        for w in windows()))
    times["web_to_browser_s"] = round(time.monotonic() - t0, 2)
    page = (HOME / "start.html").read_text()
    check("Internet indisponible" in page, "the start page does not say the internet is down")
    d.screen("bar")
    time.sleep(1.0)
    k = kiosk_window()
    chrome = wait_window("Chromium", lambda w: "Chromium" in w[5])
    check(k[2] <= 2 and k[4] <= 120, f"the kiosk is not a bar at the top: {k}")
    check(chrome[2] >= k[4] - 2, f"Chromium overlaps the bar: {chrome} vs {k}")
    screenshot(DISPLAY, OUT / "screens" / "bar-over-chromium-fr.png")
    d.ui(lambda: d.app.choose_language("ar"))
    time.sleep(1.0)
    screenshot(DISPLAY, OUT / "screens" / "bar-over-chromium-ar.png")
    d.ui(lambda: d.app.choose_language("fr"))

    # --- "end the session?" from the bar: the dialog alone over a hidden strip (issue 22:
    # the bar's two buttons showed dimmed under it)
    d.tap("bar_end")
    d.until("the end dialog", lambda: d.app.modal_kind == "confirm_end", 10)
    d.until("full screen for the dialog", lambda: d.app.stacking.mode == "full", 10)
    time.sleep(1.0)
    check(kiosk_window()[4] > 400, "the kiosk did not cover the screen for the end dialog")
    for kid in ("bar_back", "bar_end"):
        w = d.find(kid)
        check(w is not None and d.ui(lambda w=w: hidden(w)), f"{kid} shows under the dialog")
    shot = screenshot(DISPLAY, OUT / "screens" / "end-dialog-over-chromium-fr.png")
    check(not red_pixels_outside_dialog(), f"red of the bar's End button under the dialog "
          f"(see {shot})")
    d.tap("end_no")
    d.until("bar again after No", lambda: d.app.stacking.mode == "bar" and all(
        w.opacity == 1 for w in d.app.content.children), 10)

    # a page visited, then a download that lands in the session's Downloads (policy
    # DownloadDirectory)
    go_to(chrome[0], DOWNLOAD_URL.rsplit("/", 1)[0] + "/emploi.html")
    wait_window("the visited page", lambda w: "Offres d'emploi" in w[5], 20)
    go_to(chrome[0], DOWNLOAD_URL)
    until("the download", lambda: (HOME / "Downloads" / "formulaire.pdf").is_file(), 30)
    # devtools refused: F12 and ctrl+shift+i open nothing
    keys(chrome[0], "F12", "ctrl+shift+i")
    time.sleep(2)
    check(not [w for w in windows() if "DevTools" in w[5]], "developer tools opened")
    # file:///etc/passwd is blocked
    go_to(chrome[0], "file:///etc/passwd")
    time.sleep(2)
    shot = screenshot(DISPLAY, OUT / "screens" / "file-etc-passwd.png")
    check(not text_at_top_left(), f"file:///etc/passwd was shown as text (see {shot})")

    # --- the 5-minute warning shows above Chromium
    agent.advance(25 * 60 + 2)
    d.until("the warning", lambda: d.app.modal_kind == "warning", 20)
    time.sleep(1.0)
    k = kiosk_window()
    check(k[4] > 400, f"the kiosk did not cover the screen for the warning: {k}")
    screenshot(DISPLAY, OUT / "screens" / "warning-over-chromium-fr.png")
    d.tap("warning_ok")
    d.until("bar again", lambda: d.app.stacking.mode == "bar", 10)

    # --- Writer: a letter saved in Documents
    d.tap("bar_back")
    d.screen("session")
    d.tap("app_writer")
    writer = wait_window("Writer", lambda w: "LibreOffice" in w[5] or "Sans nom" in w[5]
                         or "Untitled" in w[5])
    time.sleep(3)
    type_text(writer[0], "Lettre de motivation")
    keys(writer[0], "ctrl+shift+s")
    wait_window("Save As dialog", lambda w: w[0] != writer[0] and w[5] != "CAC kiosk"
                and "LibreOffice" not in w[5] and "Chromium" not in w[5], 20)
    time.sleep(1)
    # the dialog has the focus: type the name there (no windowactivate of the document)
    x("xdotool", "key", "ctrl+a")
    x("xdotool", "type", "--delay", "20", str(HOME / "Documents" / "lettre.odt"))
    x("xdotool", "key", "Return")
    until("the saved letter", lambda: (HOME / "Documents" / "lettre.odt").is_file(), 30)
    screenshot(DISPLAY, OUT / "screens" / "bar-over-writer-fr.png")
    if CUPS:
        bar_shows_held_prints(d, agent, CUPS[0])
    times["citizen_processes_in_session"] = len(live_pids(uid))
    # Chromium writes its history in batches: wait until this citizen's pages are in it, so
    # that "the next session has no history" below proves something
    before = until("the browser history", lambda: [u for u in history_urls()
                                                   if "emploi" in u], 40)
    times["history_urls_before_end"] = len(before)

    # --- the end: nothing of this citizen remains
    d.tap("bar_end")
    d.tap("end_yes")
    d.screen("receipt")
    d.event("apps_closed")
    check(not live_pids(uid), f"citizen processes survived: {live_pids(uid)}")
    left = sorted(str(p.relative_to(HOME)) for p in HOME.rglob("*")
                  if p.is_file() and p.name not in ("start.html",
                                                    "registrymodifications.xcu"))
    check(not left, f"files left in the citizen's home: {left[:20]}")
    check(not (HOME / ".config" / "chromium").exists(), "the browser profile survived")
    for sub in SESSION_DIRS:
        check(list((HOME / sub).iterdir()) == [], f"{sub} is not empty")
    d.tap("done")
    d.screen("welcome")

    # --- the next citizen's browser has no history
    agent.call(agent.service.start_session, "s1", 30, None, "amina")
    d.screen("session")
    d.tap("app_browser")
    wait_window("Chromium", lambda w: "Chromium" in w[5])
    time.sleep(3)
    urls = history_urls()
    check(not any("emploi" in u for u in urls),
          f"the next session's browser history has the last citizen's pages: {urls}")
    d.tap("bar_end")
    d.tap("end_yes")
    d.screen("receipt")
    d.until("the second clean-up", lambda: len([e for e in d.app.events
                                                 if e["event"] == "apps_closed"]) >= 2, 30)
    check(not live_pids(uid), "citizen processes survived the second session")
    check(not (HOME / ".config" / "chromium").exists(), "the second browser profile survived")


def bar_shows_held_prints(d: Driver, agent: AgentThread, cups: PrivateCups) -> None:
    """Issue 17: the citizen prints from an app (here `lp` as cac-citizen, as the apps do
    through CUPS): the job waits held at the counter and the bar over the app says so, with
    its pages and price; once the counter releases it, the bar's usual note is back."""
    pdf = make_pdf(cups.dir / "two-pages.pdf", 2)  # cups.dir is 0755: the citizen reads it
    pdf.chmod(0o644)
    t0 = time.monotonic()
    out = subprocess.run(["runuser", "-u", "cac-citizen", "--", "lp", "-h", cups.host,
                          "-d", "s1", str(pdf)], capture_output=True, text=True, timeout=30,
                         check=False)
    check(out.returncode == 0, f"lp as the citizen: {out.stderr}")
    job = out.stdout.split("request id is s1-", 1)[1].split()[0]
    w = d.until("the held print on the bar", lambda: d.find("bar_prints"), 30)
    times["print_to_bar_notice_s"] = round(time.monotonic() - t0, 2)
    text = d.ui(lambda: w.text)
    check("2" in text and "2,00" in text and "comptoir" in text, f"the bar says {text!r}")
    check(d.app.stacking.mode == "bar", "the kiosk left the bar for the print notice")
    time.sleep(0.5)
    screenshot(DISPLAY, OUT / "screens" / "bar-held-print-fr.png")
    agent.call(agent.service.release_print, job, "amina")
    d.until("the bar's usual note after the release",
            lambda: d.find("bar_prints") is None and d.find("bar_time") is not None, 30)


def main() -> int:
    """driver.py's main with this scenario and the [desktop] config."""
    printing: dict[str, Any] = {}
    if cups_available() and os.geteuid() == 0:
        CUPS.append(PrivateCups(("s1",)))
        printing = {"printing": {"cups": CUPS[0].host, "spool_dir": str(CUPS[0].spool)},
                    "catalogue": [{"id": "print-bw", "name": {"fr": "Impression N&B"},
                                   "price": 100, "unit": "page"}]}
    driver.kiosk_config = lambda: parse_config({
        "idle_seconds": 0, "poll_seconds": 0.3, "retry_seconds": 1, "receipt_seconds": 600,
        "state_dir": str(OUT / "state"),
        "desktop": {"policy_dir": str(POLICY_DIR)}})
    # the agent probes a closed port of this machine: "no uplink"; the kiosk asks the agent
    driver.agent_config = {"uplink": {"probe": ["127.0.0.1:9"], "interval_seconds": 1,
                                      "timeout_seconds": 1}, **printing}

    def scenario(d: Driver, agent: AgentThread) -> None:
        try:
            sc_desktop(d, agent)
        except BaseException:
            with contextlib.suppress(BaseException):
                screenshot(DISPLAY, OUT / "screens" / "FAILED-desktop-x.png")
            raise
        finally:
            (OUT / "times.json").write_text(json.dumps(times))
    driver.SCENARIOS["desktop"] = scenario
    try:
        return driver.main()
    finally:
        for cups in CUPS:
            cups.stop()


if __name__ == "__main__":
    sys.exit(main())
