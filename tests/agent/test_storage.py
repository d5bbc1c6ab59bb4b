"""Durable files (agent/storage.py): atomic replace, cache invalidation, torn lines, modes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import agent.storage
from agent.storage import (
    AtomicJSONStorage,
    StorageError,
    append_lines_durable,
    atomic_write_bytes,
    read_lines,
)

OLD = {"state": {"1": {"next_seq": 3, "acked_seq": 0}}, "outbox": {"1": {"id": "a"}}}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def stored(tmp_path: Path) -> AtomicJSONStorage:
    """A storage whose file already holds OLD."""
    s = AtomicJSONStorage(tmp_path / "ledger.json")
    s.write(json.loads(json.dumps(OLD)))
    return s


def test_round_trip_in_memory_and_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.json"
    s = AtomicJSONStorage(path)  # creates its directory
    assert s.read() is None  # no file yet
    data = {"t": {"1": {"text": "تسجيل ⵜⴰⵎⴰⵣⵖⴰ", "n": 12345678901234}}}
    s.write(data)
    assert s.writes == 1
    assert s.read() == data
    assert json.loads(path.read_bytes()) == data
    fresh = AtomicJSONStorage(path)
    assert fresh.read() == data
    assert fresh.writes == 0


def test_empty_file_reads_as_no_database(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_bytes(b"  \n")
    assert AtomicJSONStorage(path).read() is None


@pytest.mark.parametrize("fail_on", ["fsync", "replace"])
def test_failed_write_leaves_file_and_cache_at_old_data(
    stored: AtomicJSONStorage, monkeypatch: pytest.MonkeyPatch, fail_on: str
) -> None:
    before = stored.path.read_bytes()
    data = stored.read()
    assert data is not None
    data["outbox"]["2"] = {"id": "b"}  # a caller mutates the dict it read, then writes it
    data["state"]["1"]["next_seq"] = 4

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(agent.storage.os, fail_on, broken)
    with pytest.raises(OSError, match="No space left"):
        stored.write(data)
    monkeypatch.undo()

    assert stored.path.read_bytes() == before
    assert stored.writes == 1  # only the fixture's write counted
    assert stored.read() == OLD  # the cache was dropped: the mutation is gone
    assert AtomicJSONStorage(stored.path).read() == OLD


def test_failed_write_of_a_new_file_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.json"
    s = AtomicJSONStorage(path)

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(agent.storage.os, "fsync", broken)
    with pytest.raises(OSError):
        s.write({"t": {"1": {"x": 1}}})
    monkeypatch.undo()
    assert not path.exists()
    assert s.read() is None


def test_leftover_temp_file_is_removed_on_open_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(OLD))
    tmp = tmp_path / ".ledger.json.tmp"
    tmp.write_bytes(b'{"state": {"1": {"next_seq": 99')  # a write cut short by a crash
    s = AtomicJSONStorage(path)
    assert not tmp.exists()
    assert s.read() == OLD


def test_corrupt_live_file_raises_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_bytes(b'{"state": {"1": {"next_seq": 3')
    s = AtomicJSONStorage(path)
    with pytest.raises(StorageError, match=r"ledger\.json is not valid JSON.*restore it"):
        s.read()
    # still refused on the next try, and the damaged file is left for a human to inspect
    with pytest.raises(StorageError):
        s.read()
    assert path.read_bytes() == b'{"state": {"1": {"next_seq": 3'


def test_live_file_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_bytes(b"[1, 2, 3]")
    with pytest.raises(StorageError, match="does not hold a TinyDB database"):
        AtomicJSONStorage(path).read()


def test_unreadable_live_file_raises_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.mkdir()  # reading a directory fails with an OSError other than "not found"
    with pytest.raises(StorageError, match="cannot read"):
        AtomicJSONStorage(path).read()


def test_invalidate_rereads_from_disk(stored: AtomicJSONStorage) -> None:
    other = AtomicJSONStorage(stored.path)
    other.write({"t": {"1": {"x": 2}}})
    assert stored.read() == OLD  # served from memory
    stored.invalidate()
    assert stored.read() == {"t": {"1": {"x": 2}}}


def test_files_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        s = AtomicJSONStorage(tmp_path / "ledger.json")
        s.write({"t": {}})
        append_lines_durable(tmp_path / "a.jsonl", [{"id": "x"}])
        atomic_write_bytes(tmp_path / "raw.bin", b"x")
    finally:
        os.umask(old_umask)
    assert mode(tmp_path / "ledger.json") == 0o600
    assert mode(tmp_path / "a.jsonl") == 0o600
    assert mode(tmp_path / "raw.bin") == 0o600


def test_replacing_a_public_file_makes_it_private(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text("{}")
    path.chmod(0o644)
    AtomicJSONStorage(path).write({"t": {}})
    assert mode(path) == 0o600


def test_append_lines_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "archive" / "2026-03-01.jsonl"
    path.parent.mkdir()
    append_lines_durable(path, [{"id": "a", "fee": 200}, {"id": "b", "fee": 0}])
    append_lines_durable(path, [])  # nothing to add: no write, no change
    append_lines_durable(path, [{"id": "c", "note": "ligne\nà la ligne"}])
    assert [r["id"] for r in read_lines(path)] == ["a", "b", "c"]
    assert path.read_bytes().count(b"\n") == 3  # one record per line, embedded \n escaped
    assert list(read_lines(tmp_path / "missing.jsonl")) == []


def test_append_after_a_torn_last_line_keeps_the_new_record(tmp_path: Path) -> None:
    path = tmp_path / "2026-03-01.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b", "fee": 2')  # a crash tore the last line
    append_lines_durable(path, [{"id": "c"}, {"id": "d"}])
    assert [r["id"] for r in read_lines(path)] == ["a", "c", "d"]
    # the torn line stays torn (it is skipped), the next append is not glued onto it
    append_lines_durable(path, [{"id": "e"}])
    assert [r["id"] for r in read_lines(path)] == ["a", "c", "d", "e"]


def test_read_lines_skips_only_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"id": "a"}\n\n[1, 2]\nnot json\n{"id": "b"}\n{"id": "c"')
    assert [r["id"] for r in read_lines(path)] == ["a", "b"]
