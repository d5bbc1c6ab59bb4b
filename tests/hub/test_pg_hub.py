"""`cac-hub` with ``[store] url`` on a real PostgreSQL, as an installer runs it: usage from
a CAC over a real Mosquitto is stored in PostgreSQL once, acknowledged from its watermark and
served by the API; PostgreSQL down at start is a one-line error and exit 1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from helpers import MosquittoBroker, free_port

from tests.hub.apitoken import add_token_cli, auth
from tests.hub.factories import CAC, session, usage
from tests.hub.fakecac import FakeCac, hub_status
from wire.topics import Kind

EXE = Path(sys.executable).parent / "cac-hub"
START_TIMEOUT = 20.0

HUB_TOML = """
hub_id = "hub-pg"
data_dir = "{data}"
offline_after_seconds = 90
{worker}
[mqtt]
host = "127.0.0.1"
port = {mqtt}

[http]
host = "127.0.0.1"
port = {http}

[store]
url = "{url}"
"""


def write_config(path: Path, url: str, mqtt: int, http: int, worker: str = "") -> Path:
    path.write_text(HUB_TOML.format(data=path.parent / "data", mqtt=mqtt, http=http, url=url,
                                    worker=worker))
    return path


def start_hub(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(EXE), "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def wait_online(broker: MosquittoBroker, status_id: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while hub_status(broker.host, broker.port, status_id).state != "online":
        assert time.monotonic() < deadline, "hub never said online"
        time.sleep(0.1)


def test_one_hub_on_postgresql(tmp_path: Path, mosquitto: MosquittoBroker, pg_url: str
                               ) -> None:
    http = free_port()
    cfg = write_config(tmp_path / "hub.toml", pg_url, mosquitto.port, http)
    token = add_token_cli(cfg, "reader", "viewer")
    proc = start_hub(cfg)
    cac = FakeCac(mosquitto.host, mosquitto.port, CAC)
    try:
        wait_online(mosquitto, "hub-pg")
        cac.publish(Kind.USAGE, usage(session(1), session(2), session(4)))
        assert cac.wait_ack(2)[-1] == 2  # 3 is missing: the ack stops at 2
        cac.publish(Kind.USAGE, usage(session(2), session(3)))  # 2 again, and the gap
        cac.wait_ack(4)
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT seq FROM records WHERE cac_id = %s ORDER BY seq",
                                (CAC,)).fetchall()
            wm = conn.execute("SELECT acked_seq FROM watermarks WHERE cac_id = %s",
                              (CAC,)).fetchone()
        assert [r[0] for r in rows] == [1, 2, 3, 4] and wm == (4,)
        req = urllib.request.Request(f"http://127.0.0.1:{http}/api/v1/cacs/{CAC}/sessions",
                                     headers=auth(token))
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            sessions = json.loads(r.read())
        assert [s["id"] for s in sessions] == [f"{CAC}-rec-{i}" for i in (1, 2, 3, 4)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=START_TIMEOUT) == 0
        _, err = proc.communicate()
        assert "Traceback" not in err, err
    finally:
        cac.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_postgresql_down_at_start(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    url = f"postgresql://hub:secret@127.0.0.1:{free_port()}/cachub"  # nobody listens
    cfg = write_config(tmp_path / "hub.toml", url, mosquitto.port, free_port())
    r = subprocess.run([str(EXE), "--config", str(cfg)], capture_output=True, text=True,
                       timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, (r.returncode, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert "cannot connect to the PostgreSQL store 127.0.0.1:" in last, r.stderr
    assert "secret" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(("store", "needle"), [
    ('url = "mysql://x@y/z"', "store.url"),
    ('path = "x"', "store"),
])
def test_bad_store_table(tmp_path: Path, store: str, needle: str) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(HUB_TOML.format(data=tmp_path, mqtt=1883, http=0, url="", worker="")
                 .replace('url = ""', store))
    r = subprocess.run([str(EXE), "--config", str(f), "--check-config"], capture_output=True,
                       text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and needle in r.stderr, r.stderr
