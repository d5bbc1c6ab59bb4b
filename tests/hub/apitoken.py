"""API tokens for tests that read the hub's API, made the way a user makes them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hub import tokens
from hub.store import Store


def make_token(db_path: Path, name: str = "tests", role: str = "viewer") -> str:
    """A token in the hub's store (what ``cac-hub add-token`` does, in process)."""
    with Store(db_path) as store, store.transaction():
        return tokens.add_token(store.db, name, role, time.time())


def add_token_cli(config: Path, name: str = "tests", role: str = "viewer") -> str:
    """``cac-hub add-token`` as an installer runs it; the token is its last line."""
    r = subprocess.run([sys.executable, "-m", "hub.cli", "add-token", "--config", str(config),
                        "--name", name, "--role", role],
                       capture_output=True, text=True, timeout=60, check=True)
    return r.stdout.strip().splitlines()[-1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
