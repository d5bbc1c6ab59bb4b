"""How long one ledger write takes as the CAC ages, beside the raw cost of the disk.

Run: ``python bench/ledger.py`` (about 2-3 minutes on 2 cores) or ``--quick`` (seconds).

Two situations, each measured as the latency of appending one record (``close_session`` of a
started session: one real fsync'd atomic write of ``ledger.json``):

- *history N*: N records the hub has acknowledged, so they live in ``archive/*.jsonl`` and the
  live file holds only state. The hub keeps acking, so the live file stays small. The append
  should cost what one raw atomic write of a small file costs, whatever N is.
- *outbox N*: N records the hub has NOT acknowledged (hub offline for days). They live in the
  live file, and every write re-encodes and rewrites all of them.

Beside each figure, in the same run and interleaved op by op, the cost of one
``agent.storage.atomic_write_bytes`` of a file of the same size as ``ledger.json`` at that
moment: the floor that whole-file replacement cannot go below on this disk.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402
import tinydb  # noqa: E402

from agent.ledger import ARCHIVE_DIR, LEDGER_FILE, Ledger  # noqa: E402
from agent.storage import append_lines_durable, atomic_write_bytes  # noqa: E402

CAC = "ma-oriental-oujda-001"
TZ = ZoneInfo("Africa/Casablanca")
EPOCH = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
RECORDS_PER_DAY = 150  # a busy CAC: 8 stations, ~19 sessions each
ARCHIVE_BATCH = 5000
WARMUP_OPS = 3
MIN_OPS = 20  # fewer than this gives no p99 worth printing: skip instead



@dataclass(frozen=True)
class Plan:
    ops: int
    history: tuple[int, ...]
    outbox: tuple[int, ...]
    budget_s: float  # the whole run stops measuring new cases past this


FULL = Plan(200, (1_000, 10_000, 100_000), (1_000, 10_000, 100_000), 170.0)
QUICK = Plan(40, (1_000, 10_000), (1_000,), 30.0)


def session_record(n: int) -> dict[str, Any]:
    """The n-th session record of a plausible history (about 400 bytes of JSON)."""
    start = EPOCH + timedelta(days=n // RECORDS_PER_DAY, minutes=5 * (n % RECORDS_PER_DAY))
    billed = 600 + (n * 37) % 3000
    end = start + timedelta(seconds=billed)
    return {"type": "session", "id": uuid.uuid4().hex, "station": f"s{n % 8 + 1}",
            "started_at": start.isoformat(), "ended_at": end.isoformat(),
            "billed_seconds": billed, "fee": 200 * (1 + billed // 900), "currency": "MAD",
            "category": None, "voucher_id": None, "operator": "amina", "minutes": 60,
            "end_reason": "operator", "paid_by": "cash", "at": end.isoformat(),
            "seq": n + 1, "cac_id": CAC}


def build_history(ledger: Ledger, n: int) -> None:
    """N acknowledged records: archive lines by local day, state says they were acked."""
    by_day: dict[Path, list[dict[str, Any]]] = {}
    pending = 0
    for i in range(n):
        rec = session_record(i)
        by_day.setdefault(ledger.archive_path(ledger.local_day(rec["at"])), []).append(rec)
        pending += 1
        if pending >= ARCHIVE_BATCH or i == n - 1:
            for path, recs in by_day.items():
                append_lines_durable(path, recs)
            by_day, pending = {}, 0

    def mutate(data: dict[str, dict[str, Any]]) -> None:
        state = ledger._state(data)
        state["next_seq"] = n + 1
        state["acked_seq"] = n

    ledger._commit(mutate)


def build_outbox(ledger: Ledger, n: int) -> None:
    """N records the hub has not acknowledged, in the live file (one write)."""

    def mutate(data: dict[str, dict[str, Any]]) -> None:
        outbox = data.setdefault("outbox", {})
        for i in range(n):
            outbox[str(i + 1)] = session_record(i)
        state = ledger._state(data)
        state["next_seq"] = n + 1
        state["acked_seq"] = 0

    ledger._commit(mutate)


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Case:
    """One row: appends through the ledger and raw writes of the same size, interleaved."""

    def __init__(self, kind: str, n: int, root: Path, ack_each: bool) -> None:
        self.kind = kind
        self.n = n
        self.dir = root / f"{kind}-{n}"
        self.ack_each = ack_each
        self.ledger = Ledger(self.dir, CAC, TZ)
        self.live = self.dir / LEDGER_FILE
        self.raw = self.dir / "raw-write.json"
        self.append_ms: list[float] = []
        self.raw_ms: list[float] = []
        self.sizes: list[int] = []
        self._op = 0
        self._filler = b""

    def one(self) -> None:
        """Append one record (timed), then write the same number of bytes raw (timed)."""
        self._op += 1
        at = datetime.now(UTC)
        cp = {"id": uuid.uuid4().hex, "station": "s1", "started_at": at.isoformat(),
              "limit_seconds": None, "category": None, "voucher_id": None,
              "operator": "amina", "billed_seconds": 0, "voucher_code": None}
        self.ledger.start_session(cp)
        ended = at + timedelta(seconds=900)
        record = {"type": "session", "id": cp["id"], "station": "s1",
                  "started_at": cp["started_at"], "ended_at": ended.isoformat(),
                  "billed_seconds": 900, "fee": 200, "currency": "MAD", "category": None,
                  "voucher_id": None, "operator": "amina", "minutes": None,
                  "end_reason": "operator", "paid_by": "cash", "at": ended.isoformat()}
        t0 = time.perf_counter()
        stored = self.ledger.close_session(record)
        t1 = time.perf_counter()
        self.append_ms.append((t1 - t0) * 1000)
        size = self.live.stat().st_size
        self.sizes.append(size)
        if len(self._filler) < size:
            self._filler = self.live.read_bytes() + b" " * (size // 4)
        payload = self._filler[:size]
        t0 = time.perf_counter()
        atomic_write_bytes(self.raw, payload)
        t1 = time.perf_counter()
        self.raw_ms.append((t1 - t0) * 1000)
        if self.ack_each:  # the hub is online and acks at once: not timed
            self.ledger.ack(stored["seq"])

    def close(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_case(kind: str, n: int, root: Path, ops: int, deadline: float,
             rows: list[dict[str, Any]]) -> None:
    t_build = time.perf_counter()
    case = Case(kind, n, root, ack_each=(kind == "history"))
    try:
        (build_history if kind == "history" else build_outbox)(case.ledger, n)
        build_s = time.perf_counter() - t_build
        for _ in range(WARMUP_OPS):
            case.one()
        per_op = (sum(case.append_ms) + sum(case.raw_ms)) / 1000 / WARMUP_OPS
        left = deadline - time.monotonic()
        fits = int(left / (per_op * 1.3)) if per_op > 0 else ops
        if fits < MIN_OPS:
            rows.append({"kind": kind, "n": n, "skipped":
                         f"skipped: one op costs {per_op * 1000:.0f} ms here, {MIN_OPS} ops "
                         f"would not fit in the {left:.0f} s left of the time budget"})
            return
        count = min(ops, fits)
        case.append_ms.clear()
        case.raw_ms.clear()
        case.sizes.clear()
        for _ in range(count):
            case.one()
        archived = sum(1 for p in (case.dir / ARCHIVE_DIR).glob("*.jsonl")
                       for _ in p.open("rb"))
        rows.append({
            "kind": kind, "n": n, "ops": count, "build_s": build_s,
            "bytes_min": min(case.sizes), "bytes_max": max(case.sizes),
            "archived": archived, "backlog": case.ledger.backlog(),
            "append_p50": percentile(case.append_ms, 50),
            "append_p99": percentile(case.append_ms, 99),
            "raw_p50": percentile(case.raw_ms, 50), "raw_p99": percentile(case.raw_ms, 99),
            "note": "" if count == ops else f"only {count} ops fit the time budget",
        })
    finally:
        case.close()


def filesystem_of(path: Path) -> str:
    """The mount point, type and device of ``path`` (from /proc/mounts)."""
    real = str(path.resolve())
    best = ("?", "?", "?")
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown (no /proc/mounts)"
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        dev, mnt, fstype = parts[0], parts[1].replace("\\040", " "), parts[2]
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[1]):
            best = (dev, mnt, fstype)
    return f"{best[2]} on {best[0]} mounted at {best[1]}"


def human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} GB"


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'case':<8} {'N':>8} {'live file':>21} {'ops':>4} "
            f"{'append p50':>10} {'p99':>8} {'raw write p50':>13} {'p99':>8} {'p50 ratio':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        label = "history" if r["kind"] == "history" else "outbox"
        if "skipped" in r:
            print(f"{label:<8} {r['n']:>8,}  {r['skipped']}")
            continue
        spread = r["bytes_max"] - r["bytes_min"]
        size = (human(r["bytes_min"]) if spread < max(1024, r["bytes_min"] // 50)
                else f"{human(r['bytes_min'])}..{human(r['bytes_max'])}")
        ratio = r["append_p50"] / r["raw_p50"] if r["raw_p50"] else float("nan")
        print(f"{label:<8} {r['n']:>8,} {size:>21} {r['ops']:>4} "
              f"{r['append_p50']:>8.2f}ms {r['append_p99']:>6.2f}ms "
              f"{r['raw_p50']:>11.2f}ms {r['raw_p99']:>6.2f}ms {ratio:>8.1f}x"
              + (f"  ({r['note']})" if r["note"] else ""))
    print()
    for r in rows:
        if "skipped" not in r:
            days = r["n"] / RECORDS_PER_DAY
            what = "of history" if r["kind"] == "history" else "with the hub unreachable"
            print(f"  {r['kind']} {r['n']:,} (~{days:,.0f} busy days {what}): built in "
                  f"{r['build_s']:.1f} s; after the run {r['archived']:,} archive lines, "
                  f"{r['backlog']:,} records in the outbox")
    print("\nThe raw write is the floor for a whole-file replace of that size on this disk; "
          "'history' rows\nshould match it at any N. 'outbox' rows grow with the backlog: "
          "every write (and every\ncheckpoint) re-encodes and rewrites all unacknowledged "
          "records.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="a short run (fewer sizes and ops)")
    p.add_argument("--dir", type=Path, default=None,
                   help="where to build the ledgers (default: the system temp dir); point it "
                        "at the disk the agent will use, e.g. an SD card")
    p.add_argument("--ops", type=int, default=None, help="appends per case")
    args = p.parse_args(argv)
    plan = QUICK if args.quick else FULL
    ops = args.ops or plan.ops
    start = time.monotonic()
    deadline = start + plan.budget_s

    root = Path(tempfile.mkdtemp(prefix="cac-bench-ledger-", dir=args.dir))
    try:
        print("ledger append latency vs. the raw atomic write of the same size")
        print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, "
              f"{platform.system()} {platform.release()}")
        print(f"python {platform.python_version()}, tinydb {tinydb.__version__}, "
              f"msgspec {msgspec.__version__}")
        print(f"temp dir: {root} ({filesystem_of(root)})")
        print(f"ops per case: {ops} (after {WARMUP_OPS} warm-up ops); "
              f"time budget {plan.budget_s:.0f} s")
        print()
        rows: list[dict[str, Any]] = []
        cases = [("history", n) for n in plan.history] + [("outbox", n) for n in plan.outbox]
        for kind, n in cases:
            t0 = time.monotonic()
            run_case(kind, n, root, ops, deadline, rows)
            print(f"  ... {kind} {n:,} done in {time.monotonic() - t0:.1f} s", flush=True)
        print()
        print_table(rows)
        print(f"\ntotal {time.monotonic() - start:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
