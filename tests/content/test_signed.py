"""Signed content (CONTRACT §10, issue 16): a hub that signs, an agent that holds its public
key, and a man in the middle (a real HTTP proxy on loopback) that rewrites what passes.
Whatever it changes, nothing of it is installed and the stations keep the old version."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from content_support import Hub, make_package, start_hub
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common import signing

Tamper = Callable[[str, bytes, dict[str, str]], tuple[bytes, dict[str, str]]]


class Mitm:
    """A reverse proxy to the hub whose ``tamper(path, body, headers)`` rewrites answers."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.tamper: Tamper | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fwd = {k: v for k, v in request.headers.items()
               if k in ("If-None-Match", "Range", "Accept-Encoding")}
        async with aiohttp.ClientSession() as http, \
                http.get(self.target + request.path_qs, headers=fwd) as up:
            body = await up.read()
            headers = {k: v for k, v in up.headers.items()
                       if k in ("ETag", "Content-Type", signing.HEADER, "Content-Range")}
            status = up.status
        if self.tamper is not None and status in (200, 206):
            body, headers = self.tamper(request.path, body, headers)
        return web.Response(status=status, body=body if status != 304 else None,
                            headers=headers)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def signed_hub(tmp_path: Path) -> AsyncIterator[tuple[Hub, Ed25519PrivateKey]]:
    key = Ed25519PrivateKey.generate()
    h = await start_hub(tmp_path / "hub-content", signer=key)
    yield h, key
    await h.stop()


@pytest.fixture
async def mitm(signed_hub: tuple[Hub, Ed25519PrivateKey]) -> AsyncIterator[Mitm]:
    m = Mitm(signed_hub[0].url)
    await m.start()
    yield m
    await m.stop()


def public(key: Ed25519PrivateKey) -> str:
    return signing.public_b64(key)


async def served(a: Any, path: str) -> tuple[int, bytes]:
    resp = await a.client.get(path)
    return resp.status, await resp.read()


async def test_signed_content_installs_and_an_unsigned_hub_is_refused(
        signed_hub: tuple[Hub, Ed25519PrivateKey], agent_factory: Any, tmp_path: Path) -> None:
    hub, key = signed_hub
    hub.store.add(make_package(tmp_path / "src", "pkg", {"index.html": b"<p>v1</p>"}))
    a, cache, close = await agent_factory(hub.url, signing_key=public(key))
    st = await cache.sync()
    assert st["error"] is None and st["installed"] == 1, st
    assert await served(a, "/content/pkg/index.html") == (200, b"<p>v1</p>")
    await close()
    # a hub with another key (or none) is refused by the same agent
    other = await start_hub(tmp_path / "other-hub", signer=Ed25519PrivateKey.generate())
    other.store.add(make_package(tmp_path / "src2", "evil", {"index.html": b"evil"}))
    a, cache, close = await agent_factory(other.url, data_dir=tmp_path / "agent2",
                                          signing_key=public(key))
    st = await cache.sync()
    assert st["installed"] == 0 and "wrongly signed" in st["error"], st
    await close()
    await other.stop()


async def _v1_installed_then_v2(hub: Hub, key: Ed25519PrivateKey, mitm: Mitm,
                                agent_factory: Any, tmp_path: Path) -> tuple[Any, Any, Any]:
    hub.store.add(make_package(tmp_path / "src", "pkg", {"index.html": b"<p>v1</p>"}))
    a, cache, close = await agent_factory(mitm.url, signing_key=public(key))
    st = await cache.sync()
    assert st["installed"] == 1 and st["error"] is None, st
    hub.store.add(make_package(tmp_path / "src", "pkg", {"index.html": b"<p>v2</p>"}))
    return a, cache, close


async def test_a_swapped_file_is_refused_and_stations_keep_the_old_version(
        signed_hub: tuple[Hub, Ed25519PrivateKey], mitm: Mitm, agent_factory: Any,
        tmp_path: Path) -> None:
    hub, key = signed_hub
    a, cache, close = await _v1_installed_then_v2(hub, key, mitm, agent_factory, tmp_path)

    def swap_file(path: str, body: bytes, headers: dict[str, str]
                  ) -> tuple[bytes, dict[str, str]]:
        if path.startswith("/content/blobs/"):
            return b"<p>EV</p>", headers  # same length, other bytes
        return body, headers

    mitm.tamper = swap_file
    st = await cache.sync()
    assert st["error"] and "sha256" in st["error"] and st["rejected"] >= 1, st
    assert await served(a, "/content/pkg/index.html") == (200, b"<p>v1</p>")
    mitm.tamper = None  # the path is clean again: the real v2 arrives
    st = await cache.sync()
    assert st["error"] is None, st
    assert await served(a, "/content/pkg/index.html") == (200, b"<p>v2</p>")
    await close()


