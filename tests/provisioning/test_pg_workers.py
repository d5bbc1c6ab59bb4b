"""Issue 19 on a provisioned system: `cac-provision add-hub-worker --store-url` gives two
workers their own broker identities and one PostgreSQL store; a CAC with its provisioned
credentials sends a burst of usage; kill -9 the worker holding the upkeep lease mid-burst:
the agent's re-sends (what is not acknowledged) end with every record stored once, the
watermark at the top, and the lease on the survivor."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from helpers import free_port

from tests.hub.apitoken import add_token_cli, auth
from tests.hub.factories import session, usage
from tests.provisioning.support import (
    BIN,
    Client,
    Proc,
    ProvisionedBroker,
    init_hub,
    provision,
    read_toml,
    wait_for,
)
from wire.topics import Kind, cac_topic

CAC = "cac-pgworkers-001"
N = 300
BATCH = 10


def metric(port: int, token: str, name: str) -> float | None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=auth(token))
    try:
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
            lines = r.read().decode().splitlines()
    except (OSError, http.client.HTTPException):
        return None
    for line in lines:
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@pytest.mark.slow
def test_kill_the_lease_holder_mid_burst(tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "hub"
    init_hub(root)
    provision("add-cac", "--dir", root, "--cac-id", CAC, "--stations", "1")
    bad = provision("add-hub-worker", "--dir", root, "--name", "w9", "--store-url",
                    "mysql://x@y/z", check=False)
    assert bad.returncode != 0 and "postgresql://" in bad.stderr
    assert not (root / "w9.toml").exists()
    for w in ("w1", "w2"):
        provision("add-hub-worker", "--dir", root, "--name", w, "--store-url", pg_url,
                  "--http-port", str(free_port()))
        assert read_toml(root / f"{w}.toml")["store"] == {"url": pg_url}
    ports = {w: read_toml(root / f"{w}.toml")["http"]["port"] for w in ("w1", "w2")}
    token = add_token_cli(root / "w1.toml", "probe", "viewer")  # one data_dir: both see it
    broker = ProvisionedBroker(root)
    broker.start()
    procs = {w: Proc(tmp_path / f"{w}.log", BIN / "cac-hub", "--config", root / f"{w}.toml")
             for w in ("w1", "w2")}
    agent = read_toml(root / "cacs" / CAC / "agent.toml")["mqtt"]
    cac = Client(broker.port, agent["username"], agent["password"])
    acks: list[int] = []
    try:
        def leaders() -> list[str]:
            return [w for w in procs if metric(ports[w], token, "cac_hub_upkeep_lease") == 1]

        try:
            wait_for(lambda: all(metric(ports[w], token, "cac_hub_mqtt_connected") == 1
                                 for w in procs), "both workers connected", 30)
            holder = wait_for(leaders, "a lease holder", 30)
        except AssertionError:
            raise AssertionError("\n".join(p.text()[-1500:] for p in procs.values())) from None
        assert len(holder) == 1
        victim, survivor = holder[0], ("w2" if holder[0] == "w1" else "w1")
        assert cac.connect()
        cac.c.on_message = lambda c, u, m: acks.append(json.loads(m.payload)["seq"])
        cac.subscribe(cac_topic(CAC, Kind.ACK))
        topic = cac_topic(CAC, Kind.USAGE)
        for lo in range(1, N + 1, BATCH):
            cac.publish(topic, usage(*[session(q, CAC) for q in range(lo, lo + BATCH)]))
            if lo == N // 2 + 1:
                procs[victim].p.kill()  # kill -9 mid-burst
                killed_at = time.monotonic()
        # the agent re-sends what is not acknowledged until the ack says N
        deadline = time.monotonic() + 60
        while max(acks, default=0) < N:
            assert time.monotonic() < deadline, f"acks stopped at {max(acks, default=0)}"
            start = max(acks, default=0) + 1
            for lo in range(start, N + 1, BATCH):
                cac.publish(topic, usage(*[session(q, CAC)
                                           for q in range(lo, min(lo + BATCH, N + 1))]))
            time.sleep(1.0)  # the agent's re-send interval, shortened
        wait_for(lambda: leaders() == [survivor], "the survivor taking the lease", 30)
        handover = time.monotonic() - killed_at
        print(f"lease handover after kill -9 (upper bound, incl. the burst): {handover:.1f} s")
        assert handover < 30
        with psycopg.connect(pg_url) as conn:
            counts = conn.execute("SELECT COUNT(*), COUNT(DISTINCT seq) FROM records "
                                  "WHERE cac_id = %s", (CAC,)).fetchone()
            wm = conn.execute("SELECT acked_seq FROM watermarks WHERE cac_id = %s",
                              (CAC,)).fetchone()
        assert counts == (N, N) and wm == (N,)
    finally:
        cac.close()
        for p in procs.values():
            p.stop()
        broker.stop()
