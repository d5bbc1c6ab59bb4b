"""`cac-agent` as the installed command (issue 23): --help and --version on every command, a
bad argument and a bad config give one line, no traceback, a non-zero status; `quote` gives
hand-computed fees for a local wall-clock --start (CONTRACT §1, §3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent import __version__

BIN = Path(sys.executable).parent / "cac-agent"
COMMANDS = ([], ["quote"], ["add-operator"], ["check-config"])
REQUIRED = {"quote": ["--minutes", "15"],
            "add-operator": ["--name", "amina", "--role", "operator", "--password-stdin"]}

# the demo tariff of scripts/run.sh: 15-minute blocks, 2.00 MAD by day, 1.00 MAD from 20:00
# to 08:00, at least one block, 60 s of grace, students 50 % off; Casablanca is UTC+1 in June
CONFIG = """\
cac_id = "demo-cac-001"
data_dir = "{data}"
timezone = "Africa/Casablanca"
[mqtt]
host = "127.0.0.1"
port = 1883
[http]
host = "127.0.0.1"
port = 8081
[[stations]]
id = "s1"
token = "0123456789abcdef0123456789abcdef"
[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 60
[[tariff.bands]]
from = "20:00"
to = "08:00"
block_price = 100
[tariff.concessions]
student = 50
"""


def agent(*args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          input=stdin, timeout=60, check=False)


def one_line_error(r: subprocess.CompletedProcess[str], needle: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cac-agent"), lines
    assert needle in lines[0], lines
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    return path


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "run")
def test_help_and_version(cmd: list[str]) -> None:
    r = agent(*cmd, "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: cac-agent"), r.stderr
    assert "--config" in r.stdout
    r = agent(*cmd, "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cac-agent {__version__}"


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "run")
def test_a_bad_argument_is_one_line(cmd: list[str], config: Path) -> None:
    required = REQUIRED.get(cmd[0], []) if cmd else []
    one_line_error(agent(*cmd, "--config", config, *required, "--no-such-flag"),
                   "--no-such-flag")


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "run")
def test_a_bad_config_is_one_line(cmd: list[str], tmp_path: Path) -> None:
    args = REQUIRED.get(cmd[0], []) if cmd else []
    one_line_error(agent(*cmd, "--config", tmp_path / "missing.toml", *args), "not found")
    bad = tmp_path / "bad.toml"
    bad.write_text("cac_id = [\n")
    one_line_error(agent(*cmd, "--config", bad, *args, stdin="long-enough-pw\n"),
                   "not valid TOML")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(CONFIG.format(data=tmp_path / "d").replace("block_minutes = 15",
                                                                "block_minutes = 0"))
    one_line_error(agent(*cmd, "--config", wrong, *args, stdin="long-enough-pw\n"),
                   "block_minutes")
    assert not (tmp_path / "d").exists()  # nothing was written for a refused config


@pytest.mark.parametrize(("minutes", "start", "category", "fee"), [
    # 19:50 local: block 0 by day (200), block 1 at 20:05 by night (100). Read as UTC,
    # 19:50Z would be 20:50 local and both blocks night (200).
    (20, "2026-06-10T19:50", None, 300),
    # 07:40 local: 07:40 and 07:55 by night, 08:10 by day. As UTC (08:40 local): 600.
    (45, "2026-06-10T07:40", None, 400),
    (45, "2026-06-10T07:40", "student", 200),  # floor(400 * 50 / 100)
    (0, "2026-06-10T12:00", None, 0),  # under the grace period
    (1, "2026-06-10T12:00", None, 200),  # 60 s is not under 60 s of grace: one block
    (15, "2026-06-10T12:00", None, 200),  # exactly one block
    (16, "2026-06-10T12:00", None, 400),  # a started block is a whole block
    (15, "2026-06-10T23:59", "student", 50),
])
def test_quote_hand_computed(config: Path, minutes: int, start: str, category: str | None,
                             fee: int) -> None:
    args = ["quote", "--config", config, "--minutes", str(minutes), "--start", start]
    if category:
        args += ["--category", category]
    r = agent(*args)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"minutes": minutes, "fee": fee, "currency": "MAD"}


def test_quote_refuses_bad_values(config: Path) -> None:
    one_line_error(agent("quote", "--config", config, "--minutes", "15", "--start",
                         "2026-06-10"), "YYYY-MM-DDTHH:MM")
    one_line_error(agent("quote", "--config", config, "--minutes", "-1"), "--minutes")
    one_line_error(agent("quote", "--config", config, "--minutes", "15", "--category",
                         "pilot"), "pilot")


def test_check_config_and_add_operator(config: Path, tmp_path: Path) -> None:
    r = agent("check-config", "--config", config)
    assert r.returncode == 0 and "ok (demo-cac-001, 1 stations)" in r.stdout
    r = agent("add-operator", "--config", config, "--name", "amina", "--role", "manager",
              "--password-stdin", stdin="long-enough-pw\n")
    assert r.returncode == 0, r.stderr
    assert "operator amina (manager) saved" in r.stdout
    assert (tmp_path / "data").is_dir()
