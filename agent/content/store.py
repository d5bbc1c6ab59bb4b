"""The content cache on disk: installed packages, verified blobs, the quota and its evictions.

Layout under ``DATA_DIR/content/``::

    blobs/ab/abcdef...           verified file bodies, named by sha256
    downloads/abcdef....part     bodies being downloaded (resumed with Range)
    packages/{id}/manifest.json  the installed manifest (exact bytes from the hub)
    state.json                   catalogue ETag, download queue (with manifests), last use
    search.sqlite                full-text index of the installed packages (agent/content/search.py)

A file reaches ``blobs/`` only after its sha256 matched (fsync, then ``os.replace``), and a
package is installed (its manifest written atomically) only when all of its blobs are
there, so a station never gets a file that failed its check. Files unchanged between
versions are not downloaded again (content addressing). The queue lives in ``state.json``,
so a restart resumes where it stopped. Disk use stays under ``quota_mb`` and above
``reserve_mb`` of free space, evicting the least recently used unpinned packages; a full
disk sets ``disk_full`` and an error in the health report and pauses downloads.

Content state never goes into the ledger. File I/O and hashing run on the cache's own
thread; the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from agent.config import ContentConfig
from agent.content.search import INDEX_FILE, SearchIndex
from agent.content.zim import ZimShelf, check_archive, is_zim, zim_file
from agent.storage import atomic_write_bytes, fsync_dir
from wire.content import SHA256_RE, ContentError, check_manifest

log = logging.getLogger("agent.content")

MB = 1024 * 1024
CHUNK = 64 * 1024
STATE_FILE = "state.json"


class SyncError(Exception):
    """A sync step failed (hub unreachable, bad answer); the message is for the health report."""


class DiskFull(SyncError):
    """No room left under the quota or above the free-space reserve."""


class QuotaExceeded(SyncError):
    """One package does not fit in the quota even after evicting every unpinned package."""


def free_bytes(path: Path) -> int:
    """Free space on the file system holding ``path`` (tests replace this)."""
    return shutil.disk_usage(path).free


def _unlink_all(paths: list[Path]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat(timespec="seconds")


class ContentStore:
    """The cache on disk (see module doc): what is installed and present, the quota, blob
    files; ``lookup()`` answers the portal routes; ``status()`` is the health dict."""

    def __init__(self, cfg: ContentConfig, data_dir: Path, tz: ZoneInfo,
                 now: Callable[[], datetime]) -> None:
        self.cfg = cfg
        self.tz = tz
        self.now = now
        self.root = data_dir / "content"
        self.blobs = self.root / "blobs"
        self.downloads = self.root / "downloads"
        self.packages_dir = self.root / "packages"
        self.state_path = self.root / STATE_FILE
        self.quota_bytes = cfg.quota_mb * MB
        self.reserve_bytes = cfg.reserve_mb * MB
        self.installed: dict[str, dict[str, Any]] = {}  # id -> manifest
        self.installed_sha: dict[str, str] = {}  # id -> sha256 of its manifest bytes
        self.index: dict[str, dict[str, dict[str, Any]]] = {}  # id -> path -> file
        self.queue: list[dict[str, Any]] = []  # {"manifest", "manifest_sha256"}
        self.present: dict[str, int] = {}  # verified blobs: sha -> size
        self.parts: dict[str, int] = {}  # partial downloads: sha -> bytes so far
        self.last_used: dict[str, str] = {}
        self.evicted: dict[str, int] = {}  # id -> version evicted for room (not re-fetched)
        self.etag: str | None = None
        self.catalogue_serial = 0  # the newest signed catalogue's serial (replays refused)
        self.last_check_at: datetime | None = None
        self.last_success_at: datetime | None = None
        self.error: str | None = None
        self.disk_full = False
        self.syncing = False
        self.counters = {"bytes_downloaded": 0, "rejected": 0, "resumed": 0, "syncs": 0}
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-content")
        self.search: SearchIndex | None = None  # opened by load()
        self.zims = ZimShelf()
        self._snapshot: dict[str, Any] = {}
        self._publish()

    # ---------------------------------------------------------------- state on disk

    def load(self) -> None:
        """Read state, installed manifests and the blobs present (on the I/O thread)."""
        for d in (self.blobs, self.downloads, self.packages_dir):
            d.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {}
        try:
            state = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            log.exception("%s is unreadable; the catalogue will be fetched again",
                          self.state_path)
        for blob in self.blobs.glob("*/*"):
            if SHA256_RE.fullmatch(blob.name) and blob.parent.name == blob.name[:2]:
                self.present[blob.name] = blob.stat().st_size
        for part in self.downloads.glob("*.part"):
            self.parts[part.name[:-5]] = part.stat().st_size
        for mpath in self.packages_dir.glob("*/manifest.json"):
            try:
                raw = mpath.read_bytes()
                m = check_manifest(json.loads(raw))
            except (OSError, ValueError) as exc:
                log.error("installed manifest %s is damaged (%s); dropping it", mpath, exc)  # noqa: TRY400
                with contextlib.suppress(OSError):
                    mpath.unlink()
                continue
            self._install_in_memory(m, hashlib.sha256(raw).hexdigest())
        self._open_search()
        self.etag = state.get("etag") if isinstance(state.get("etag"), str) else None
        serial = state.get("catalogue_serial", 0)
        self.catalogue_serial = serial if isinstance(serial, int) else 0
        for item in state.get("queue", []):
            try:
                check_manifest(item["manifest"])
                self.queue.append({"manifest": item["manifest"],
                                   "manifest_sha256": str(item["manifest_sha256"])})
            except (ContentError, KeyError, TypeError):
                log.warning("dropping a damaged queue entry; the catalogue will be re-read")
                self.etag = None
        self.last_used = {k: v for k, v in dict(state.get("last_used", {})).items()
                          if isinstance(v, str)}
        self.evicted = {k: v for k, v in dict(state.get("evicted", {})).items()
                        if isinstance(v, int)}
        for key in ("last_check_at", "last_success_at"):
            with contextlib.suppress(TypeError, ValueError):
                setattr(self, key, datetime.fromisoformat(state[key]) if state.get(key) else None)
        # an installed package whose blob went missing goes back to the queue
        for pid, m in list(self.installed.items()):
            if any(self.present.get(f["sha256"]) != f["size"] for f in m["files"]):
                log.warning("package %s lost files; queued for repair", pid)
                self._enqueue(m, self.installed_sha[pid])
        self._publish()

    def _open_search(self) -> None:
        """Open the search index (a damaged file is rebuilt) and make it match what is
        installed; search is a convenience: if it cannot be opened the cache still serves."""
        path = self.root / INDEX_FILE
        for attempt in (1, 2):
            try:
                self.search = SearchIndex(path)
                self.search.reconcile(self.installed, self.installed_sha, self.blob_path,
                                      self._pages_of)
                return
            except sqlite3.Error as exc:
                log.error("search index %s is unusable (%s); rebuilding it", path, exc)  # noqa: TRY400
                if self.search is not None:
                    with contextlib.suppress(sqlite3.Error):
                        self.search.close()
                self.search = None
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        Path(str(path) + suffix).unlink()
                if attempt == 2:
                    log.error("full-text search is off until the next start")  # noqa: TRY400

    def _pages_of(self, m: dict[str, Any]) -> Iterator[tuple[str, str, bytes, str]] | None:
        """A ZIM package's articles for the search index (None: the manifest's files)."""
        return self.zims.pages(self.blob_path(zim_file(m)["sha256"])) if is_zim(m) else None

    def zim_article(self, pid: str, path: str) -> tuple[bytes, str] | None:
        """An article of an installed ZIM package (its archive present and verified)."""
        m = self.installed.get(pid)
        if m is None or not is_zim(m):
            return None
        f = zim_file(m)
        if self.present.get(f["sha256"]) != f["size"]:
            return None
        found = self.zims.article(self.blob_path(f["sha256"]), path)
        if found is not None:
            self.last_used[pid] = iso(self.now()) or ""
        return found

    def _state_bytes(self) -> bytes:
        return json.dumps({
            "format": 1, "etag": self.etag, "catalogue_serial": self.catalogue_serial,
            "queue": self.queue, "last_used": self.last_used,
            "evicted": self.evicted, "last_check_at": iso(self.last_check_at),
            "last_success_at": iso(self.last_success_at)}, ensure_ascii=False).encode()

    async def save(self) -> None:
        data = self._state_bytes()
        try:
            await self._run(atomic_write_bytes, self.state_path, data)
        except OSError as exc:
            self._disk_error(exc)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    def _disk_error(self, exc: OSError) -> None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self.disk_full = True
            self.error = f"disk full: cannot write to {self.root}"
        log.error("content cache: %s", exc)  # noqa: TRY400

    # ---------------------------------------------------------------- status

    def _missing_bytes(self, m: dict[str, Any]) -> int:
        shas = {f["sha256"]: f["size"] for f in m["files"] if f["sha256"] not in self.present}
        return sum(max(0, size - self.parts.get(sha, 0)) for sha, size in shas.items())

    def used_bytes(self) -> int:
        return sum(self.present.values()) + sum(self.parts.values())

    def _publish(self) -> None:
        """Refresh the status snapshot (read from the service thread by the health report)."""
        self._snapshot = {
            "catalogue_etag": self.etag,
            "last_check_at": iso(self.last_check_at),
            "last_success_at": iso(self.last_success_at),
            "installed": len(self.installed),
            "queued": len(self.queue),
            "bytes_queued": sum(self._missing_bytes(q["manifest"]) for q in self.queue),
            "used_bytes": self.used_bytes(),
            "quota_bytes": self.quota_bytes,
            "error": self.error,
            "disk_full": self.disk_full,
            "syncing": self.syncing,
            "hub_url": self.cfg.hub_url,
            "evicted": sorted(self.evicted),
            **self.counters,
        }

    def status(self) -> dict[str, Any]:
        """The health report's ``content`` dict (safe to call from any thread)."""
        return dict(self._snapshot)

    # ---------------------------------------------------------------- installed packages

    def _install_in_memory(self, m: dict[str, Any], sha: str) -> None:
        self.installed[m["id"]] = m
        self.installed_sha[m["id"]] = sha
        self.index[m["id"]] = {f["path"]: f for f in m["files"]}

    def _remove_in_memory(self, pid: str) -> None:
        self.installed.pop(pid, None)
        self.installed_sha.pop(pid, None)
        self.index.pop(pid, None)

    def _enqueue(self, m: dict[str, Any], sha: str) -> None:
        self.queue = [q for q in self.queue if q["manifest"]["id"] != m["id"]]
        self.queue.append({"manifest": m, "manifest_sha256": sha})

    def blob_path(self, sha: str) -> Path:
        return self.blobs / sha[:2] / sha

    def lookup(self, pid: str, path: str) -> dict[str, Any] | None:
        """The manifest entry for a portal URL, if installed and its blob verified; never a
        file-system path built from the request."""
        entry = self.index.get(pid, {}).get(path)
        if entry is None or self.present.get(entry["sha256"]) != entry["size"]:
            return None
        self.last_used[pid] = iso(self.now()) or ""
        return entry

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for pid in sorted(self.installed):
            m = self.installed[pid]
            files = [{"path": f["path"], "size": f["size"], "sha256": f["sha256"],
                      "title": f.get("title"), "media_type": f["media_type"],
                      "url": f"/content/{pid}/{f['path']}"}
                     for f in m["files"] if self.present.get(f["sha256"]) == f["size"]]
            if is_zim(m):  # a ZIM is entered by its main page, not offered as a file
                main = (self.zims.main_path(self.blob_path(files[0]["sha256"]))
                        if files else None)
                files = [{"path": main, "size": 0, "sha256": files[0]["sha256"],
                          "title": m["title"], "media_type": "text/html; charset=utf-8",
                          "url": f"/content/{pid}/{main}"}] if main else []
            out.append({"id": pid, "version": m["version"], "title": m["title"],
                        "kind": m.get("kind", "files"),
                        "language": m["language"], "description": m.get("description", ""),
                        "files": files})
        return out

    def _write_pending_manifest(self, pid: str, raw: bytes) -> None:
        """Keep the exact manifest bytes next to the installed one until it is installed."""
        d = self.packages_dir / pid
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(d / "pending.json", raw)

    async def _uninstall(self, pid: str) -> None:
        m = self.installed.get(pid)
        if m is not None and is_zim(m):
            self.zims.forget(self.blob_path(zim_file(m)["sha256"]))
        self._remove_in_memory(pid)
        self.last_used.pop(pid, None)
        if self.search is not None:
            await self._run(self.search.drop_package, pid)
        await self._run(shutil.rmtree, self.packages_dir / pid, True)

    def _install(self, m: dict[str, Any], sha: str) -> None:
        """Switch to the new version (on the I/O thread). A ZIM archive must open and pass
        its own checksum first (ZimError: nothing is switched)."""
        if is_zim(m):
            info = check_archive(self.blob_path(zim_file(m)["sha256"]))
            log.info("zim %s: %d articles, main page %s", m["id"], info["articles"],
                     info["main"])
        d = self.packages_dir / m["id"]
        d.mkdir(parents=True, exist_ok=True)
        pending = d / "pending.json"
        try:
            raw = pending.read_bytes()
        except OSError:
            raw = b""
        if hashlib.sha256(raw).hexdigest() != sha:
            raw = json.dumps(m).encode()  # the queue's copy (the pending file went missing)
        atomic_write_bytes(d / "manifest.json", raw)  # the switch to the new version
        with contextlib.suppress(OSError):
            pending.unlink()
        if self.search is not None:
            try:
                self.search.add_package(m, sha, self.blob_path, self._pages_of(m))
            except sqlite3.Error:
                log.exception("search: indexing %s failed; it is served but not found", m["id"])

    def _referenced(self) -> set[str]:
        refs = {f["sha256"] for m in self.installed.values() for f in m["files"]}
        refs.update(f["sha256"] for q in self.queue for f in q["manifest"]["files"])
        return refs

    async def _collect_garbage(self) -> None:
        """Delete blobs and partial downloads that no installed or queued package names."""
        refs = self._referenced()
        paths = []
        for sha in [s for s in self.present if s not in refs]:
            paths.append(self.blob_path(sha))
            del self.present[sha]
        for sha in [s for s in self.parts if s not in refs]:
            paths.append(self.downloads / f"{sha}.part")
            del self.parts[sha]
        if paths:
            await self._run(_unlink_all, paths)

    async def _make_room(self, m: dict[str, Any]) -> None:
        """Evict least recently used unpinned packages until ``m`` fits in the quota and above
        the free-space reserve; raise QuotaExceeded or DiskFull if it cannot."""
        need = self._missing_bytes(m)
        while True:
            free = await self._run(free_bytes, self.root)
            over_quota = self.used_bytes() + need > self.quota_bytes
            over_disk = free - need < self.reserve_bytes
            if not over_quota and not over_disk:
                return
            victims = sorted(
                (p for p in self.installed if p not in self.cfg.pinned and p != m["id"]),
                key=lambda p: self.last_used.get(p, ""))
            if not victims:
                if over_disk:
                    raise DiskFull(
                        f"disk full: {free // MB} MB free, {need // MB} MB to download for "
                        f"{m['id']}, reserve {self.reserve_bytes // MB} MB")
                raise QuotaExceeded(
                    f"package {m['id']} ({need // MB} MB to download) does not fit in the "
                    f"{self.quota_bytes // MB} MB quota")
            victim = victims[0]
            log.warning("content cache: evicting %s (least recently used) to make room for %s",
                        victim, m["id"])
            self.evicted[victim] = self.installed[victim]["version"]
            await self._uninstall(victim)
            await self._collect_garbage()

    def _open_part(self, sha: str, size: int, offset: int) -> tuple[IO[bytes], Any, int]:
        """Open the part file for appending at ``offset`` (0: start afresh) and hash what it
        already holds."""
        path = self.downloads / f"{sha}.part"
        h = hashlib.sha256()
        f: IO[bytes]
        if offset:
            f = path.open("r+b", buffering=0)
            f.truncate(offset)
            while chunk := f.read(1 << 20):
                h.update(chunk)
            f.seek(offset)
        else:
            f = path.open("wb", buffering=0)  # writes go straight to the kernel (os.writev)
        return f, h, offset

    def _write(self, f: IO[bytes], h: Any, chunks: list[bytes]) -> None:
        """Append received chunks to the part file (one writev, no copy) and hash them,
        keeping the free-space reserve (on the I/O thread)."""
        n = sum(len(c) for c in chunks)
        free = free_bytes(self.root)
        if free - n < self.reserve_bytes:
            raise DiskFull(f"disk full: {free // MB} MB free, reserve "
                           f"{self.reserve_bytes // MB} MB; downloads paused")
        fd = f.fileno()
        views = [memoryview(c) for c in chunks]
        while views:
            done = os.writev(fd, views[:1024])  # IOV_MAX
            while views and done >= len(views[0]):
                done -= len(views[0])
                views.pop(0)
            if done:
                views[0] = views[0][done:]
        for c in chunks:
            h.update(c)

    def _finish(self, f: IO[bytes], sha: str, h: Any, total: int, size: int) -> str:
        """Flush and close the part file; if complete and its hash matches, move it into
        ``blobs/`` (fsync, atomic rename). A bad file is deleted: it is never served.
        Answers "partial", "bad" or "ok"."""
        try:
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        part = self.downloads / f"{sha}.part"
        if total < size:
            return "partial"
        if total != size or h.hexdigest() != sha:
            part.unlink()
            return "bad"
        dest = self.blob_path(sha)
        dest.parent.mkdir(exist_ok=True)
        os.replace(part, dest)
        fsync_dir(dest.parent)
        return "ok"

    def _discard(self, sha: str) -> str:
        """Delete a part file that grew past its declared size; answers "bad"."""
        (self.downloads / f"{sha}.part").unlink(missing_ok=True)
        self.blob_path(sha).unlink(missing_ok=True)  # _finish never keeps an oversize body,
        return "bad"  # but a body of the right size cut from a longer one must not stay

    async def _flush(self, f: IO[bytes], h: Any, data: list[bytes], total: int,
                     sha: str) -> int:
        if not data:
            return total
        try:
            await self._run(self._write, f, h, data)
        except OSError as exc:
            raise self._as_disk_error(exc) from None
        total += sum(len(c) for c in data)
        self.parts[sha] = total
        return total

    def _as_disk_error(self, exc: OSError) -> SyncError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(f"disk full: cannot write to {self.downloads}")
        return SyncError(f"cannot write the cache: {exc.strerror or exc}")
