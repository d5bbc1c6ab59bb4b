"""`cac-hub` with ``[store] url`` on a real PostgreSQL, as an installer runs it: usage from
a CAC over a real Mosquitto is stored in PostgreSQL once, acknowledged from its watermark and
served by the API; PostgreSQL down at start is a one-line error and exit 1."""

from __future__ import annotations

import contextlib
import http.cookiejar as http_cookies
import json
import queue
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
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
    """``cac-hub --config`` with its output in hub.log beside the config."""
    with (cfg.parent / "hub.log").open("a") as log:
        return subprocess.Popen([str(EXE), "--config", str(cfg)], stdout=log,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)


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
        err = (tmp_path / "hub.log").read_text()
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


def metric(http: int, token: str, name: str) -> float | None:
    req = urllib.request.Request(f"http://127.0.0.1:{http}/metrics", headers=auth(token))
    try:
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check`` until true; returns the seconds it took."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - t0


def publish_until_acked(cac: FakeCac, payload: bytes, seq: int, timeout: float = 40.0
                        ) -> None:
    """As an agent does: send again what is not acknowledged (a dead worker's share)."""
    deadline = time.monotonic() + timeout
    while True:
        cac.publish(Kind.USAGE, payload)
        try:
            cac.wait_ack(seq, timeout=3.0)
            return
        except AssertionError:
            assert time.monotonic() < deadline, f"seq {seq} never acknowledged"


@pytest.mark.slow
def test_two_workers_kill_one_the_lease_moves(tmp_path: Path, mosquitto: MosquittoBroker,
                                              pg_url: str) -> None:
    """Two cac-hub workers on one PostgreSQL with shared usage: the first holds the upkeep
    lease; kill -9 it: the other takes the lease within 30 s, usage keeps being stored once."""
    procs: list[subprocess.Popen[str]] = []
    ports, tokens = [], []
    cac = FakeCac(mosquitto.host, mosquitto.port, CAC)
    try:
        for w in ("w1", "w2"):
            d = tmp_path / w
            d.mkdir()
            ports.append(free_port())
            cfg = write_config(d / "hub.toml", pg_url, mosquitto.port, ports[-1],
                               worker=f'worker_id = "{w}"\nshared_subscription = true\n')
            tokens.append(add_token_cli(cfg, f"reader-{w}", "viewer"))  # one shared table
            procs.append(start_hub(cfg))
            wait_online(mosquitto, f"hub-pg-{w}")
            if w == "w1":
                wait_for("w1 takes the lease",
                         lambda: metric(ports[0], tokens[0], "cac_hub_upkeep_lease") == 1, 20)
        publish_until_acked(cac, usage(*[session(i) for i in range(1, 11)]), 10)
        assert metric(ports[1], tokens[1], "cac_hub_upkeep_lease") == 0
        assert metric(ports[0], tokens[0], "cac_hub_upkeep_lease") == 1
        procs[0].kill()  # kill -9 the lease holder
        procs[0].wait(10)
        took = wait_for("w2 takes the lease over",
                        lambda: metric(ports[1], tokens[1], "cac_hub_upkeep_lease") == 1, 30)
        print(f"lease handover after kill -9: {took:.1f} s")
        assert "upkeep lease taken" in (tmp_path / "w2" / "hub.log").read_text()
        publish_until_acked(cac, usage(*[session(i) for i in range(5, 21)]), 20)
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT seq, COUNT(*) FROM records WHERE cac_id = %s "
                                "GROUP BY seq ORDER BY seq", (CAC,)).fetchall()
        assert rows == [(i, 1) for i in range(1, 21)]
    finally:
        cac.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_postgresql_restarted_during_a_burst(tmp_path: Path, mosquitto: MosquittoBroker
                                             ) -> None:
    """PostgreSQL goes down in the middle of a burst and comes back: the hub stops acking
    (nothing stored is lost, nothing unstored is acked), then resumes; the agent's re-sends
    end with every record once and the watermark at the top."""
    from pgserver import PgServer

    server = PgServer.create()
    url = server.new_database()
    http = free_port()
    cfg = write_config(tmp_path / "hub.toml", url, mosquitto.port, http)
    subprocess.run([str(EXE), "add-user", "--config", str(cfg), "--name", "tech", "--role",
                    "viewer", "--password-stdin"], input="tech-pass-123\n", text=True,
                   check=True, capture_output=True, timeout=60)
    proc = start_hub(cfg)
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http_cookies.CookieJar()))

    def fleet_page() -> str:
        with browser.open(f"http://127.0.0.1:{http}/", timeout=10) as r:
            return str(r.read().decode())

    cac = FakeCac(mosquitto.host, mosquitto.port, CAC)
    n, batch = 200, 10
    try:
        wait_online(mosquitto, "hub-pg")
        browser.open(f"http://127.0.0.1:{http}/login", data=urllib.parse.urlencode(
            {"name": "tech", "password": "tech-pass-123", "next": "/"}).encode(),
            timeout=10).close()
        assert 'id="who"' in fleet_page() and 'id="store-down"' not in fleet_page()
        for lo in range(1, n + 1, batch):
            cac.publish(Kind.USAGE, usage(*[session(q) for q in range(lo, lo + batch)]))
            if lo == n // 2 + 1:
                server.stop()
                stopped_at = max(cac.drain_acks(), default=0)
        acked_while_down = max(cac.drain_acks(), default=0)
        wait_for("the dashboard saying the store is down",
                 lambda: 'id="store-down"' in fleet_page(), 20)
        server.start()
        publish_until_acked_from(cac, n, batch, timeout=60)
        with psycopg.connect(url) as conn:
            counts = conn.execute("SELECT COUNT(*), COUNT(DISTINCT seq) FROM records "
                                  "WHERE cac_id = %s", (CAC,)).fetchone()
        assert counts == (n, n)
        assert 'id="store-down"' not in fleet_page()  # stored again: the notice is gone
        assert acked_while_down <= n // 2 + batch, (stopped_at, acked_while_down)
        log = (tmp_path / "hub.log").read_text()
        assert "not stored, not acknowledged" in log
    finally:
        cac.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.destroy()


def publish_until_acked_from(cac: FakeCac, n: int, batch: int, timeout: float) -> None:
    """As an agent: re-send everything above the last ack until the ack says ``n``."""
    last = 0
    deadline = time.monotonic() + timeout
    while last < n:
        assert time.monotonic() < deadline, f"acks stopped at {last}"
        for lo in range(last + 1, n + 1, batch):
            cac.publish(Kind.USAGE, usage(*[session(q)
                                            for q in range(lo, min(lo + batch, n + 1))]))
        round_end = time.monotonic() + 2.0  # the agent's re-send interval, shortened
        while last < n and (left := round_end - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                last = max(last, cac.next_ack(timeout=left))
