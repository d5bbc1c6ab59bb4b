"""A CAC on a bad uplink, for real: 32 kB/s each way, 300 ms each way, and cuts.

Real Mosquitto, real ``cac-hub``, real ``cac-agent``; the agent reaches the broker and the
hub's HTTP only through tests/netproxy.py links (tests/bad_link_support.py). Proven here:
sessions closed while the link is cut reach the hub exactly once; a short outage that resets
nothing costs no reconnection; the starter content
(published with ``cac-hub add-content``) syncs, resumes a download cut in the middle and
serves exactly the published bytes; commands sent from the dashboard while the CAC is cut
off run once when it comes back (or are answered ``expired``), never twice, never lost.
The random, flapping version with 100 sessions is test_bad_link_flapping.py (slow).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bad_link_support import (
    STARTER,
    LinkSite,
    agent_records,
    check_command_once,
    check_exactly_once,
    http,
    hub_broker,
    starter_files,
    until,
)
from helpers import MosquittoBroker

pytestmark = pytest.mark.system

WAIT = 60.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    yield from hub_broker(tmp_path)


@pytest.fixture
def site(tmp_path: Path, broker: MosquittoBroker) -> Iterator[LinkSite]:
    s = LinkSite(tmp_path, broker, poll_seconds=5)
    yield s
    s.close()


def test_sessions_content_and_commands_cross_a_link_that_drops(site: LinkSite) -> None:
    procs = site.procs
    print(site.add_starter_content())
    site.start_hub()
    site.start_agent()
    until(lambda: (c := site.hub_cac()) and c["online"], "the CAC online over the link",
          WAIT, procs)
    # content downloads are cut 1,200 bytes into a file's answer, three times
    site.http_link.cut_after_down(1200, after_up=b"GET /content/blobs/", times=3)
    closed: dict[str, dict[str, Any]] = {}

    # 1. records are in flight when the uplink resets; more close while it is down
    for i in range(10):
        rec = site.session(("s1", "s2")[i % 2])
        closed[rec["id"]] = rec
    until(lambda: site.mqtt_link.stats().bytes_up > 0 and site.backlog() < 10,
          "the first records on the wire", WAIT, procs)
    site.mqtt_link.hold_down(3.0)
    for i in range(10):
        rec = site.session(("s1", "s2")[i % 2])
        closed[rec["id"]] = rec

    until(lambda: site.backlog() == 0, "the first 20 records acknowledged", WAIT, procs)

    # 2. a 4 s outage that resets nothing (TCP rides it out): the same connection goes on
    connections = site.mqtt_link.stats().connections
    site.mqtt_link.hold_down(4.0, mode="stall")
    for i in range(3):
        rec = site.session(("s1", "s2")[i % 2])
        closed[rec["id"]] = rec
    until(lambda: site.backlog() == 0, "the records closed during the stall", WAIT, procs)
    assert site.mqtt_link.stats().connections == connections

    # 3. a running session on s3, then the uplink goes down; commands are sent meanwhile
    status, running = http("POST", f"{site.a}/sessions", {"station": "s3", "minutes": None},
                           site.tok)
    assert status == 201, running
    site.mqtt_link.hold_down(None)
    until(lambda: not (c := site.hub_cac()) or not c["online"], "the hub to see the CAC go",
          WAIT, procs)
    text = f"closing early today {time.monotonic_ns()}"
    msg_id = site.send_command("message", text=text, seconds="600")
    lock_id = site.send_command("lock", station="s3", reason="cut-off test")
    assert site.command(msg_id)["status"] == "pending"
    for i in range(5):
        rec = site.session(("s1", "s2")[i % 2])
        closed[rec["id"]] = rec
    assert site.backlog() == 5
    site.mqtt_link.come_up()

    # 4. everything arrives once; the commands run once (or are refused as expired)
    until(lambda: all(site.command(c)["status"] != "pending" for c in (msg_id, lock_id)),
          "the answers to both commands", WAIT, procs)
    messages = [e for e in site.audit("station.message") if text in json.dumps(e)]
    check_command_once(site, msg_id, len(messages))
    lock_fate = check_command_once(site, lock_id, len(site.audit("station.lock")))
    if lock_fate == "done":
        assert site.station("s3")["locked"], site.station("s3")
        closed[running["id"]] = {}  # the lock ended the running session
    until(lambda: site.backlog() == 0 and len(site.hub_sessions()) >= len(closed),
          "every record at the hub", WAIT, procs)

    # 5. the starter content is installed, was resumed after the cuts, and is exact
    st = until(lambda: (c := site.content()["sync"]) and c["installed"] == len(STARTER)
               and c["queued"] == 0 and not c["syncing"] and c,
               "the starter content installed", WAIT, procs)
    assert st["error"] is None, st
    assert st["resumed"] >= 1, st  # a cut download went on from where it stopped
    assert st["rejected"] == 0, st
    for (pid, path), data in starter_files().items():
        got = site.portal_file(pid, path)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), (pid, path)

    # the link really was bad
    up, down = site.mqtt_link.stats(), site.http_link.stats()
    assert up.cut_connections >= 1 and up.refused >= 1, up
    assert down.cuts == 3 and down.cut_connections >= 3, down
    print(f"mqtt link: {up}\nhttp link: {down}")

    site.agent.stop()
    mine = agent_records(site)
    assert set(closed) == set(mine)
    hub = check_exactly_once(site, set(mine))
    for r in hub:
        for key in ("station", "started_at", "ended_at", "billed_seconds", "fee"):
            assert r[key] == mine[r["id"]][key], (key, r, mine[r["id"]])