async def test_a_swapped_catalogue_with_matching_checksums_is_refused(
        signed_hub: tuple[Hub, Ed25519PrivateKey], mitm: Mitm, agent_factory: Any,
        tmp_path: Path) -> None:
    """The attacker serves its own file and rewrites the manifest (sha256, size) and the
    catalogue (manifest_sha256) to match: every checksum agrees, only the signature
    cannot be made."""
    hub, key = signed_hub
    a, cache, close = await _v1_installed_then_v2(hub, key, mitm, agent_factory, tmp_path)
    evil = b"<script>steal()</script>"
    evil_sha = hashlib.sha256(evil).hexdigest()
    forged: dict[str, bytes] = {}

    def rewrite(path: str, body: bytes, headers: dict[str, str]
                ) -> tuple[bytes, dict[str, str]]:
        if path.startswith("/api/v1/content/packages/"):
            m = json.loads(body)
            for f in m["files"]:
                f["sha256"], f["size"] = evil_sha, len(evil)
            forged["manifest"] = json.dumps(m).encode()
            return forged["manifest"], headers  # the hub's signature header left as it was
        if path == "/api/v1/content/catalogue":
            c = json.loads(body)
            for p in c["packages"]:
                m = json.loads(hub.store.manifest_bytes(p["id"], p["version"]) or b"{}")
                for f in m["files"]:
                    f["sha256"], f["size"] = evil_sha, len(evil)
                p["manifest_sha256"] = hashlib.sha256(json.dumps(m).encode()).hexdigest()
            return json.dumps(c).encode(), headers
        if path.startswith("/content/blobs/"):
            return evil, headers
        return body, headers

    mitm.tamper = rewrite
    st = await cache.sync()
    assert st["error"] and "catalogue is wrongly signed" in st["error"], st
    assert await served(a, "/content/pkg/index.html") == (200, b"<p>v1</p>")

    def strip(path: str, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        body, headers = rewrite(path, body, headers)
        headers.pop(signing.HEADER, None)
        return body, headers

    mitm.tamper = strip  # the same forgery with the signatures taken off
    st = await cache.sync()
    assert st["error"] and "not signed" in st["error"], st
    assert await served(a, "/content/pkg/index.html") == (200, b"<p>v1</p>")
    assert not (cache.root / "blobs" / evil_sha[:2] / evil_sha).exists()
    assert cache.queue == []  # nothing of the forgery is waiting either
    await close()


async def test_a_replayed_old_catalogue_is_refused(
        signed_hub: tuple[Hub, Ed25519PrivateKey], mitm: Mitm, agent_factory: Any,
        tmp_path: Path) -> None:
    hub, key = signed_hub
    hub.store.add(make_package(tmp_path / "src", "pkg", {"index.html": b"<p>v1</p>"}))
    old_body, _ = hub.store.catalogue()
    old_sig = hub.store.signature(hub.store.catalogue_path)
    a, cache, close = await agent_factory(mitm.url, signing_key=public(key))
    hub.store.add(make_package(tmp_path / "src", "pkg", {"index.html": b"<p>v2</p>"}))
    assert (await cache.sync())["error"] is None
    assert await served(a, "/content/pkg/index.html") == (200, b"<p>v2</p>")

    def replay(path: str, body: bytes, headers: dict[str, str]
               ) -> tuple[bytes, dict[str, str]]:
        if path == "/api/v1/content/catalogue":  # a genuine, signed, older catalogue
            return old_body, {**headers, signing.HEADER: old_sig or "",
                              "ETag": '"replayed"'}
        return body, headers

    mitm.tamper = replay
    cache.etag = None  # as after a lost state file: the agent asks for the whole catalogue
    st = await cache.sync()
    assert st["error"] and "replay" in st["error"], st
    assert await served(a, "/content/pkg/index.html") == (200, b"<p>v2</p>")
    await close()


async def test_a_blob_longer_than_declared_is_cut_off_and_refused(
        signed_hub: tuple[Hub, Ed25519PrivateKey], mitm: Mitm, agent_factory: Any,
        tmp_path: Path) -> None:
    """Issue 16: a blob declared as 5 bytes wrote a 41.9 MB part file with quota_mb=1."""
    hub, key = signed_hub
    hub.store.add(make_package(tmp_path / "src", "pkg", {"f.txt": b"12345"}))

    def longer(path: str, body: bytes, headers: dict[str, str]
               ) -> tuple[bytes, dict[str, str]]:
        if path.startswith("/content/blobs/"):
            return body + os.urandom(5 * 1024 * 1024), headers
        return body, headers

    mitm.tamper = longer
    a, cache, close = await agent_factory(mitm.url, signing_key=public(key), quota_mb=1)
    st = await cache.sync()
    assert st["installed"] == 0 and st["rejected"] >= 1 and st["error"], st
    assert st["bytes_downloaded"] <= 5 * 4, st  # never more than declared, per attempt
    assert not list((cache.root / "downloads").glob("*.part"))
    assert (await served(a, "/content/pkg/f.txt"))[0] == 404
    await close()


async def test_without_a_key_the_agent_accepts_and_warns_once(
        signed_hub: tuple[Hub, Ed25519PrivateKey], agent_factory: Any, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    hub, _ = signed_hub
    hub.store.add(make_package(tmp_path / "src", "pkg", {"f.txt": b"demo"}))
    a, cache, close = await agent_factory(hub.url)
    assert (await cache.sync())["installed"] == 1
    await cache.sync()
    warnings = [r for r in caplog.records if "signing_key" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    await close()
