"""`cac-hub` as a process: one-line config errors, a run, and an orderly SIGTERM shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import MosquittoBroker, free_port

from hub import __version__
from tests.hub.apitoken import add_token_cli, auth
from tests.hub.fakecac import hub_status

EXE = Path(sys.executable).parent / "cac-hub"
START_TIMEOUT = 15.0

HUB_TOML = """
hub_id = "hub-cli"
data_dir = "{data}"
offline_after_seconds = 90

[mqtt]
host = "127.0.0.1"
port = {mqtt}

[http]
host = "127.0.0.1"
port = {http}
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    if not EXE.exists():
        pytest.fail(f"{EXE} is not installed (pip install -e .)", pytrace=False)
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=30,
                          check=False, stdin=subprocess.DEVNULL)


def write_config(tmp_path: Path, mqtt: int, http: int, extra: str = "") -> Path:
    f = tmp_path / "hub.toml"
    f.write_text(extra + HUB_TOML.format(data=tmp_path / "data", mqtt=mqtt, http=http))
    return f


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cac-hub {__version__}"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [('colour = "blue"\n', "colour: unknown key"),
     ('worker_id = "Bad Id"\n', "worker_id: must match")],
)
def test_bad_config_is_one_line(tmp_path: Path, extra: str, needle: str) -> None:
    r = run("--config", str(write_config(tmp_path, 1883, 8080, extra)))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("cac-hub: error: bad config") and needle in lines[0]
    assert not (tmp_path / "data").exists(), "a refused config must not touch the data dir"


def test_missing_config_file(tmp_path: Path) -> None:
    r = run("--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr


def test_check_config(tmp_path: Path) -> None:
    r = run("--config", str(write_config(tmp_path, 1883, 8080)), "--check-config")
    assert r.returncode == 0, r.stderr
    assert "ok (hub-cli)" in r.stdout


def test_port_in_use_is_one_line(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    # the broker's own port is certainly taken
    r = run("--config", str(write_config(tmp_path, mosquitto.port, mosquitto.port)))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("cac-hub: error: cannot listen on"), r.stderr
    assert "Traceback" not in r.stderr


def test_runs_and_stops_in_order(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    http = free_port()
    cfg = write_config(tmp_path, mosquitto.port, http)
    proc = subprocess.Popen([str(EXE), "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert f"http://127.0.0.1:{http}/api/v1" in banner, banner
        deadline = time.monotonic() + START_TIMEOUT
        while hub_status(mosquitto.host, mosquitto.port, "hub-cli").state != "online":
            assert time.monotonic() < deadline, "hub never said online"
            time.sleep(0.1)
        cacs = f"http://127.0.0.1:{http}/api/v1/cacs"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(cacs, timeout=5)  # noqa: S310 - loopback test URL
        assert refused.value.code == 401
        refused.value.close()
        token = add_token_cli(cfg, "scraper", "viewer")
        req = urllib.request.Request(cacs, headers=auth(token))
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310
            assert isinstance(json.loads(r.read()), list)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=START_TIMEOUT) == 0
        _, err = proc.communicate()
        assert "Traceback" not in err, err
        assert hub_status(mosquitto.host, mosquitto.port, "hub-cli").state == "offline"
        assert (tmp_path / "data" / "hub.sqlite3").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
