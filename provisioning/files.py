"""Writing provisioning files: atomic, durable, and secrets 0600 from the first byte."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from common.durable import SECRET_MODE as SECRET_MODE
from common.durable import atomic_write_bytes

PUBLIC_MODE = 0o644
PRIVATE_DIR_MODE = 0o700


@dataclass(frozen=True)
class Owner:
    """A user the broker runs as; files it must read are handed to it (only as root)."""

    name: str
    uid: int
    gid: int


def broker_owner(name: str | None) -> Owner | None:
    """The owner for the broker's files, or None when there is nothing to change.

    Only root can hand files over; Mosquitto started as root drops to ``user`` (default
    ``mosquitto``) before it reads its password and ACL files, so they must be that user's.
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name or "mosquitto")
    except KeyError:
        return None
    if entry.pw_uid == 0:
        return None
    return Owner(entry.pw_name, entry.pw_uid, entry.pw_gid)


def make_dir(path: Path, mode: int = PRIVATE_DIR_MODE, owner: Owner | None = None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)


def write_file(path: Path, data: bytes | str, *, mode: int = SECRET_MODE,
               owner: Owner | None = None) -> None:
    """Write ``path`` atomically (temp file, fsync, rename) with ``mode`` from creation."""
    atomic_write_bytes(path, data, mode=mode,
                       owner=None if owner is None else (owner.uid, owner.gid))
