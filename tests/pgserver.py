"""A throwaway real PostgreSQL server for tests and benches (FIELD-NOTES: PostgreSQL 15).

``PgServer.start(fsync=False)`` runs initdb in a fresh /tmp dir and the postmaster as the
``postgres`` user when we are root (initdb and postgres refuse root), on 127.0.0.1 and a free
port, with no Unix socket. ``new_database()`` gives each test its own database (a url).
``stop()`` is a fast shutdown (SIGINT) of the postmaster we started, by its PID; ``kill()``
is SIGKILL. Missing binaries raise ``PgMissing`` with the command that installs them.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

INSTALL_HINT = ("install PostgreSQL: as root run scripts/setup.sh, or apt-get install "
                "postgresql (the server binaries initdb and postgres are needed)")


class PgMissing(RuntimeError):
    pass


def find_bindir() -> Path:
    candidates: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             timeout=10, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    candidates += ["/usr/local/bin", "/usr/bin"]
    for c in candidates:
        if c and all(os.access(os.path.join(c, b), os.X_OK) for b in ("initdb", "postgres")):
            return Path(c)
    raise PgMissing(f"PostgreSQL server binaries not found (looked in {candidates}): "
                    f"{INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, root: Path, port: int, bindir: Path, fsync: bool) -> None:
        self.root, self.port, self.bindir, self.fsync = root, port, bindir, fsync
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    @classmethod
    def create(cls, *, fsync: bool = False) -> PgServer:
        bindir = find_bindir()
        root = Path(tempfile.mkdtemp(prefix="pg-"))
        os.chmod(root, 0o755)
        server = cls(root, _free_port(), bindir, fsync)
        kw = server._as_postgres()
        if kw:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres",
                        "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                       check=True, capture_output=True, timeout=120, **kw)
        server.start()
        return server

    @staticmethod
    def _as_postgres() -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        return {"user": "postgres", "group": "postgres", "extra_groups": []}

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.root / "log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.root / "data"),
             "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
             "-c", "unix_socket_directories=", "-c", f"fsync={'on' if self.fsync else 'off'}",
             "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, **self._as_postgres())
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start:\n" + self.log_text()
                                       ) from None
                time.sleep(0.05)

    def log_text(self) -> str:
        return (self.root / "log").read_text(errors="replace")

    def new_database(self) -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
