"""Shared fixtures: a real Mosquitto broker (DESIGN principle 6: real parts).

`mosquitto`        one broker for the whole session; do not stop it in a test.
`mosquitto_fresh`  a broker of the test's own: stop()/start()/kill() it freely.
`mosquitto_factory(extra_config=(...))` more brokers, e.g. with other settings.

Each yields a `helpers.MosquittoBroker`: .host, .port, .pid, .stop(), .start(), .kill(),
.log_text(). A missing mosquitto binary fails the test (it is not skipped): install it
with scripts/setup.sh (as root) or `apt-get install mosquitto`.

`helpers` is importable because pytest puts this directory on sys.path for a rootdir
conftest without __init__.py (pyproject's `pythonpath = ["tests"]` makes that explicit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import MosquittoBroker, start_broker
from pgserver import PgMissing, PgServer


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """One real broker shared by the session's tests (on a free port of 127.0.0.1)."""
    broker = start_broker(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_fresh(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real broker of this test's own, which it may stop, kill and start again."""
    broker = start_broker(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """make(extra_config=("max_queued_messages 100000",)) starts another real broker."""
    started: list[MosquittoBroker] = []

    def make(extra_config: tuple[str, ...] = ()) -> MosquittoBroker:
        broker = start_broker(tmp_path / f"mosquitto-{len(started)}", tuple(extra_config))
        started.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in started:
            broker.stop()


# ---------------------------------------------------------------- PostgreSQL (issue 19)
# `pg_server`: one real PostgreSQL server for the session (tests/pgserver.py, fsync off),
# started on first use; missing server binaries FAIL the test with the command that
# installs them (never a silent skip). `pg_url`: a fresh, empty database for this test.


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = PgServer.create()
    except PgMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    return pg_server.new_database()
