"""The commands that are not built yet (CONTRACT §1): --help, --version, a clear non-zero exit.

Runs the console scripts installed in the venv that runs pytest (scripts/setup.sh installs them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

# command, a valid invocation, the issue that builds it
STUBS = [
    ("cac-kiosk", ["--agent", "http://127.0.0.1:8081", "--station", "s1", "--token", "t" * 32],
     4),
    ("cac-provision", ["init-hub", "--dir", "hubdir"], 8),
    ("cac-provision", ["add-cac", "--dir", "hubdir", "--cac-id", "demo-cac-001"], 8),
    ("cac-provision", ["revoke-cac", "--dir", "hubdir", "--cac-id", "demo-cac-001"], 8),
]


def run(cmd: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / cmd
    if not exe.exists():
        pytest.fail(f"{exe} is not installed: run scripts/setup.sh (pip install -e '.[test]')",
                    pytrace=False)
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30,
                          check=False, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("cmd", ["cac-kiosk", "cac-hub", "cac-provision"])
def test_version(cmd: str) -> None:
    r = run(cmd, "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{cmd} 0.1.0"


@pytest.mark.parametrize("cmd", ["cac-kiosk", "cac-hub", "cac-provision"])
def test_help(cmd: str) -> None:
    r = run(cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: {cmd}")
    assert "--version" in r.stdout


@pytest.mark.parametrize(("cmd", "args", "issue"), STUBS)
def test_not_built_yet(cmd: str, args: list[str], issue: int, tmp_path: Path) -> None:
    r = subprocess.run([str(BIN / cmd), *args], capture_output=True, text=True, timeout=30,
                       check=False, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"{cmd}: not built yet (see issue {issue})"
    assert r.stdout == ""
    assert list(tmp_path.iterdir()) == [], "a stub must not write anything"


@pytest.mark.parametrize(
    ("cmd", "args", "needle"),
    [
        ("cac-hub", [], "--config"),
        ("cac-kiosk", ["--agent", "ftp://x", "--station", "s1", "--token", "t"], "--agent"),
        ("cac-kiosk", ["--agent", "http://x", "--station", "s1", "--token", "t", "--lang", "de"],
         "--lang"),
        ("cac-provision", [], "COMMAND"),
        ("cac-provision", ["init-hub", "--dir", "d", "--mqtt-port", "70000"], "--mqtt-port"),
        ("cac-provision", ["add-cac", "--dir", "d", "--cac-id", "Bad_Id"], "--cac-id"),
    ],
)
def test_bad_arguments_give_one_line_error(cmd: str, args: list[str], needle: str) -> None:
    r = run(cmd, *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "error:" in lines[0] and needle in lines[0]
    assert "Traceback" not in r.stderr
