"""Operator accounts: a small TinyDB file of its own, shared by the agent and its CLI.

``cac-agent add-operator`` may run while the agent is running, so this file is re-read on
every lookup and written under an exclusive lock.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from agent.auth import hash_password
from agent.storage import AtomicJSONStorage

OPERATORS_FILE = "operators.json"
ROLES = ("operator", "manager")
NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class OperatorError(ValueError):
    pass


class OperatorStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.storage = AtomicJSONStorage(self.data_dir / OPERATORS_FILE)
        self._db = TinyDB(storage=lambda: self.storage)
        self._table = self._db.table("operators", cache_size=0)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.data_dir / ".operators.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.storage.invalidate()  # another process may have written
            yield
        finally:
            os.close(fd)

    def get(self, name: str) -> dict[str, Any] | None:
        self.storage.invalidate()
        doc = self._table.get(Query().name == name)
        return None if doc is None or isinstance(doc, list) else dict(doc)

    def all(self) -> list[dict[str, Any]]:
        self.storage.invalidate()
        return [{k: v for k, v in d.items() if k != "password_hash"} for d in self._table.all()]

    def put(self, name: str, role: str, password: str, now: datetime) -> None:
        """Create or replace an account (the password is stored only as a slow salted hash)."""
        if not NAME_RE.fullmatch(name):
            raise OperatorError("operator names are 1-64 letters, digits or _.@-")
        if role not in ROLES:
            raise OperatorError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise OperatorError("the password must be at least 8 characters")
        encoded = hash_password(password)
        doc = {"name": name, "role": role, "password_hash": encoded, "active": True,
               "updated_at": now.isoformat()}
        with self._locked():
            self._table.upsert(doc, Query().name == name)

    def remove(self, name: str) -> bool:
        with self._locked():
            return bool(self._table.remove(Query().name == name))

    def set_role(self, name: str, role: str, now: datetime) -> bool:
        """Change an account's role; False if there is no such account."""
        if role not in ROLES:
            raise OperatorError(f"role must be one of {', '.join(ROLES)}")
        return self._update(name, {"role": role}, now)

    def set_active(self, name: str, active: bool, now: datetime) -> bool:
        """Deactivate (no more logins) or reactivate an account; False if there is none."""
        return self._update(name, {"active": bool(active)}, now)

    def _update(self, name: str, fields: dict[str, Any], now: datetime) -> bool:
        with self._locked():
            return bool(self._table.update({**fields, "updated_at": now.isoformat()},
                                           Query().name == name))

    def close(self) -> None:
        self._db.close()

