"""Hub test fixtures: a real PostgreSQL server (tests/pgserver.py) for the store's tests.

`pg_server`  one server for the session (fsync off), started on first use. Missing
             PostgreSQL binaries FAIL the test with the command that installs them: the
             PostgreSQL cases are never skipped silently.
`pg_url`     a fresh, empty database of that server for this test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pgserver import PgMissing, PgServer


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
