"""The real kiosk app under X, driven by simulated touches against a real agent API
(tests/kiosk/driver.py runs one scenario per process: one Kivy App per process)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("driver.py")
SCENARIO_TIMEOUT = 120


def run_scenario(name: str, env: dict[str, str], artifacts: Path) -> dict:
    out = artifacts / name
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([sys.executable, str(DRIVER), name, str(out)], capture_output=True,
                       text=True, timeout=SCENARIO_TIMEOUT, check=False,
                       env=env, stdin=subprocess.DEVNULL)
    result_file = out / "result.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    assert r.returncode == 0 and result.get("ok"), (
        f"scenario {name} failed: {result.get('error')}\n{r.stderr[-4000:]}")
    return result


@pytest.mark.parametrize("scenario", ["flow", "wrong", "down", "control", "pause", "idle",
                                      "apps", "portal", "pdf"])
def test_scenario(scenario: str, kiosk_env: dict[str, str], artifacts: Path) -> None:
    """flow: language, good voucher, 5/1-minute warnings, end, receipt; wrong: bad codes and
    the rate limit; down: agent down and back; control: lock, unlock, message, fee so far;
    pause: paused at the counter, resumed, moved; idle: idle end; apps: app closed and
    wiped; portal: no content endpoint yet."""
    run_scenario(scenario, kiosk_env, artifacts)


def test_every_screen_in_every_language(kiosk_env: dict[str, str], artifacts: Path) -> None:
    run_scenario("screens", kiosk_env, artifacts)
    shots = sorted((artifacts / "screens" / "screens").glob("*.png"))
    names = {p.stem for p in shots}
    for lang in ("ar", "fr", "zgh", "en"):
        for screen in ("welcome", "voucher", "operator", "session", "session-warning",
                       "session-confirm_end", "session-idle", "session-message", "receipt",
                       "session-resumed", "profile", "paused", "receipt-moved",
                       "locked", "offline", "pin", "portal", "portal-search", "portal_item",
                       "welcome-larger-text"):
            assert f"{lang}-{screen}" in names, f"no screenshot {lang}-{screen}"
    # a drawn screen, not an empty window: PNGs of real content are several KB
    assert all(p.stat().st_size > 8000 for p in shots), [p.name for p in shots
                                                         if p.stat().st_size <= 8000]


def test_help_us_count_after_a_voucher(kiosk_env: dict[str, str], artifacts: Path) -> None:
    """The optional anonymous profile screen (CONTRACT §9b) on the real kiosk against a real
    agent API: fr answers reach the agent's session, ar mirrored and skipped. Screenshots
    test-artifacts/kiosk/profile-fr.png and profile-ar.png."""
    run_scenario("profile", kiosk_env, artifacts)
    for lang in ("fr", "ar"):
        shot = artifacts / "profile" / "screens" / f"profile-{lang}.png"
        assert shot.stat().st_size > 8000, shot
        shutil.copy(shot, artifacts / f"profile-{lang}.png")
