"""The citizen's files before the session ends: what is in the session's Downloads and
Documents, and a copy of them onto a USB stick the citizen plugged in (a removable disk that
is mounted: by udisks2, or by the image's automount)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

COPY_LIMIT_BYTES = 2 * 1024**3


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def removable_mounts(mounts: str | None = None, sys_block: Path = Path("/sys/block")
                     ) -> list[Path]:
    """Mount points of removable block devices (``/proc/mounts``, sysfs ``removable``)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return []
    found = []
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith("/dev/"):
            continue
        dev = Path(parts[0]).name
        disk = dev.rstrip("0123456789")
        if disk.endswith("p") and disk[:-1].rstrip("0123456789") != disk[:-1]:
            disk = disk[:-1]
        try:
            removable = (sys_block / disk / "removable").read_text().strip() == "1"
        except OSError:
            removable = False
        if removable:
            found.append(Path(_unescape(parts[1])))
    return found


def copy_files(files: list[Path], home: Path, target: Path) -> list[Path]:
    """Copy the citizen's ``files`` (under ``home``) into ``target/CAC-<n>``; symlinks and
    anything outside ``home`` are skipped. Returns the copies."""
    home = home.resolve()
    n = 1
    while (target / f"CAC-{n}").exists():
        n += 1
    dest = target / f"CAC-{n}"
    copied: list[Path] = []
    total = 0
    for f in files:
        if f.is_symlink() or not f.is_file():
            continue
        real = f.resolve()
        if home not in real.parents:
            continue
        total += real.stat().st_size
        if total > COPY_LIMIT_BYTES:
            log.warning("copy to USB stopped at %d bytes", COPY_LIMIT_BYTES)
            break
        out = dest / real.relative_to(home)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real, out)
        copied.append(out)
    if copied:
        os.sync()
    return copied
