"""How long one money write of the ledger takes as the backlog grows, beside the raw disk.

Run: ``python bench/ledger.py`` (about 30 s on 2 cores) or ``--quick`` (fewer ops).

Each case is a ledger in its own directory; the figure is the latency of one money write
(``close_session`` of a started session), and the number of fsyncs it made:

- *outbox N*: N records the hub has NOT acknowledged (hub offline for months). They sit in
  the append-only outbox segments; a write appends one line and commits the small
  ``ledger.json``, so N should not show. ``outbox 0`` is the same write with no backlog.
- *history N*: N acknowledged records in ``archive/*.jsonl``; the hub acks each write.

The cases run interleaved op by op in the same run (so a busy disk hurts them all alike),
beside a *raw write*: one ``agent.storage.atomic_write_bytes`` of a file the size of
``ledger.json`` (temp, fsync, rename, directory fsync), the floor of any durable replace.

The LAST line is the verdict: the p99 at 0, 10,000 and 100,000 unacknowledged records, the
100,000 / 0 ratio (goal: within 2x), the raw write's p99 and the fsyncs per money write.
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
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402
import tinydb  # noqa: E402

from agent.ledger import ARCHIVE_DIR, LEDGER_FILE, Ledger  # noqa: E402
from agent.storage import atomic_write_bytes  # noqa: E402

CAC = "ma-oriental-oujda-001"
TZ = ZoneInfo("Africa/Casablanca")
EPOCH = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
RECORDS_PER_DAY = 150  # a busy CAC: 8 stations, ~19 sessions each
BUILD_BATCH = 2000  # records per write while building a backlog
WARMUP_OPS = 3
GOAL = 2.0  # p99 at 100,000 unacknowledged within this factor of the p99 at none


@dataclass(frozen=True)
class Plan:
    ops: int
    outbox: tuple[int, ...]
    history: tuple[int, ...]


FULL = Plan(1000, (0, 1_000, 10_000, 100_000), (100_000,))
QUICK = Plan(60, (0, 10_000, 100_000), ())


class FsyncCounter:
    """Counts os.fsync calls (files and directories) while installed."""

    def __init__(self) -> None:
        self.count = 0
        self._real = os.fsync

    def __enter__(self) -> FsyncCounter:
        real = self._real

        def counting(fd: Any) -> None:
            self.count += 1
            real(fd)

        os.fsync = counting
        return self

    def __exit__(self, *exc: object) -> None:
        os.fsync = self._real


FSYNCS = FsyncCounter()


def session_record(n: int) -> dict[str, Any]:
    """The n-th session record of a plausible history (about 400 bytes of JSON)."""
    start = EPOCH + timedelta(days=n // RECORDS_PER_DAY, minutes=5 * (n % RECORDS_PER_DAY))
    billed = 600 + (n * 37) % 3000
    end = start + timedelta(seconds=billed)
    return {"type": "session", "id": uuid.uuid4().hex, "station": f"s{n % 8 + 1}",
            "started_at": start.isoformat(), "ended_at": end.isoformat(),
            "billed_seconds": billed, "fee": 200 * (1 + billed // 900), "currency": "MAD",
            "category": None, "voucher_id": None, "operator": "amina", "minutes": 60,
            "end_reason": "operator", "paid_by": "cash", "at": end.isoformat()}


def build_history(ledger: Ledger, n: int) -> None:
    """N acknowledged records: the ledger numbers them, the hub acks them (archive)."""
    build_outbox(ledger, n)
    ledger.ack(n)


def build_outbox(ledger: Ledger, n: int) -> None:
    """N records the hub has not acknowledged, numbered and appended by the ledger itself
    (``BUILD_BATCH`` per write, so the segments are what months of writes leave)."""
    done = 0
    while done < n:
        batch = min(BUILD_BATCH, n - done)

        def mutate(data: dict[str, dict[str, Any]], first: int = done, k: int = batch) -> None:
            for i in range(first, first + k):
                ledger._append(data, session_record(i))

        ledger._commit(mutate)
        done += batch


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Case:
    """One row: money writes through one ledger."""

    def __init__(self, kind: str, n: int, root: Path) -> None:
        self.kind = kind
        self.n = n
        self.dir = root / f"{kind}-{n}"
        self.ledger = Ledger(self.dir, CAC, TZ)
        self.live = self.dir / LEDGER_FILE
        self.ms: list[float] = []
        self.fsyncs: list[int] = []
        self.sizes: list[int] = []
        self.build_s = 0.0

    def build(self) -> None:
        t0 = time.perf_counter()
        if self.n:
            (build_history if self.kind == "history" else build_outbox)(self.ledger, self.n)
        self.build_s = time.perf_counter() - t0

    def one(self) -> None:
        """Start a session (not timed), then close it: the timed money write."""
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
        before = FSYNCS.count
        t0 = time.perf_counter()
        stored = self.ledger.close_session(record)
        t1 = time.perf_counter()
        self.fsyncs.append(FSYNCS.count - before)
        self.ms.append((t1 - t0) * 1000)
        self.sizes.append(self.live.stat().st_size)
        if self.kind == "history":  # the hub is online and acks at once: not timed
            self.ledger.ack(stored["seq"])

    def reset(self) -> None:
        self.ms.clear()
        self.fsyncs.clear()
        self.sizes.clear()

    def close(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class RawWrite:
    """The raw atomic write of a file the size of a case's ledger.json."""

    def __init__(self, root: Path, like: Case) -> None:
        self.path = root / "raw-write.json"
        self.like = like
        self.ms: list[float] = []
        self.fsyncs: list[int] = []

    def one(self) -> None:
        payload = self.like.live.read_bytes()
        before = FSYNCS.count
        t0 = time.perf_counter()
        atomic_write_bytes(self.path, payload)
        t1 = time.perf_counter()
        self.fsyncs.append(FSYNCS.count - before)
        self.ms.append((t1 - t0) * 1000)


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


