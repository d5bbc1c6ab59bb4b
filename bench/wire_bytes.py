"""MQTT bytes on the wire per session record, beside the record's own size.

Run: ``.venv/bin/python bench/wire_bytes.py`` (about a minute; ``--quick``: fewer records).

Real Mosquitto, real ``cac-hub``, real ``cac-agent`` whose ``[mqtt]`` points at a
tests/netproxy.py link (32 kB/s, 300 ms each way, as in tests/system/test_bad_link*.py); the
link counts every MQTT byte it carries each way (TCP payload: MQTT fixed and variable
headers, topic, JSON payload, PUBACKs, the hub's acks, PINGs; not IP/TCP headers). Two ways a
CAC closes sessions, in the same run:

(a) one at a time: a session closes, its record is acknowledged, then the next (a quiet
    CAC: every record travels in a message of its own);
(b) a burst: many sessions close at once (the backlog after an outage) and travel batched.

Each prints bytes up (agent -> broker) and down (broker -> agent) per record, beside the
record's JSON as the wire encodes it (``wire.messages.encode`` of one record): the
baseline. Health reports are pushed out of the window (``health_interval_seconds`` large);
the connect-time status and health are before it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bad_link_support import LATENCY, RATE, STATIONS, LinkSite, until  # noqa: E402
from helpers import MosquittoBroker  # noqa: E402
from netproxy import LinkStats  # noqa: E402

from wire.messages import encode, record_from_dict  # noqa: E402

WAIT = 300.0


def quiet(site: LinkSite) -> LinkStats:
    """The link's counters once nothing has moved for a second (acks, PUBACKs all in)."""
    last = site.mqtt_link.stats()
    while True:
        time.sleep(1.0)
        now = site.mqtt_link.stats()
        if (now.bytes_up, now.bytes_down) == (last.bytes_up, last.bytes_down):
            return now
        last = now


def record_bytes(recs: list[dict[str, object]]) -> float:
    return statistics.mean(len(encode(record_from_dict(r))) for r in recs)


def run(site: LinkSite, singles: int, burst: int) -> list[str]:
    site.start_hub()
    site.start_agent()
    until(lambda: (c := site.hub_cac()) and c["online"], "the CAC online", WAIT, site.procs)
    lines = []

    before = quiet(site)
    recs = []
    for i in range(singles):
        recs.append(site.session(STATIONS[i % len(STATIONS)]))
        until(lambda: site.backlog() == 0, "the record acknowledged", WAIT, site.procs)
    after = quiet(site)
    lines.append(line(f"(a) one at a time, {singles} records", before, after, recs))

    before = after
    recs = [site.session(STATIONS[i % len(STATIONS)]) for i in range(burst)]
    until(lambda: site.backlog() == 0, "the burst acknowledged", WAIT, site.procs)
    after = quiet(site)
    lines.append(line(f"(b) a burst of {burst} records", before, after, recs))
    return lines


def line(what: str, before: LinkStats, after: LinkStats, recs: list[dict[str, object]]
         ) -> str:
    n = len(recs)
    up = (after.bytes_up - before.bytes_up) / n
    down = (after.bytes_down - before.bytes_down) / n
    base = record_bytes(recs)
    return (f"{what}: {up + down:.0f} MQTT bytes on the wire per session record "
            f"(up {up:.0f} + down {down:.0f}) beside {base:.0f} bytes of record JSON "
            f"({(up + down) / base:.2f}x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 single records, a burst of 50")
    args = ap.parse_args()
    singles, burst = (5, 50) if args.quick else (20, 300)
    tmp = Path(tempfile.mkdtemp(prefix="cac-wire-"))
    tmp.chmod(0o755)
    broker = MosquittoBroker(tmp / "broker", extra_config=(
        "max_queued_messages 100000", "max_inflight_messages 100"))
    broker.start()
    site = LinkSite(tmp, broker, health_interval=3600, content=False)
    try:
        print(f"agent <-> broker over a {RATE // 1000} kB/s link with {LATENCY * 1000:.0f} ms "
              "each way (tests/netproxy.py)")
        for text in run(site, singles, burst):
            print(text, flush=True)
    finally:
        site.close()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
