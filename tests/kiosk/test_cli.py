"""`cac-kiosk` as a real process: --screenshot, argument errors, --hash-pin, and a kiosk
killed mid-session that shows the session again with the right time when restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from agent_support import TOKENS  # noqa: E402
from kiosk_agent import AgentThread  # noqa: E402

BIN = Path(sys.executable).parent / "cac-kiosk"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def kiosk(env: dict[str, str], *args: str, timeout: float = 60,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=env, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def events(trace: Path) -> list[dict]:
    if not trace.is_file():
        return []
    return [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]


def test_screenshot_when_the_agent_is_unreachable(kiosk_env: dict[str, str], tmp_path: Path,
                                                 artifacts: Path) -> None:
    shot = artifacts / "cli-screenshot-unreachable.png"
    shot.unlink(missing_ok=True)
    trace = tmp_path / "trace.jsonl"
    r = kiosk(kiosk_env, "--agent", "http://127.0.0.1:9", "--station", "s1", "--token", "t",
              "--lang", "ar", "--screenshot", str(shot), "--trace", str(trace))
    assert r.returncode == 0, r.stderr
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 8000
    assert [e["name"] for e in events(trace) if e["event"] == "screen"][-1] == "offline"


def test_screenshot_of_the_welcome_screen(kiosk_env: dict[str, str], tmp_path: Path,
                                          artifacts: Path) -> None:
    agent = AgentThread(tmp_path / "agent")
    try:
        shot = artifacts / "cli-screenshot-welcome.png"
        trace = tmp_path / "trace.jsonl"
        env = {**kiosk_env, "CAC_AGENT_URL": agent.url, "CAC_STATION": "s1",
               "CAC_TOKEN": TOKENS["s1"]}  # the enrolment bundle's kiosk/ID.env names
        r = kiosk(env, "--screenshot", str(shot), "--trace", str(trace), "--lang", "zgh")
    finally:
        agent.close()
    assert r.returncode == 0, r.stderr
    assert shot.read_bytes()[:8] == PNG_MAGIC
    screens = [e for e in events(trace) if e["event"] == "screen"]
    assert screens[-1]["name"] == "welcome" and screens[-1]["lang"] == "zgh"


@pytest.mark.parametrize(("args", "needle"), [
    (["--station", "s1", "--token", "t"], "--agent"),
    (["--agent", "http://x", "--station", "S 1", "--token", "t"], "--station"),
    (["--agent", "http://x", "--station", "s1"], "--token"),
    (["--agent", "http://x", "--station", "s1", "--token", "t", "--config", "missing.toml"],
     "--config"),
])
def test_bad_arguments_give_one_line_error(args: list[str], needle: str,
                                           kiosk_env: dict[str, str]) -> None:
    r = kiosk(kiosk_env, *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_bad_config_names_the_key(kiosk_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text('idle_seconds = "soon"\n')
    r = kiosk(kiosk_env, "--agent", "http://x", "--station", "s1", "--token", "t",
              "--config", str(cfg))
    assert r.returncode == 2 and "idle_seconds: must be an integer" in r.stderr


def test_hash_pin(kiosk_env: dict[str, str]) -> None:
    r = kiosk(kiosk_env, "--hash-pin", stdin="482913\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('exit_pin_hash = "pbkdf2_sha256$') and "482913" not in r.stdout


def wait_for(what: str, cond, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_mid_session_the_restarted_kiosk_shows_the_session_again(
        kiosk_env: dict[str, str], tmp_path: Path) -> None:
    agent = AgentThread(tmp_path / "agent")
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(f'poll_seconds = 0.3\nstate_dir = "{tmp_path / "state"}"\n')
    procs: list[subprocess.Popen[bytes]] = []

    def start(trace: Path) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([str(BIN), "--agent", agent.url, "--station", "s1", "--token",
                              TOKENS["s1"], "--windowed", "--config", str(cfg),
                              "--trace", str(trace)], env=kiosk_env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        procs.append(p)
        return p

    def session_shown(trace: Path, remaining: int):  # type: ignore[no-untyped-def]
        evs = events(trace)
        seen = [e for e in evs if e["event"] == "session_view" and e["remaining"] == remaining]
        shown = [e for e in evs if e["event"] == "screen"]
        return seen and shown and shown[-1]["name"] == "session"

    try:
        agent.call(agent.service.start_session, "s1", 30, None, "amina")
        agent.advance(100)
        t1 = tmp_path / "trace1.jsonl"
        first = start(t1)
        wait_for("the session on screen", lambda: session_shown(t1, 1700))
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        agent.advance(200)  # time goes on at the agent while no kiosk runs
        assert agent.call(agent.service.station_session, "s1")["session"] is not None
        t2 = tmp_path / "trace2.jsonl"
        start(t2)
        wait_for("the session again, 200 s later", lambda: session_shown(t2, 1500))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        agent.close()
