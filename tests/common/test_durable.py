"""common/durable.py: the atomic durable write (mode, owner, temp file, failure)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.durable import atomic_write_bytes, temp_path


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_replaces_the_file_with_the_mode_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text("old")
    old = os.umask(0o077)
    try:
        atomic_write_bytes(path, "new", mode=0o644)
    finally:
        os.umask(old)
    assert path.read_text() == "new" and mode(path) == 0o644
    assert list(tmp_path.iterdir()) == [path]


def test_default_mode_is_private(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "secret", b"x")
    assert mode(tmp_path / "secret") == 0o600


def test_a_leftover_temp_file_does_not_matter(tmp_path: Path) -> None:
    path = tmp_path / "f"
    temp_path(path).write_bytes(b"torn")
    atomic_write_bytes(path, b"whole")
    assert path.read_bytes() == b"whole" and not temp_path(path).exists()


def test_a_planted_link_at_the_temp_name_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    path = tmp_path / "f"
    temp_path(path).symlink_to(target)
    atomic_write_bytes(path, b"new")
    assert target.read_bytes() == b"keep" and path.read_bytes() == b"new"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


def test_writers_with_a_tag_use_their_own_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert temp_path(path, "123") != temp_path(path)
    atomic_write_bytes(path, b"x", tag="123")
    assert path.read_bytes() == b"x"
