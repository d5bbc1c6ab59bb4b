"""Applications a citizen opens during a session, and the clean-up after it: every process
group started is killed and each app's listed folders are emptied, so nothing of one
citizen is left for the next."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from kiosk.config import AppSpec, dangerous_dir

log = logging.getLogger(__name__)

TERM_GRACE_SECONDS = 2.0


class Launcher:
    def __init__(self, apps: tuple[AppSpec, ...]) -> None:
        self.apps = {a.id: a for a in apps}
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def launch(self, app_id: str, **fields: str) -> None:
        """Start an app in its own process group (``{url}``-style fields are filled)."""
        spec = self.apps[app_id]
        proc = self.running.get(app_id)
        if proc is not None and proc.poll() is None:
            return
        for d in spec.wipe:
            d.mkdir(parents=True, exist_ok=True)
        argv = [a.format(**fields) if fields else a for a in spec.command]
        self.running[app_id] = subprocess.Popen(  # noqa: S603 (argv from the kiosk config)
            argv, start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log.info("started %s (pid %d)", app_id, self.running[app_id].pid)

    def launch_command(self, key: str, argv: list[str]) -> None:
        """Start a one-off command (the portal's viewer) that is closed like an app."""
        self.running[key] = subprocess.Popen(  # noqa: S603
            argv, start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def any_running(self) -> bool:
        return any(p.poll() is None for p in self.running.values())

    def close_all(self) -> None:
        """SIGTERM every group, SIGKILL what is left after a grace period."""
        procs = list(self.running.values())
        self.running.clear()
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_SECONDS
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
            _signal_group(p, signal.SIGKILL)  # children of an exited leader too
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(1.0)

    def wipe(self) -> None:
        for spec in self.apps.values():
            for d in spec.wipe:
                wipe_dir(d)

    def end_of_session(self) -> None:
        """Close every app, then empty their folders (blocking: run it off the UI thread)."""
        self.close_all()
        self.wipe()


def _signal_group(p: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, sig)


def wipe_dir(d: Path) -> None:
    """Empty ``d`` (keep the folder itself); refuses dangerous folders."""
    why = dangerous_dir(d)
    if why:
        raise ValueError(f"refusing to wipe {d}: {why}")
    if not d.is_dir() or d.is_symlink():
        return
    for child in d.iterdir():
        try:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        except OSError as exc:
            log.warning("could not remove %s: %s", child, exc)
