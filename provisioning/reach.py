"""Can the broker's user reach its files? Mosquitto started as root drops to its ``user``
(default ``mosquitto``) before it opens the password, ACL and persistence files, so every
directory above them must let that user through. A 0700 parent (``mktemp -d``, anything
under /root) does not, and the broker exits at once ("Unable to open pwfile"). Checked before
anything is written, so a refused command leaves nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from provisioning.files import Owner
from provisioning.registry import ProvisionError


def _can_enter(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    """Unix permission bits: may this user search (x) a directory with this stat?"""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def blocking_dir(target: Path, owner: Owner) -> Path | None:
    """The first existing directory on the way to ``target`` (itself included, when it is an
    existing directory) that ``owner`` cannot enter, or None when the way is open. Parts of
    the path that do not exist yet are made by provisioning with modes the broker can use."""
    gids = set(os.getgrouplist(owner.name, owner.gid))
    path = target.resolve()
    for d in [*reversed(path.parents), path]:
        try:
            st = d.stat()
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode) and not _can_enter(st, owner.uid, gids):
            return d
    return None


def check_broker_reach(broker_dir: Path, owner: Owner | None) -> None:
    """Refuse, in one line naming the directory and the fix, when the broker's user could not
    reach ``broker_dir``. Nothing to check when not root (the broker keeps the caller's user)."""
    if owner is None:
        return
    # the broker dir itself is the broker's own (chowned by provisioning): check above it
    blocked = blocking_dir(broker_dir.parent, owner)
    if blocked is not None:
        raise ProvisionError(
            f"the broker runs as user {owner.name!r}, which cannot enter {blocked} "
            f"(mode {stat.S_IMODE(blocked.stat().st_mode):04o}), so it could not read its "
            f"password file under {broker_dir}: choose a --dir outside it (e.g. /srv/cac-hub), "
            f"or run 'chmod o+x {blocked}'")
