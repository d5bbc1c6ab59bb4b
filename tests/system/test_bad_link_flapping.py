"""100 sessions closed while the uplink flaps at random: each reaches the hub exactly once.

The full version of test_bad_link.py (slow: about two minutes): both links (agent -> broker,
agent -> hub HTTP) at 32 kB/s and 300 ms each way go down and up at random from a fixed seed
(``MQTT_SEED``, ``HTTP_SEED``: the same schedule every run) while 100 sessions close, a
command is sent from the dashboard while the CAC is cut off and the starter content syncs;
then the MQTT connection is silently black-holed (found only by the keepalives) while five
more close.
"""

from __future__ import annotations

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
    hub_broker,
    starter_files,
    until,
)
from helpers import MosquittoBroker

pytestmark = [pytest.mark.system, pytest.mark.slow]

SESSIONS = 100
MQTT_SEED, HTTP_SEED = 16, 18  # schedules with 5-6 flaps in the first 30 s
MEAN_UP = 5.0  # seconds the link stays up, on average (exponential)
DOWN = (1.0, 4.0)  # seconds it stays down (uniform)
WAIT = 240.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    yield from hub_broker(tmp_path)


def test_100_sessions_reach_the_hub_exactly_once_over_a_flapping_link(
        tmp_path: Path, broker: MosquittoBroker) -> None:
    site = LinkSite(tmp_path, broker, poll_seconds=10)
    procs = site.procs
    t0 = time.monotonic()
    try:
        site.add_starter_content()
        site.start_hub()
        site.start_agent()
        until(lambda: (c := site.hub_cac()) and c["online"], "the CAC online", 60, procs)
        site.mqtt_link.flap(MEAN_UP, DOWN, seed=MQTT_SEED)
        site.http_link.flap(MEAN_UP, DOWN, seed=HTTP_SEED)
        closed: dict[str, dict[str, Any]] = {}
        cmd_id, text = "", f"flap test {time.monotonic_ns()}"
        for i in range(SESSIONS):
            rec = site.session(("s1", "s2", "s3")[i % 3])
            closed[rec["id"]] = rec
            if not cmd_id and i > SESSIONS // 2 and not site.mqtt_link.is_up():
                cmd_id = site.send_command("message", text=text)
            time.sleep(0.3)
        if not cmd_id:  # the schedule gave no down time in the second half: make one
            site.mqtt_link.hold_down(3.0)
            cmd_id = site.send_command("message", text=text)
        flapped = time.monotonic() - t0
        site.mqtt_link.stop_flapping()
        site.http_link.stop_flapping()
        until(lambda: site.backlog() == 0 and len(site.hub_sessions()) >= SESSIONS,
              "every record at the hub", WAIT, procs)
        drained = time.monotonic() - t0
        # then the connection dies without a word (a NAT that forgot it): only the
        # keepalives (30 s, the broker gives up after 1.5x) can find out
        until(lambda: site.mqtt_link.stats().active == 1, "one MQTT connection", WAIT, procs)
        assert site.mqtt_link.cut("blackhole") == 1
        silenced = time.monotonic()
        for i in range(5):
            rec = site.session(("s1", "s2", "s3")[i % 3])
            closed[rec["id"]] = rec
        until(lambda: site.backlog() == 0 and len(site.hub_sessions()) >= len(closed),
              "the records closed into the black hole at the hub", WAIT, procs)
        found = time.monotonic() - silenced
        until(lambda: site.command(cmd_id)["status"] != "pending", "the command's answer",
              WAIT, procs)
        messages = [e for e in site.audit("station.message") if text in json.dumps(e)]
        fate = check_command_once(site, cmd_id, len(messages))
        st = until(lambda: (c := site.content()["sync"]) and c["installed"] == len(STARTER)
                   and c["queued"] == 0 and not c["syncing"] and c,
                   "the starter content installed", WAIT, procs)
        assert st["rejected"] == 0, st
        for (pid, path), data in starter_files().items():
            assert site.portal_file(pid, path) == data, (pid, path)
        up, down = site.mqtt_link.stats(), site.http_link.stats()
        site.agent.stop()
        mine = agent_records(site)
        assert set(mine) == set(closed)
        check_exactly_once(site, set(mine))
        assert up.cuts >= 3 and down.cuts >= 3, (up, down)
        print(f"\n{SESSIONS} sessions over a flapping link: flapped {flapped:.0f} s, "
              f"all at the hub {drained - flapped:.0f} s later; command {fate}; content "
              f"resumed {st['resumed']}x; 5 records sent into a black hole at the hub "
              f"{found:.0f} s later\nmqtt link: {up}\nhttp link: {down}\n"
              f"mqtt flaps: {len(site.mqtt_link.flaps())}, http flaps: "
              f"{len(site.http_link.flaps())}")
    finally:
        site.close()
