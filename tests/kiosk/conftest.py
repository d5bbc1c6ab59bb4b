"""Kiosk tests: a real X display (Xvfb) for the real Kivy window, artifacts in one folder.

`x_display` gives the DISPLAY to use: the current one, or an Xvfb this fixture starts.
Screenshots and traces go under test-artifacts/kiosk/ (printed at the end of the run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "kiosk"
_used = False


@pytest.fixture(scope="session")
def x_display() -> Iterator[str]:
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if shutil.which("Xvfb") is None:
        pytest.fail("the kiosk tests need Xvfb (apt-get install xvfb)", pytrace=False)
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        num = f.readline().strip()
    if not num:
        proc.kill()
        pytest.fail("Xvfb did not start", pytrace=False)
    try:
        yield f":{num}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    global _used
    _used = True
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def kiosk_env(x_display: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a kiosk process: the X display and a HOME of its own in tmp_path
    (no KIVY_HOME or XDG_STATE_HOME preset: the kiosk makes its dirs as on a new account)."""
    display, home = x_display, tmp_path / "kiosk-home"
    home.mkdir()
    env = {**os.environ, "DISPLAY": display, "HOME": str(home)}
    for name in ("KIVY_HOME", "XDG_STATE_HOME", "STATE_DIRECTORY", "KIVY_NO_FILELOG"):
        env.pop(name, None)
    env.pop("CAC_AGENT_URL", None)
    env.pop("CAC_STATION", None)
    env.pop("CAC_TOKEN", None)
    return env


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _used:
        terminalreporter.write_line(f"kiosk screenshots and traces: {ARTIFACTS}/")
