"""Provisioning tests run the broker the way a real hub does: as root, Mosquitto drops to user
`mosquitto` (no `--broker-user root`), so the provisioning directory must sit where that user
can get through, as /srv/cac-hub does. pytest's own tmp_path is 0700 all the way up (and
`cac-provision` now refuses it, see test_cli.py), so here `tmp_path` is a fresh directory
under /tmp with mode 0755, removed after the test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _open_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="cac-prov-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    yield from _open_dir()


@pytest.fixture(scope="module")
def open_tmp_module() -> Iterator[Path]:
    """The same for module-scoped fixtures."""
    yield from _open_dir()
