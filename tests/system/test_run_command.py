"""The README's run command, run as a new user would run it (issue 13): `./scripts/run.sh` in
a pseudo-terminal, from a fresh clone, with an empty HOME, no KIVY_HOME and no XDG
variables, under a display. Every address it prints must answer, the kiosk must be alive
with its window on the display, and Ctrl-C must stop everything it started within 30 s.

Slow (a fresh clone installs its own .venv): `./scripts/test.sh -m slow
tests/system/test_run_command.py`; `.ci/run` runs it. Writes test-artifacts/system/:
run-sh-output.txt (what the terminal showed), run-sh-display.png (the X display), and
run-sh-report.json (summary addresses, their statuses, the time to stop after Ctrl-C).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cups_support import make_pdf
from xdisplay import Xvfb, screenshot, top_windows

pytestmark = [pytest.mark.slow, pytest.mark.system]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "system"
SUMMARY_TIMEOUT = 900.0  # a fresh clone creates .venv and pip-installs the project first
STOP_TIMEOUT = 30.0
URL_RE = re.compile(r"http://127\.0\.0\.1:\d+[^\s)]*")
PID_RE = re.compile(r"\(pid (\d+)")


class Terminal:
    """A command on its own pseudo-terminal, as in a terminal window: Ctrl-C typed there
    reaches the foreground process group (a background job would have SIGINT ignored)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, b"\x32\x00\xc8\x00\x00\x00\x00\x00")  # 50x200

        def controlling_tty() -> None:  # in the child, after setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=cwd, start_new_session=True,
                                     preexec_fn=controlling_tty)  # noqa: PLW1509
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every process on the terminal has gone
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk

    def text(self) -> str:
        with self._lock:
            return self.output.decode(errors="replace").replace("\r\n", "\n")

    def type_ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.master)


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is gone for our purpose
        if (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z":
            return False
    return True


def api(method: str, url: str, body: object = None, token: str | None = None) -> object:
    req = urllib.request.Request(url, method=method, data=None if body is None
                                 else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=20) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


def print_round_trip(clone: Path, block: str, host: str, work: Path) -> dict[str, object]:
    """A citizen at s1 prints 3 pages to run.sh's held queue; the demo operator sees the job
    with its pages at the agent's API and releases it: 3 x print-bw, and cups-pdf writes it."""
    console = re.search(r"console\s+(http://127\.0\.0\.1:\d+)/console/", block)
    assert console, block
    agent = console.group(1)
    password = (clone / "run-data" / "admin-password").read_text().splitlines()[0]
    token = api("POST", f"{agent}/api/v1/login", {"name": "admin", "password": password})
    tok = str(token["token"])  # type: ignore[index]
    pdf = make_pdf(work / "three.pdf", 3)
    t0 = time.monotonic()
    out = subprocess.run(["lp", "-h", host, "-d", "s1", str(pdf)], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    job = out.split("request id is s1-", 1)[1].split()[0]
    deadline = time.monotonic() + 30
    while not (jobs := [j for j in api("GET", f"{agent}/api/v1/print/jobs", token=tok)  # type: ignore[union-attr]
                        if j["id"] == job]):
        assert time.monotonic() < deadline, "the job never showed at the counter"
        time.sleep(0.3)
    listed = time.monotonic() - t0
    assert [(j["station"], j["pages"]) for j in jobs] == [("s1", 3)]
    sale = api("POST", f"{agent}/api/v1/print/jobs/{job}/release", {}, token=tok)
    assert (sale["item"], sale["quantity"]) == ("print-bw", 3), sale  # type: ignore[index]
    left = api("GET", f"{agent}/api/v1/print/jobs", token=tok)
    assert all(j["id"] != job for j in left), left  # type: ignore[union-attr]
    return {"job": job, "listed_s": round(listed, 2), "sale": sale}


def status_of(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url, method="GET")
    if token:
        req.add_header("Authorization", f"Bearer {token}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kw: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def summary_block(text: str) -> str | None:
    m = re.search(r"=+ CAC demo\n(.*?)\n=+\n", text, re.DOTALL)
    return m.group(1) if m else None


@pytest.fixture
def fresh_clone() -> Iterator[Path]:
    """`git clone` of this repository's HEAD under a 0755 dir in /tmp, like a user's."""
    base = Path(tempfile.mkdtemp(prefix="cac-run-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(base / "cac")], check=True,
                       timeout=120)
        (base / "home").mkdir()
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def user_env(home: Path, display: str) -> dict[str, str]:
    """A new account's login environment: HOME, PATH (without this test run's .venv), a
    terminal, the display. No KIVY_HOME, no XDG_* variables, nothing of the test harness."""
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":")
                    if p and p != venv_bin)
    return {"HOME": str(home), "PATH": path, "TERM": "xterm", "LANG": "C.UTF-8",
            "DISPLAY": display, "USER": os.environ.get("USER", "root")}


def test_run_sh_from_a_fresh_clone_in_a_terminal(fresh_clone: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {}
    xvfb = Xvfb()
    clone, home = fresh_clone / "cac", fresh_clone / "home"
    term = Terminal(["bash", str(clone / "scripts" / "run.sh")], user_env(home, xvfb.display),
                    clone)
    started: set[int] = set()
    try:
        deadline = time.monotonic() + SUMMARY_TIMEOUT
        while (block := summary_block(term.text())) is None:
            assert term.proc.poll() is None, f"run.sh exited early:\n{term.text()[-4000:]}"
            assert time.monotonic() < deadline, f"no summary:\n{term.text()[-4000:]}"
            time.sleep(0.5)
        report["summary"] = block
        print(block)

        # with CUPS and cups-pdf installed (setup.sh does it as root), s1's held queue answers
        if (os.geteuid() == 0 and shutil.which("cupsd") and shutil.which("lpstat")
                and Path("/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd").exists()):
            m = re.search(r"held queue on (127\.0\.0\.1:\d+)", block)
            assert m, block
            q = subprocess.run(["lpstat", "-h", m.group(1), "-p", "s1"], capture_output=True,
                               text=True, timeout=20, check=False)
            assert q.returncode == 0 and "s1" in q.stdout, (q.stdout, q.stderr)
            report["print_queue"] = m.group(1)
            report["print"] = print_round_trip(clone, block, m.group(1), fresh_clone)

        # every address it printed answers: open, a redirect to a login, or "log in first"
        statuses = {url: status_of(url) for url in sorted(set(URL_RE.findall(block)))}
        report["statuses"] = statuses
        assert len(statuses) >= 5, block
        bad = {u: s for u, s in statuses.items() if not (200 <= s < 400 or s == 401)}
        assert not bad, bad
        # the hub's API and metrics refuse anyone without a token, answer the printed one
        found = re.search(r"API token (\S+) \(role viewer", block)
        assert found, block
        hub_api = [u for u in statuses if "/api/v1/cacs" in u or u.endswith("/metrics")]
        assert len(hub_api) >= 2, block
        with_token = {u: (statuses[u], status_of(u, found.group(1))) for u in hub_api}
        report["hub_api_statuses"] = with_token
        assert all(v == (401, 200) for v in with_token.values()), with_token

        # the kiosk of s1 runs, and its window is on the display
        kiosk_line = next(line for line in block.splitlines() if line.lstrip().startswith(
            "kiosk"))
        assert "not running" not in kiosk_line, term.text()[-4000:]
        kiosk_pid = int(PID_RE.search(kiosk_line).group(1))  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while not (windows := [w for w in top_windows(xvfb.display)
                               if w.width >= 640 and w.height >= 400]):
            assert alive(kiosk_pid), (home / "x", term.text()[-4000:])
            assert time.monotonic() < deadline, "no kiosk window on the display"
            time.sleep(0.5)
        time.sleep(3)  # the first screen is drawn
        assert alive(kiosk_pid), "the kiosk died after its window appeared"
        shot = ARTIFACTS / "run-sh-display.png"
        colours = screenshot(xvfb.display, shot)
        report["screenshot"] = str(shot)
        report["windows"] = [w.__dict__ for w in windows]
        assert colours > 20, f"the display looks blank ({colours} colours): {shot}"
        # full screen even with no window manager (Xvfb is 1280x800)
        assert any((w.width, w.height) == (1280, 800) for w in windows), windows
        assert not list(home.glob(".kivy")), "Kivy wrote to ~/.kivy"

        printed = {int(p) for p in PID_RE.findall(block)}
        started = descendants(term.proc.pid)
        assert printed <= started, (printed, started)

        # Ctrl-C in the terminal stops everything run.sh started
        t0 = time.monotonic()
        term.type_ctrl_c()
        while any(alive(p) for p in started) or term.proc.poll() is None:
            assert time.monotonic() - t0 < STOP_TIMEOUT, (
                f"still running {STOP_TIMEOUT} s after Ctrl-C: "
                f"{sorted(p for p in started if alive(p))}\n{term.text()[-3000:]}")
            time.sleep(0.1)
        report["stop_seconds"] = round(time.monotonic() - t0, 2)
        report["processes_stopped"] = len(started)
        after = term.text().split("^C", 1)[-1]
        assert "did not stop on SIGTERM" not in after, after
        # stopped in order (kiosk, simulator, agent, hub, broker): the broker outlives the
        # agent, which says goodbye to it instead of losing its connection
        order = [m.group(1) for m in re.finditer(r"run: stopping (\w+)", after)]
        # with CUPS installed the demo print queue's private cupsd goes last (issue 17)
        cups = ["cups"] if "station s1 prints to a held queue" in term.text() else []
        assert order == ["kiosk", "simulator", "agent", "hub", "mosquitto", *cups], after
        assert "connection lost" not in after, after
    finally:
        (ARTIFACTS / "run-sh-output.txt").write_text(term.text())
        (ARTIFACTS / "run-sh-report.json").write_text(json.dumps(report, indent=2))
        for p in started | descendants(term.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        if term.proc.poll() is None:
            term.proc.kill()
        term.proc.wait(10)
        term.close()
        xvfb.close()
    print(json.dumps({k: v for k, v in report.items() if k != "summary"}, indent=2))
