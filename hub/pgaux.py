"""The hub's other tables (hub/schema.py: alarms, commands, audit, users, API tokens, health
history) on PostgreSQL, so that every worker on ``[store] url`` shares them (issue 19).

The modules that keep those tables (hub/alarms.py, commands.py, users.py, tokens.py,
history.py, model.py) talk to a ``sqlite3.Connection``-shaped object: ``execute(sql,
params)`` with ``?`` placeholders, giving back rows, ``fetchone``/``fetchall`` and
``rowcount``. ``PgConnection`` is that object over a ``PgStore``'s pool: it turns ``?`` into
``%s`` (none of those modules' SQL has a ``?``, ``%`` or string literal holding either), runs
the statement in the open transaction of this thread (``PgAux.transaction``) or in one of its
own, and reads the rows at once so the pooled connection goes back. SQL that differs between
the two (scalar MIN/MAX) asks ``dialect(db)``. ``PgAux`` is the ``hub.store.Store``-shaped
holder (``db``, ``transaction()``, ``close()``) that the dashboard, the CLI and the ingest use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.pgstore import PgStore

SQLITE, POSTGRESQL = "sqlite", "postgresql"


def dialect(db: object) -> str:
    """``"postgresql"`` for a ``PgConnection``, ``"sqlite"`` for a sqlite3 connection."""
    return str(getattr(db, "dialect", SQLITE))


class _Rows:
    """The rows of one statement, read at once (a sqlite3 cursor's reading half)."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount
        self._next = 0

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[tuple[Any, ...]]:
        out, self._next = self._rows[self._next:], len(self._rows)
        return out

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class PgConnection:
    """``execute(sql, params)`` with sqlite3's placeholders, on PostgreSQL."""

    dialect = POSTGRESQL

    def __init__(self, store: PgStore) -> None:
        self._store = store

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> _Rows:
        text = sql.replace("?", "%s")
        args = params if isinstance(params, Mapping) else tuple(params)
        with self._store.transaction() as conn:
            cur = conn.execute(text.encode(), args)
            rows = cur.fetchall() if cur.description is not None else []
            return _Rows([tuple(r) for r in rows], cur.rowcount)


class PgAux:
    """hub/schema.py's tables in the PostgreSQL store: ``db``, ``transaction()``,
    ``close()`` like ``hub.store.Store``."""

    def __init__(self, store: PgStore, *, owned: bool = False) -> None:
        self._store, self._owned = store, owned
        self._db = PgConnection(store)

    @property
    def db(self) -> PgConnection:
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._store.transaction():
            yield

    def close(self) -> None:
        if self._owned:
            self._store.close()

    def __enter__(self) -> PgAux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
