"""``cac-agent import-content``: install content from a USB stick (CONTRACT §1, §10).

The stick holds what ``cac-hub export-content`` wrote: ``cac-content/`` in the hub store's
own layout (``catalogue.json``, ``manifests/{id}/{version}.json``, ``blobs/ab/abc...``,
each catalogue and manifest with its ``.sig``). The import does not check anything itself:
it serves that directory on 127.0.0.1 with the hub's URLs and headers and runs the agent's
ordinary content sync against it, so a stick passes exactly the checks a download does
(the hub's Ed25519 signature on the catalogue and every manifest when ``[content]
signing_key`` is set, the catalogue's serial against replays, each file's size and sha256,
a ZIM's own checksum) and installs through the same atomic switch and search indexing.

It takes the data directory's lock, so it runs while the agent is stopped (the agent
would otherwise be writing the same cache).
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.config import AgentConfig
from agent.content import ContentCache
from common import signing
from wire.content import PACKAGE_ID_RE, SHA256_RE

EXPORT_DIR = "cac-content"
LOCK_FILE = "agent.lock"


class SideloadError(Exception):
    """The import cannot start (the message says why); nothing was changed."""


def find_export(path: Path) -> Path:
    """The export directory: ``path`` itself or ``path/cac-content``."""
    for d in (path / EXPORT_DIR, path):
        if (d / "catalogue.json").is_file():
            return d
    raise SideloadError(f"{path} holds no content export (no {EXPORT_DIR}/catalogue.json: "
                        "write one with 'cac-hub export-content --out DIR')")


def _app(root: Path) -> web.Application:
    """The hub's content URLs over an export directory (only names the hub would serve)."""

    def signed(path: Path) -> web.StreamResponse:
        if not path.is_file():
            raise web.HTTPNotFound()
        sig = path.with_name(path.name + ".sig")
        headers = {signing.HEADER: sig.read_text().strip()} if sig.is_file() else {}
        return web.Response(body=path.read_bytes(), content_type="application/json",
                            headers=headers)

    async def catalogue(_request: web.Request) -> web.StreamResponse:
        return signed(root / "catalogue.json")

    async def manifest(request: web.Request) -> web.StreamResponse:
        pid, version = request.match_info["pid"], request.match_info["version"]
        if not PACKAGE_ID_RE.fullmatch(pid) or not version.isdigit():
            raise web.HTTPNotFound()
        return signed(root / "manifests" / pid / f"{int(version)}.json")

    async def blob(request: web.Request) -> web.StreamResponse:
        sha = request.match_info["sha"]
        path = root / "blobs" / sha[:2] / sha
        if not SHA256_RE.fullmatch(sha) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)  # Range for a download the agent had begun

    app = web.Application()
    app.router.add_get("/api/v1/content/catalogue", catalogue)
    app.router.add_get("/api/v1/content/packages/{pid}/{version}", manifest)
    app.router.add_get("/content/blobs/{sha}", blob)
    return app


def _lock(data_dir: Path) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SideloadError(f"the agent is running on {data_dir}: stop it first "
                            "(systemctl stop cac-agent), import, then start it") from None
    return fd


async def import_content(config: AgentConfig, source: Path) -> dict[str, Any]:
    """Install what the export at ``source`` holds; the content status after it."""
    root = find_export(source)
    fd = _lock(config.data_dir)
    runner = web.AppRunner(_app(root), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        cfg = dataclasses.replace(config.content, hub_url=f"http://127.0.0.1:{port}",
                                  max_kbps=0, window=None, ca_file=None)
        cache = ContentCache(cfg, config.data_dir, config.tz, lambda: datetime.now(UTC))
        await cache.open()
        try:
            before = dict(cache.installed_sha)
            status = await cache.sync(force=True)
            status["imported"] = sorted(p for p, sha in cache.installed_sha.items()
                                        if before.get(p) != sha)
            status["signed"] = cfg.signing_key is not None
        finally:
            await cache.close()
        return status
    finally:
        await runner.cleanup()
        os.close(fd)


def run_import(config: AgentConfig, source: Path) -> dict[str, Any]:
    return asyncio.run(import_content(config, source))