def print_table(cases: list[Case], raw: RawWrite) -> None:
    head = (f"{'case':<8} {'N':>8} {'live file':>10} {'segments':>8} {'ops':>4} "
            f"{'write p50':>9} {'p99':>8} {'max':>8} {'fsyncs':>6}")
    print(head)
    print("-" * len(head))
    for c in cases:
        segs = len(list((c.dir / "outbox").glob("*.jsonl")))
        print(f"{c.kind:<8} {c.n:>8,} {human(max(c.sizes)):>10} {segs:>8} {len(c.ms):>4} "
              f"{percentile(c.ms, 50):>7.2f}ms {percentile(c.ms, 99):>6.2f}ms "
              f"{max(c.ms):>6.2f}ms {sum(c.fsyncs) / len(c.fsyncs):>6.2f}")
    print(f"{'raw':<8} {'':>8} {human(raw.like.live.stat().st_size):>10} {'':>8} "
          f"{len(raw.ms):>4} {percentile(raw.ms, 50):>7.2f}ms {percentile(raw.ms, 99):>6.2f}ms "
          f"{max(raw.ms):>6.2f}ms {sum(raw.fsyncs) / len(raw.fsyncs):>6.2f}")
    print()
    for c in cases:
        if c.n:
            days = c.n / RECORDS_PER_DAY
            what = "of history" if c.kind == "history" else "with the hub unreachable"
            archived = sum(1 for p in (c.dir / ARCHIVE_DIR).glob("*.jsonl")
                           for _ in p.open("rb"))
            print(f"  {c.kind} {c.n:,} (~{days:,.0f} busy days {what}): built in "
                  f"{c.build_s:.1f} s; after the run {archived:,} archive lines, "
                  f"{c.ledger.backlog():,} records in the outbox")
    print("\nA money write = append its record to the newest outbox segment + fsync, then the "
          "atomic\nreplace of the small ledger.json (fsync, rename, directory fsync); 'raw' is "
          "that replace alone.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="a short run (fewer sizes and ops)")
    p.add_argument("--dir", type=Path, default=None,
                   help="where to build the ledgers (default: the system temp dir); point it "
                        "at the disk the agent will use, e.g. an SD card")
    p.add_argument("--ops", type=int, default=None, help="money writes per case")
    args = p.parse_args(argv)
    plan = QUICK if args.quick else FULL
    ops = args.ops or plan.ops
    start = time.monotonic()

    root = Path(tempfile.mkdtemp(prefix="cac-bench-ledger-", dir=args.dir))
    cases: list[Case] = []
    try:
        print("ledger money-write latency vs. the unacknowledged backlog, and the raw atomic "
              "write")
        print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, "
              f"{platform.system()} {platform.release()}")
        print(f"python {platform.python_version()}, tinydb {tinydb.__version__}, "
              f"msgspec {msgspec.__version__}")
        print(f"temp dir: {root} ({filesystem_of(root)})")
        print(f"ops per case: {ops} (after {WARMUP_OPS} warm-up ops), interleaved op by op")
        print()
        cases = [Case("outbox", n, root) for n in plan.outbox]
        cases += [Case("history", n, root) for n in plan.history]
        for c in cases:
            c.build()
            print(f"  ... built {c.kind} {c.n:,} in {c.build_s:.1f} s", flush=True)
        os.sync()  # what the builds left in the page cache is on disk before timing starts
        raw = RawWrite(root, cases[0])
        with FSYNCS:
            for _ in range(WARMUP_OPS):
                for c in cases:
                    c.one()
            for c in cases:
                c.reset()
            for _ in range(ops):
                for c in cases:
                    c.one()
                raw.one()
        print()
        print_table(cases, raw)
        print(f"\ntotal {time.monotonic() - start:.0f} s")
        p99 = {c.n: percentile(c.ms, 99) for c in cases if c.kind == "outbox"}
        counts = Counter(f for c in cases for f in c.fsyncs)
        usual = counts.most_common(1)[0][0]
        others = ", ".join(f"{f} on {n:,} of {counts.total():,} writes"
                           for f, n in sorted(counts.items()) if f != usual)
        fsyncs = f"{usual}" + (f" ({others}: a new segment)" if others else "")
        ratio = p99[100_000] / p99[0]
        print(f"outbox write p99: 0 unacked {p99[0]:.2f} ms | 10,000 {p99[10_000]:.2f} ms | "
              f"100,000 {p99[100_000]:.2f} ms = {ratio:.2f}x the empty one (goal <= "
              f"{GOAL:.0f}x: {'met' if ratio <= GOAL else 'NOT met'}) | raw atomic write p99 "
              f"{percentile(raw.ms, 99):.2f} ms | fsyncs per money write "
              f"{fsyncs}, raw write {raw.fsyncs[0]}")
    finally:
        for c in cases:
            c.ledger.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
