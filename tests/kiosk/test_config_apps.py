"""kiosk/config.py and kiosk/apps.py: strict config, exit PIN hash, app close and wipe."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from kiosk.apps import Launcher, wipe_dir
from kiosk.config import AppSpec, check_pin, hash_pin, load_config, parse_config
from wire.config_check import ConfigError


def alive(pid: int) -> bool:
    """Running (a killed child that no one has reaped yet is a zombie: not running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_config_is_strict(tmp_path: Path) -> None:
    cfg = parse_config({"idle_seconds": 60, "apps": [
        {"id": "browser", "name": "Web browser", "command": ["chromium"],
         "wipe": [str(tmp_path / "profile")]}]})
    assert cfg.idle_seconds == 60 and cfg.apps[0].wipe == (tmp_path / "profile",)
    with pytest.raises(ConfigError, match="idle_secs: unknown key"):
        parse_config({"idle_secs": 5})
    with pytest.raises(ConfigError, match=r"apps\[0\].wipe\[0\]"):
        parse_config({"apps": [{"id": "b", "name": "B", "command": ["x"], "wipe": ["/"]}]})
    with pytest.raises(ConfigError, match=r"apps\[0\].wipe\[0\]"):
        parse_config({"apps": [{"id": "b", "name": "B", "command": ["x"],
                                "wipe": [str(Path.home())]}]})
    with pytest.raises(ConfigError, match="exit_pin_hash"):
        parse_config({"exit_pin_hash": "1234"})
    with pytest.raises(ConfigError, match=r"apps\[0\].command"):
        parse_config({"apps": [{"id": "b", "name": "B", "command": []}]})
    bad = tmp_path / "k.toml"
    bad.write_text("idle_seconds = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_pin_hash() -> None:
    h = hash_pin("4711", iterations=1000)
    assert "4711" not in h
    assert check_pin("4711", h) and not check_pin("4712", h) and not check_pin("4711", None)
    with pytest.raises(ValueError, match="4 to 12 digits"):
        hash_pin("12")


def test_wipe_refuses_dangerous_folders() -> None:
    for d in (Path("/"), Path.home(), Path("/home"), Path("relative")):
        with pytest.raises(ValueError, match="refusing"):
            wipe_dir(d)


def test_apps_are_killed_with_their_children_and_folders_wiped(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    downloads = tmp_path / "downloads"
    script = tmp_path / "app.py"
    script.write_text(
        "import os, subprocess, sys, time, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "(p / 'sub').mkdir(parents=True, exist_ok=True)\n"
        "(p / 'sub' / 'cookies').write_text('secret')\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "(p / 'pids').write_text(f'{os.getpid()} {c.pid}')\n"
        "time.sleep(300)\n")
    (downloads).mkdir()
    (downloads / "cv.pdf").write_text("a citizen's CV")
    launcher = Launcher((AppSpec("dummy", "Dummy", (sys.executable, str(script), str(profile)),
                                 (profile, downloads)),))
    launcher.launch("dummy")
    deadline = time.monotonic() + 10
    while not (profile / "pids").is_file() or len((profile / "pids").read_text().split()) < 2:
        assert time.monotonic() < deadline, "the dummy app did not start"
        time.sleep(0.05)
    pids = [int(x) for x in (profile / "pids").read_text().split()]
    assert launcher.any_running()
    launcher.end_of_session()
    deadline = time.monotonic() + 5  # SIGKILL is delivered asynchronously
    while [pid for pid in pids if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)], "an app process survived the session"
    assert list(profile.iterdir()) == [] and list(downloads.iterdir()) == []
    assert not launcher.any_running()


def test_ask_profile_is_on_by_default_and_can_be_turned_off() -> None:
    """The "help us count" screen after a redeem (CONTRACT §9b) is a kiosk.toml switch."""
    assert parse_config({}).ask_profile is True
    assert parse_config({"ask_profile": False}).ask_profile is False
    with pytest.raises(ConfigError, match="ask_profile"):
        parse_config({"ask_profile": "no"})
