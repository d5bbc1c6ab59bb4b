"""The CAC's offline content cache: sync from the hub, verify, keep within a quota, serve.

Layout under ``DATA_DIR/content/``::

    blobs/ab/abcdef...           verified file bodies, named by sha256
    downloads/abcdef....part     bodies being downloaded (resumed with Range)
    packages/{id}/manifest.json  the installed manifest (exact bytes from the hub)
    state.json                   catalogue ETag, download queue (with manifests), last use

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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from agent.commands import CommandFailed
from agent.config import Band, ContentConfig
from agent.edge import COMMANDS, SERVICE, operator, station
from agent.storage import atomic_write_bytes, fsync_dir
from wire.content import SHA256_RE, ContentError, check_manifest
from wire.messages import Command

log = logging.getLogger(__name__)

MB = 1024 * 1024
CHUNK = 64 * 1024
WRITE_BATCH = 4 * 1024 * 1024  # bytes gathered before one write on the I/O thread
ATTEMPTS = 4  # per file and sync: a dropped connection resumes, a bad hash restarts
RETRY_BASE_SECONDS = 2.0
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
STARTUP_DELAY_SECONDS = 5.0  # the first sync waits for the agent to settle
COMMAND_WAIT_SECONDS = 20.0  # resync_content answers with the result if it is this quick
STATE_FILE = "state.json"
IMMUTABLE_HINT = "no-cache"  # paths are stable but their bytes change with a new version


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


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat(timespec="seconds")


class RateLimiter:
    """A token bucket in bytes per second; ``0`` means no cap."""

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second
        self.allowance = bytes_per_second
        self.last = time.monotonic()

    async def consume(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self.allowance = min(self.rate, self.allowance + (now - self.last) * self.rate)
        self.last = now
        self.allowance -= n
        if self.allowance < 0:
            await asyncio.sleep(-self.allowance / self.rate)


class ContentCache:
    """The site's content cache (see module doc). ``sync()`` runs one sync; ``run()``
    polls; ``lookup()`` answers the portal routes; ``status()`` is the health dict."""

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
        self.last_check_at: datetime | None = None
        self.last_success_at: datetime | None = None
        self.error: str | None = None
        self.disk_full = False
        self.syncing = False
        self.counters = {"bytes_downloaded": 0, "rejected": 0, "resumed": 0, "syncs": 0}
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-content")
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._snapshot: dict[str, Any] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
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
        self.etag = state.get("etag") if isinstance(state.get("etag"), str) else None
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

    def _state_bytes(self) -> bytes:
        return json.dumps({
            "format": 1, "etag": self.etag, "queue": self.queue, "last_used": self.last_used,
            "evicted": self.evicted, "last_check_at": _iso(self.last_check_at),
            "last_success_at": _iso(self.last_success_at)}, ensure_ascii=False).encode()

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
            "last_check_at": _iso(self.last_check_at),
            "last_success_at": _iso(self.last_success_at),
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
        self.last_used[pid] = _iso(self.now()) or ""
        return entry

    def listing(self) -> list[dict[str, Any]]:
        out = []
        for pid in sorted(self.installed):
            m = self.installed[pid]
            files = [{"path": f["path"], "size": f["size"], "sha256": f["sha256"],
                      "title": f.get("title"), "media_type": f["media_type"],
                      "url": f"/content/{pid}/{f['path']}"}
                     for f in m["files"] if self.present.get(f["sha256"]) == f["size"]]
            out.append({"id": pid, "version": m["version"], "title": m["title"],
                        "language": m["language"], "description": m.get("description", ""),
                        "files": files})
        return out

    # ---------------------------------------------------------------- sync

    def in_window(self) -> bool:
        if self.cfg.window is None:
            return True
        local = self.now().astimezone(self.tz).time()
        return Band(self.cfg.window[0], self.cfg.window[1], 0).contains(local)

    async def sync(self, force: bool = False) -> dict[str, Any]:
        """One sync: catalogue check, then the download queue. ``force`` ignores the window.
        Never raises for network or disk trouble: the result is in ``status()``."""
        if self.cfg.hub_url is None:
            self.error = "no [content] hub_url configured"
            self._publish()
            return self.status()
        async with self._lock:
            if not force and not self.in_window():
                return self.status()
            self.syncing = True
            self.last_check_at = self.now()
            self.counters["syncs"] += 1
            self._publish()
            try:
                await self._check_catalogue()
                await self._download_queue()
            except DiskFull as exc:
                self.disk_full = True
                self.error = str(exc)
                log.error("content sync: %s", exc)  # noqa: TRY400
            except SyncError as exc:
                self.error = str(exc)
                log.warning("content sync: %s", exc)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.error = f"hub unreachable: {type(exc).__name__}: {exc}".rstrip(": ")
                log.warning("content sync: %s", self.error)
            except OSError as exc:
                self._disk_error(exc)
                if not self.disk_full:
                    self.error = f"cannot write the cache: {exc.strerror or exc}"
            else:
                self.error = None
                self.disk_full = False
                self.last_success_at = self.now()
            finally:
                self.syncing = False
                await self.save()
                self._publish()
        return self.status()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT))
        return self._session

    async def _get_json(self, url: str, headers: dict[str, str] | None = None
                        ) -> tuple[int, bytes, str | None]:
        async with self._client().get(url, headers=headers or {}) as resp:
            if resp.status == 304:
                return 304, b"", resp.headers.get("ETag")
            if resp.status != 200:
                raise SyncError(f"hub answered {resp.status} for {url}")
            return 200, await resp.read(), resp.headers.get("ETag")

    async def _check_catalogue(self) -> None:
        hub = self.cfg.hub_url
        headers = {"If-None-Match": self.etag} if self.etag else {}
        status, body, etag = await self._get_json(f"{hub}/api/v1/content/catalogue", headers)
        if status == 304:
            return
        try:
            pkgs = json.loads(body)["packages"]
            entries = [(str(p["id"]), int(p["version"]), str(p["manifest_sha256"]))
                       for p in pkgs]
        except (ValueError, KeyError, TypeError):
            raise SyncError("the hub's catalogue is not valid") from None
        wanted = {pid for pid, _, _ in entries}
        for pid, version, msha in entries:
            if self.installed_sha.get(pid) == msha:
                continue
            if any(q["manifest_sha256"] == msha for q in self.queue):
                continue
            if self.evicted.get(pid) == version and pid not in self.cfg.pinned:
                continue
            _, raw, _ = await self._get_json(f"{hub}/api/v1/content/packages/{pid}/{version}")
            if hashlib.sha256(raw).hexdigest() != msha:
                raise SyncError(f"manifest of {pid} v{version} does not match the catalogue")
            try:
                m = check_manifest(json.loads(raw))
            except (ContentError, ValueError) as exc:
                raise SyncError(f"manifest of {pid} v{version} is invalid: {exc}") from None
            if m["id"] != pid or m["version"] != version:
                raise SyncError(f"manifest of {pid} v{version} names another package")
            self._enqueue(m, msha)
            self.evicted.pop(pid, None)
            await self._run(self._write_pending_manifest, pid, raw)
        if wanted:  # an empty catalogue (a hub starting afresh) never wipes a CAC's cache
            self.queue = [q for q in self.queue if q["manifest"]["id"] in wanted]
            for pid in [p for p in self.installed if p not in wanted]:
                log.info("package %s left the hub's catalogue; removing it", pid)
                await self._uninstall(pid)
        self.etag = etag
        await self.save()
        self._publish()

    def _write_pending_manifest(self, pid: str, raw: bytes) -> None:
        """Keep the exact manifest bytes next to the installed one until it is installed."""
        d = self.packages_dir / pid
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(d / "pending.json", raw)

    async def _uninstall(self, pid: str) -> None:
        self._remove_in_memory(pid)
        self.last_used.pop(pid, None)
        await self._run(shutil.rmtree, self.packages_dir / pid, True)

    def _order(self) -> list[dict[str, Any]]:
        pinned = [q for q in self.queue if q["manifest"]["id"] in self.cfg.pinned]
        return pinned + [q for q in self.queue if q not in pinned]

    async def _download_queue(self) -> None:
        quota_errors = []
        for item in self._order():
            m = item["manifest"]
            try:
                await self._make_room(m)
            except QuotaExceeded as exc:
                quota_errors.append(str(exc))
                continue
            shas = {f["sha256"]: f["size"] for f in m["files"]}
            for sha, size in shas.items():
                if self.present.get(sha) != size:
                    await self._fetch_blob(sha, size)
                    self._publish()
            await self._run(self._install, m, item["manifest_sha256"])
            self._install_in_memory(m, item["manifest_sha256"])
            self.queue = [q for q in self.queue if q is not item]
            self._publish()
            await self.save()
            log.info("content package %s version %d installed", m["id"], m["version"])
        await self._collect_garbage()
        if quota_errors:
            raise QuotaExceeded("; ".join(quota_errors))

    def _install(self, m: dict[str, Any], sha: str) -> None:
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

    # ---------------------------------------------------------------- one file

    async def _fetch_blob(self, sha: str, size: int) -> None:
        url = f"{self.cfg.hub_url}/content/blobs/{sha}"
        last_error = "unknown error"
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
            try:
                done = await self._download(url, sha, size)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                    TimeoutError) as exc:
                last_error = f"download of {sha[:12]} interrupted: {type(exc).__name__}"
                log.info("%s; will resume", last_error)
                continue
            if done:
                return
            last_error = f"file {sha[:12]} failed its sha256 check"
        raise SyncError(last_error)

    def _open_part(self, sha: str, size: int, offset: int) -> tuple[IO[bytes], Any, int]:
        """Open the part file for appending at ``offset`` (0: start afresh) and hash what it
        already holds."""
        path = self.downloads / f"{sha}.part"
        h = hashlib.sha256()
        f: IO[bytes]
        if offset:
            f = path.open("r+b")
            f.truncate(offset)
            while chunk := f.read(1 << 20):
                h.update(chunk)
            f.seek(offset)
        else:
            f = path.open("wb")
        return f, h, offset

    def _write(self, f: IO[bytes], h: Any, data: bytes) -> None:
        """Append to the part file, keeping the free-space reserve (on the I/O thread)."""
        free = free_bytes(self.root)
        if free - len(data) < self.reserve_bytes:
            raise DiskFull(f"disk full: {free // MB} MB free, reserve "
                           f"{self.reserve_bytes // MB} MB; downloads paused")
        f.write(data)
        h.update(data)

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

    async def _download(self, url: str, sha: str, size: int) -> bool:
        """Fetch one body into its part file, resuming; True when verified and stored."""
        have = self.parts.get(sha, 0)
        part = self.downloads / f"{sha}.part"
        if have and (not part.exists() or have > size):
            have = 0
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        limiter = RateLimiter(self.cfg.max_kbps * 125)
        async with self._client().get(url, headers=headers) as resp:
            if resp.status == 206 and have and \
                    resp.headers.get("Content-Range") == f"bytes {have}-{size - 1}/{size}":
                self.counters["resumed"] += 1
            elif resp.status == 200:
                have = 0
            elif resp.status in (502, 503, 504):
                raise aiohttp.ClientConnectionError(f"hub answered {resp.status}")
            elif resp.status == 416 and have == size:
                pass  # the part file is complete: verify it below
            else:
                raise SyncError(f"hub answered {resp.status} for blob {sha[:12]}")
            try:
                f, h, total = await self._run(self._open_part, sha, size, have)
            except OSError as exc:
                raise self._as_disk_error(exc) from None
            buf = bytearray()
            # one batch is written and hashed on the I/O thread while the next one arrives
            writing: asyncio.Future[int] | None = None
            try:
                if resp.status != 416:
                    async for chunk in resp.content.iter_any():
                        buf += chunk
                        self.counters["bytes_downloaded"] += len(chunk)
                        if len(buf) >= WRITE_BATCH:
                            data = bytes(buf)
                            buf.clear()
                            if writing is not None:
                                total = await writing
                            writing = asyncio.ensure_future(
                                self._flush(f, h, data, total, sha))
                        await limiter.consume(len(chunk))
            finally:
                # keep every byte received, also when the connection dropped mid-file
                try:
                    if writing is not None:
                        total = await writing
                    total = await self._flush(f, h, bytes(buf), total, sha)
                    verdict: str = await self._run(self._finish, f, sha, h, total, size)
                except BaseException:
                    f.close()
                    raise
                if verdict == "partial":
                    self.parts[sha] = total
                else:
                    self.parts.pop(sha, None)
                if verdict == "bad":
                    self.counters["rejected"] += 1
                    log.warning("content file %s failed its sha256 check; fetching it again",
                                sha[:12])
                elif verdict == "ok":
                    self.present[sha] = size
        return verdict == "ok"

    async def _flush(self, f: IO[bytes], h: Any, data: bytes, total: int, sha: str) -> int:
        if not data:
            return total
        try:
            await self._run(self._write, f, h, data)
        except OSError as exc:
            raise self._as_disk_error(exc) from None
        total += len(data)
        self.parts[sha] = total
        return total

    def _as_disk_error(self, exc: OSError) -> SyncError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFull(f"disk full: cannot write to {self.downloads}")
        return SyncError(f"cannot write the cache: {exc.strerror or exc}")

    # ---------------------------------------------------------------- running

    async def run(self) -> None:
        """Sync every ``poll_seconds`` (or when woken by ``resync_content``)."""
        await asyncio.sleep(STARTUP_DELAY_SECONDS)
        while True:
            try:
                await self.sync()
            except Exception:
                log.exception("content sync failed unexpectedly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.cfg.poll_seconds)
            self._wake.clear()

    async def command(self, cmd: Command) -> str:
        """``resync_content``: sync now (ignoring the window); answer with the outcome if it
        ends within COMMAND_WAIT_SECONDS, else say it is under way."""
        if self.cfg.hub_url is None:
            raise CommandFailed("this CAC has no [content] hub_url")
        task = asyncio.ensure_future(self.sync(force=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        done, _ = await asyncio.wait({task}, timeout=COMMAND_WAIT_SECONDS)
        if not done:
            return f"content sync under way ({len(self.queue)} packages queued)"
        st = task.result()
        if st["error"]:
            raise CommandFailed(f"content sync failed: {st['error']}")
        return f"content in sync: {st['installed']} packages installed"

    async def open(self) -> None:
        """Load the cache from disk (before ``run`` starts syncing)."""
        await self._run(self.load)

    async def close(self) -> None:
        """After ``run`` has stopped: end a forced sync, save the state, stop the I/O thread."""
        for t in list(self._tasks):
            t.cancel()
        if self._session is not None:
            await self._session.close()
        await self.save()
        self._io.shutdown(wait=True)


# ---------------------------------------------------------------- the agent's routes

CONTENT = web.AppKey("content_cache", ContentCache)


async def serve_file(request: web.Request) -> web.StreamResponse:
    """``/content/{package}/{path}``: only a path listed in the installed manifest whose blob
    verified; the request never becomes a file-system path. ETag = sha256, Range, HEAD."""
    cache = request.app[CONTENT]
    entry = cache.lookup(request.match_info["pid"], request.match_info["path"])
    if entry is None:
        return web.json_response({"error": "not_found", "message": "no such content"},
                                 status=404)
    sha, size = entry["sha256"], entry["size"]
    etag = f'"{sha}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE_HINT, "Accept-Ranges": "bytes",
               "X-Content-Type-Options": "nosniff"}
    inm = request.headers.get("If-None-Match")
    if inm and any(t.strip() in (etag, "*", f"W/{etag}") for t in inm.split(",")):
        return web.Response(status=304, headers=headers)
    start, stop, status = 0, size, 200
    if "Range" in request.headers and request.headers.get("If-Range", etag) == etag:
        try:
            rng = request.http_range
        except ValueError:
            rng = None
        if rng is None or (rng.start is not None and rng.start >= size and rng.start >= 0):
            return web.Response(status=416, headers={**headers,
                                                     "Content-Range": f"bytes */{size}"})
        if rng.start is not None and rng.start < 0:
            start, stop = max(0, size + rng.start), size
        else:
            start = rng.start or 0
            stop = min(size, rng.stop if rng.stop is not None else size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_type, _, charset = entry["media_type"].partition("; charset=")
    if charset:
        resp.charset = charset
    resp.content_length = stop - start
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    loop = asyncio.get_running_loop()
    with cache.blob_path(sha).open("rb") as f:  # noqa: ASYNC230 - open only; reads below
        pos = start
        while pos < stop:
            chunk = await loop.run_in_executor(None, os.pread, f.fileno(),
                                               min(CHUNK * 4, stop - pos), pos)
            if not chunk:
                break
            await resp.write(chunk)
            pos += len(chunk)
    await resp.write_eof()
    return resp


async def list_operator(request: web.Request) -> web.Response:
    await operator(request)
    cache = request.app[CONTENT]
    return web.json_response({"packages": cache.listing(), "sync": cache.status()})


async def list_station(request: web.Request) -> web.Response:
    await station(request)
    cache = request.app[CONTENT]
    return web.json_response({"packages": cache.listing(), "sync": cache.status()})


def setup(app: web.Application) -> ContentCache:
    """Give the agent's app its content cache: portal routes, listings, the sync task,
    the ``resync_content`` command and the health hook."""
    svc = app[SERVICE]
    cache = ContentCache(svc.config.content, svc.state_dir, svc.config.tz, svc.clock.now)
    app[CONTENT] = cache
    svc.content_status = cache.status
    app[COMMANDS].register("resync_content", cache.command)
    app.router.add_get("/content/{pid}/{path:.+}", serve_file)
    app.router.add_get("/api/v1/content", list_operator)
    app.router.add_get("/api/v1/stations/{sid}/content", list_station)
    return cache
