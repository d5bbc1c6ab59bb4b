"""Run the ledger's durability mutants against its tests (issue 23): each mutant removes an
fsync or reorders two steps of a money write; the tests must fail ("killed").

Run: ``.venv/bin/python scripts/ledger_mutants.py [TEST FILES]`` (about a minute; default:
the ledger and storage tests). Each mutant edits one
source file in place, runs the ledger tests, and puts the file back (also on Ctrl-C). Exits
non-zero if any mutant survives.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/agent/test_ledger_crash.py", "tests/agent/test_ledger_outbox.py",
         "tests/agent/test_ledger.py", "tests/agent/test_storage.py"]

# (name, file, text, replacement): the text must occur exactly once
MUTANTS: list[tuple[str, str, str, str]] = [
    ("directory fsync after the atomic replace removed", "common/durable.py",
     "    sync_dir(path.parent)\n", "    pass\n"),
    ("file fsync before the rename removed", "common/durable.py",
     "            os.fsync(fd)\n        finally:\n            os.close(fd)\n        os.replace",
     "            pass\n        finally:\n            os.close(fd)\n        os.replace"),
    ("archive fsync removed", "agent/storage.py",
     "            view = view[os.write(fd, view):]\n        os.fsync(fd)\n",
     "            view = view[os.write(fd, view):]\n"),
    ("a new archive file's directory fsync removed", "agent/storage.py",
     "    if new:\n        fsync_dir(path.parent)\n", "    pass\n"),
    ("watermark committed before the archive append is durable", "agent/ledger.py",
     "        for day, recs in sorted(by_day.items()):\n"
     "            append_lines_durable(self.archive_path(day), recs)\n\n"
     "        def mutate(data: Tables) -> None:\n"
     "            self._state(data)[\"acked_seq\"] = seq\n\n"
     "        self._commit(mutate)\n",
     "        def mutate(data: Tables) -> None:\n"
     "            self._state(data)[\"acked_seq\"] = seq\n\n"
     "        self._commit(mutate)\n"
     "        for day, recs in sorted(by_day.items()):\n"
     "            append_lines_durable(self.archive_path(day), recs)\n"),
    ("outbox segment fsync removed", "agent/outbox.py",
     "                os.ftruncate(fd, seg.size + len(payload))\n            os.fsync(fd)\n",
     "                os.ftruncate(fd, seg.size + len(payload))\n"),
    ("new segment's directory fsync removed", "agent/outbox.py",
     "        fsync_dir(self.dir)  # the new name", "        pass  # the new name"),
    ("ledger.json committed before the segment append", "agent/ledger.py",
     "            if self._pending:  # the records first, fsync'd: ledger.json is the commit\n"
     "                mark = self._box.append(self._pending)\n"
     "            self.storage.write(data)\n",
     "            self.storage.write(data)\n"
     "            if self._pending:\n"
     "                mark = self._box.append(self._pending)\n"),
    ("uncommitted tail not cut on start", "agent/outbox.py",
     "                self._truncate(path, pos)\n", "                pass\n"),
    ("migration drops the table before the segment is written", "agent/ledger.py",
     "        if legacy is not None and owner:\n            self._migrate(legacy)\n",
     "        if legacy is not None and owner:\n"
     "            self._commit(lambda d: d.pop(\"outbox\", None))\n"
     "            self._migrate(legacy)\n"),
    ("acked segments removed before the watermark commit", "agent/ledger.py",
     "        self._commit(mutate)\n        self._box.drop_through(seq)",
     "        self._box.drop_through(seq)\n        self._commit(mutate)"),
]


def run_tests() -> tuple[bool, str]:
    tests = sys.argv[1:] or TESTS  # e.g. only tests/agent/test_ledger_crash.py
    proc = subprocess.run([str(ROOT / ".venv/bin/pytest"), "-x", "-q", "-p",  # noqa: S603
                           "no:cacheprovider", *tests], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED", "ERROR", "E "))]
    return proc.returncode == 0, (lines[0][:150] if lines else proc.stdout.strip()[-150:])


def main() -> int:
    ok, why = run_tests()
    if not ok:
        print(f"the tests fail without any mutant: {why}")
        return 2
    survived = 0
    for name, rel, old, new in MUTANTS:
        path = ROOT / rel
        source = path.read_text()
        if source.count(old) != 1:
            print(f"?? {name}: the text to mutate is not in {rel} exactly once")
            survived += 1
            continue
        t0 = time.monotonic()
        try:
            path.write_text(source.replace(old, new))
            passed, why = run_tests()
        finally:
            path.write_text(source)
        verdict = "SURVIVED" if passed else "killed  "
        survived += passed
        print(f"{verdict} {name} ({rel}, {time.monotonic() - t0:.0f} s)"
              + ("" if passed else f"\n         by: {why}"), flush=True)
    print(f"{len(MUTANTS) - survived} of {len(MUTANTS)} mutants killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
