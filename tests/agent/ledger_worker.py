"""A ledger writer process for the kill -9 tests (tests/agent/test_ledger_outbox.py).

``python ledger_worker.py DATA_DIR SEGMENT_BYTES ACK_EVERY [pause]``: closes sessions for
ever, acks half of what it has every ACK_EVERY writes, and prints one line per answered
call, flushed, *after* the call returned: ``closed SEQ ID`` or ``acked SEQ``. With ``pause``
it stops inside a compaction (after the first segment of several was removed, before the
next) and prints ``compacting``, so the test can kill it there.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import agent.outbox  # noqa: E402
from agent.ledger import Ledger  # noqa: E402


def main() -> None:
    data_dir, seg_bytes, ack_every = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    pause = len(sys.argv) > 4 and sys.argv[4] == "pause"
    agent.outbox.SEGMENT_BYTES = seg_bytes
    if pause:
        real_unlink = os.unlink
        removed = [0]

        def unlink(path: object) -> None:
            if str(path).endswith(".jsonl") and removed[0] >= 1:
                print("compacting", flush=True)
                time.sleep(60)  # killed here; never reached in the test
            real_unlink(path)  # type: ignore[arg-type]
            removed[0] += 1

        agent.outbox.os.unlink = unlink  # type: ignore[assignment]
    led = Ledger(data_dir, "ma-oriental-oujda-001", ZoneInfo("Africa/Casablanca"))
    print("ready", flush=True)
    at = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    n = 0
    # a station of this run's own: a kill -9 between a start and its close leaves that session
    # active in the ledger, and the next run must not trip over it
    station = f"s-{uuid.uuid4().hex[:8]}"
    while True:
        n += 1
        sid = uuid.uuid4().hex
        cp = {"id": sid, "station": station, "started_at": at.isoformat(), "limit_seconds": None,
              "category": None, "voucher_id": None, "operator": "amina",
              "billed_seconds": 0, "voucher_code": None}
        led.start_session(cp)
        end = at + timedelta(seconds=600)
        stored = led.close_session({"type": "session", "id": sid, "station": station,
                                    "started_at": cp["started_at"], "ended_at": end.isoformat(),
                                    "billed_seconds": 600, "fee": 200, "currency": "MAD",
                                    "at": end.isoformat()})
        print(f"closed {stored['seq']} {sid}", flush=True)
        at = end + timedelta(minutes=3)
        if n % ack_every == 0:
            target = (led.acked_seq + led.next_seq - 1 + 1) // 2
            if target > led.acked_seq:
                led.ack(target)
                print(f"acked {target}", flush=True)


if __name__ == "__main__":
    main()
