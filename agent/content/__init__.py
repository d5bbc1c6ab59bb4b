"""The CAC's offline content cache: sync from the hub, verify, keep within a quota, serve.

- ``agent.content`` (this module): ``ContentCache``, the sync client (catalogue check,
  resumable verified downloads, the poll loop and the ``resync_content`` command);
- ``agent.content.store``: ``ContentStore``, the cache on disk it extends (layout, quota,
  evictions, blob files, the health status);
- ``agent.content.routes``: the agent's HTTP routes that serve and list it.

A file reaches ``blobs/`` only after its sha256 matched, and a package is installed only
when all of its blobs are there, so a station never gets a file that failed its check.
Content state never goes into the ledger. File I/O and hashing run on the cache's own
thread; the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from agent.commands import CommandFailed
from agent.config import Band, ContentConfig
from agent.content.store import (
    MB,
    ContentStore,
    DiskFull,
    QuotaExceeded,
    SyncError,
    free_bytes,
)
from agent.content.zim import ZimError
from common import signing
from wire.content import ContentError, check_manifest
from wire.messages import Command

__all__ = ["CONTENT", "MB", "ContentCache", "ContentStore", "DiskFull", "QuotaExceeded",
           "RateLimiter", "SyncError", "free_bytes"]

log = logging.getLogger(__name__)

WRITE_BATCH = 4 * 1024 * 1024  # bytes gathered before one write on the I/O thread
READ_BUFSIZE = 1024 * 1024  # aiohttp's read buffer: bigger chunks, fewer loop turns per MB
ATTEMPTS = 4  # per file and sync: a dropped connection resumes, a bad hash restarts
RETRY_BASE_SECONDS = 2.0
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
STARTUP_DELAY_SECONDS = 5.0  # the first sync waits for the agent to settle
COMMAND_WAIT_SECONDS = 20.0  # resync_content answers with the result if it is this quick
MAX_JSON_BYTES = 16 * 1024 * 1024  # a catalogue or manifest larger than this is refused


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


class ContentCache(ContentStore):
    """The site's content cache. ``sync()`` runs one sync; ``run()`` polls; ``open()`` and
    ``close()`` bracket its life (``agent.runtime``)."""

    def __init__(self, cfg: ContentConfig, data_dir: Path, tz: ZoneInfo,
                 now: Callable[[], datetime]) -> None:
        super().__init__(cfg, data_dir, tz, now)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._public_key = (signing.load_public(cfg.signing_key)
                            if cfg.signing_key is not None else None)

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
            ssl_ctx: ssl.SSLContext | bool = True
            if self.cfg.ca_file is not None:  # the hub's certificate is from our CA
                ssl_ctx = ssl.create_default_context(cafile=str(self.cfg.ca_file))
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT,
                                              sock_read=READ_TIMEOUT),
                connector=aiohttp.TCPConnector(ssl=ssl_ctx),
                read_bufsize=READ_BUFSIZE)
        return self._session

    async def _get_json(self, url: str, headers: dict[str, str] | None = None
                        ) -> tuple[int, bytes, str | None, str | None]:
        """(status, body, ETag, signature) of a catalogue or manifest; a dropped connection
        is retried like a file download (``ATTEMPTS``), so one cut does not cost a whole
        ``poll_seconds``."""
        for attempt in range(ATTEMPTS - 1):
            if attempt:
                await asyncio.sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
            try:
                return await self._get_json_once(url, headers)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                    TimeoutError) as exc:
                log.info("GET %s interrupted (%s); trying again", url, type(exc).__name__)
        await asyncio.sleep(RETRY_BASE_SECONDS * 2 ** (ATTEMPTS - 2))
        return await self._get_json_once(url, headers)

    async def _get_json_once(self, url: str, headers: dict[str, str] | None
                             ) -> tuple[int, bytes, str | None, str | None]:
        async with self._client().get(url, headers=headers or {}) as resp:
            sig = resp.headers.get(signing.HEADER)
            if resp.status == 304:
                return 304, b"", resp.headers.get("ETag"), sig
            if resp.status != 200:
                raise SyncError(f"hub answered {resp.status} for {url}")
            if (resp.content_length or 0) > MAX_JSON_BYTES:
                raise SyncError(f"the hub's answer for {url} is too large")
            # read to the end (one read() returns one chunk only), never past the cap; a
            # connection cut before Content-Length is reached raises ClientPayloadError
            chunks, got = [], 0
            async for chunk in resp.content.iter_any():
                got += len(chunk)
                if got > MAX_JSON_BYTES:
                    raise SyncError(f"the hub's answer for {url} is too large")
                chunks.append(chunk)
            body = b"".join(chunks)
            if resp.content_length is not None and len(body) != resp.content_length:
                raise aiohttp.ClientPayloadError(
                    f"{url}: {len(body)} of {resp.content_length} bytes before the cut")
            return 200, body, resp.headers.get("ETag"), sig

    def _check_signature(self, purpose: bytes, data: bytes, sig: str | None,
                         what: str) -> None:
        """With ``[content] signing_key``: refuse what the hub's key did not sign."""
        if self._public_key is None:
            return
        if not signing.verify(self._public_key, purpose, data, sig):
            self.counters["rejected"] += 1
            raise SyncError(f"{what} is {'wrongly signed' if sig else 'not signed'}; "
                            "nothing from it is installed")

    async def _check_catalogue(self) -> None:
        hub = self.cfg.hub_url
        headers = {"If-None-Match": self.etag} if self.etag else {}
        status, body, etag, sig = await self._get_json(f"{hub}/api/v1/content/catalogue",
                                                       headers)
        if status == 304:
            return
        self._check_signature(signing.CATALOGUE, body, sig, "the hub's catalogue")
        try:
            doc = json.loads(body)
            pkgs = doc["packages"]
            entries = [(str(p["id"]), int(p["version"]), str(p["manifest_sha256"]))
                       for p in pkgs]
            serial = doc.get("serial", 0)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise SyncError("the hub's catalogue is not valid") from None
        if isinstance(serial, bool) or not isinstance(serial, int):
            raise SyncError("the hub's catalogue has no valid serial")
        if self._public_key is not None and serial < self.catalogue_serial:
            self.counters["rejected"] += 1
            raise SyncError(f"the hub's catalogue is older (serial {serial}) than one already "
                            f"seen (serial {self.catalogue_serial}): a replay; ignored")
        wanted = {pid for pid, _, _ in entries}
        for pid, version, msha in entries:
            if self.installed_sha.get(pid) == msha:
                continue
            if any(q["manifest_sha256"] == msha for q in self.queue):
                continue
            if self.evicted.get(pid) == version and pid not in self.cfg.pinned:
                continue
            _, raw, _, msig = await self._get_json(
                f"{hub}/api/v1/content/packages/{pid}/{version}")
            self._check_signature(signing.MANIFEST, raw, msig, f"manifest of {pid} v{version}")
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
        self.catalogue_serial = max(self.catalogue_serial, serial)
        await self.save()
        self._publish()

    def _order(self) -> list[dict[str, Any]]:
        pinned = [q for q in self.queue if q["manifest"]["id"] in self.cfg.pinned]
        return pinned + [q for q in self.queue if q not in pinned]

    async def _download_queue(self) -> None:
        quota_errors: list[str] = []
        refused: list[str] = []
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
            try:
                await self._run(self._install, m, item["manifest_sha256"])
            except ZimError as exc:  # the bytes are the hub's, but not a usable archive
                self.counters["rejected"] += 1
                self.queue = [q for q in self.queue if q is not item]
                refused.append(f"package {m['id']} v{m['version']} refused: {exc}")
                log.error("content: %s; the installed version stays served", refused[-1])  # noqa: TRY400
                await self.save()
                continue
            self._install_in_memory(m, item["manifest_sha256"])
            self.queue = [q for q in self.queue if q is not item]
            self._publish()
            await self.save()
            log.info("content package %s version %d installed", m["id"], m["version"])
        await self._collect_garbage()
        if quota_errors:
            raise QuotaExceeded("; ".join(quota_errors + refused))
        if refused:
            raise SyncError("; ".join(refused))

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
            buf: list[bytes] = []  # chunks as received: hashed and written without a copy
            buffered = 0
            oversize = False
            # one batch is written and hashed on the I/O thread while the next one arrives
            writing: asyncio.Future[int] | None = None
            try:
                if resp.status != 416:
                    async for chunk in resp.content.iter_any():
                        if total + buffered + len(chunk) > size:
                            # more than the manifest declares: stop at once, keep nothing
                            oversize = True
                            break
                        buf.append(chunk)
                        buffered += len(chunk)
                        self.counters["bytes_downloaded"] += len(chunk)
                        if buffered >= WRITE_BATCH:
                            data, buf, buffered = buf, [], 0
                            if writing is not None:
                                total = await writing
                            writing = asyncio.ensure_future(
                                self._flush(f, h, data, total, sha))
                        if limiter.rate > 0:
                            await limiter.consume(len(chunk))
            finally:
                # keep every byte received, also when the connection dropped mid-file
                try:
                    if writing is not None:
                        total = await writing
                    total = await self._flush(f, h, buf, total, sha)
                    verdict: str = await self._run(self._finish, f, sha, h, total, size)
                    if oversize:
                        verdict = await self._run(self._discard, sha)
                except BaseException:
                    f.close()
                    raise
                if verdict == "partial":
                    self.parts[sha] = total
                else:
                    self.parts.pop(sha, None)
                if verdict == "bad":
                    self.counters["rejected"] += 1
                    log.warning("content file %s failed its %s check; fetching it again",
                                sha[:12], "size" if oversize else "sha256")
                elif verdict == "ok":
                    self.present[sha] = size
        return verdict == "ok"

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
        if self.cfg.hub_url is not None and self._public_key is None:
            log.warning("content: no [content] signing_key: content from %s is installed "
                        "without a signature check (only checksums from the same hub)",
                        self.cfg.hub_url)

    async def close(self) -> None:
        """After ``run`` has stopped: end a forced sync, save the state, stop the I/O thread."""
        for t in list(self._tasks):
            t.cancel()
        if self._session is not None:
            await self._session.close()
        await self.save()
        self._io.shutdown(wait=True)


CONTENT = web.AppKey("content_cache", ContentCache)
