"""Fixtures of the agent's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_support import CAC, CASABLANCA

from agent.ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A fresh ledger in ``tmp_path / "data"`` (Casablanca time), closed after the test."""
    led = Ledger(tmp_path / "data", CAC, CASABLANCA)
    try:
        yield led
    finally:
        led.close()
