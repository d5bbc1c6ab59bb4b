"""`cac-kiosk` on a new account (issue 13): an empty HOME, no KIVY_HOME, no XDG variables,
exactly what a new user or the README's run command gives it; and under its systemd unit's
StateDirectory=. The fixtures of the other kiosk tests preset KIVY_HOME and XDG_STATE_HOME,
which hid a crash at start-up: these tests give the kiosk nothing a real install lacks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from agent_support import TOKENS  # noqa: E402
from kiosk_agent import AgentThread  # noqa: E402

BIN = Path(sys.executable).parent / "cac-kiosk"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START_TIMEOUT = 60.0


def bare_env(home: Path, display: str, **extra: str) -> dict[str, str]:
    """What a login shell of a new account has, and nothing more."""
    return {"HOME": str(home), "DISPLAY": display, "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8", **extra}


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def screens(trace: Path) -> list[str]:
    if not trace.is_file():
        return []
    return [e["name"] for e in map(json.loads, trace.read_text().splitlines())
            if e.get("event") == "screen"]


def test_a_new_account_runs_the_kiosk(x_display: str, tmp_path: Path) -> None:
    home = tmp_path / "new-user"
    home.mkdir()  # empty: no ~/.local, no ~/.kivy
    agent = AgentThread(tmp_path / "agent")
    trace = tmp_path / "trace.jsonl"
    proc = subprocess.Popen(
        [str(BIN), "--agent", agent.url, "--station", "s1", "--token", TOKENS["s1"],
         "--trace", str(trace)], env=bare_env(home, x_display), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "welcome" not in screens(trace):
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no welcome screen"
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()[0][-3000:]  # still running
        proc.terminate()  # what systemd's stop and run.sh's Ctrl-C send
        t0 = time.monotonic()
        out = proc.communicate(timeout=20)[0]
        assert time.monotonic() - t0 < 10, "SIGTERM did not stop the kiosk promptly"
        assert proc.returncode == 143, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        agent.close()
    assert "Traceback" not in out, out[-3000:]
    state = home / ".local" / "state" / "cac-kiosk"
    for d in (home / ".local", home / ".local" / "state", state, state / "kivy"):
        assert d.is_dir() and mode(d) == 0o700, d


def test_screenshot_with_an_empty_home(x_display: str, tmp_path: Path) -> None:
    home = tmp_path / "new-user"
    home.mkdir()
    shot = tmp_path / "shot.png"
    r = subprocess.run([str(BIN), "--agent", "http://127.0.0.1:9", "--station", "s1",
                        "--token", "t", "--screenshot", str(shot)],
                       env=bare_env(home, x_display), capture_output=True, text=True,
                       timeout=START_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert shot.read_bytes()[:8] == PNG_MAGIC
    assert (home / ".local" / "state" / "cac-kiosk" / "kivy").is_dir()


def test_the_units_state_directory_is_used(x_display: str, tmp_path: Path) -> None:
    """systemd's StateDirectory=cac-kiosk sets STATE_DIRECTORY; HOME is left alone."""
    home, state = tmp_path / "home", tmp_path / "var-lib-cac-kiosk"
    home.mkdir()
    state.mkdir(mode=0o700)
    shot = tmp_path / "shot.png"
    r = subprocess.run([str(BIN), "--agent", "http://127.0.0.1:9", "--station", "s1",
                        "--token", "t", "--screenshot", str(shot)],
                       env=bare_env(home, x_display, STATE_DIRECTORY=str(state)),
                       capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (state / "kivy").is_dir()
    assert list(home.iterdir()) == []


def test_a_state_dir_that_cannot_be_made_is_one_clear_line(x_display: str,
                                                           tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = subprocess.run([str(BIN), "--agent", "http://127.0.0.1:9", "--station", "s1",
                        "--token", "t", "--screenshot", str(tmp_path / "x.png")],
                       env=bare_env(blocker / "home", x_display), capture_output=True,
                       text=True, timeout=START_TIMEOUT, check=False,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create the kiosk's state directory" in lines[0], lines
    assert os.fspath(blocker) in lines[0]
