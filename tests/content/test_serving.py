"""Serving cached content to stations: caching headers, Range, HEAD, and no way out of the
manifest (path traversal attempts are 404)."""

from __future__ import annotations

import asyncio
import hashlib

from content_support import STARTER, Hub


async def raw_get(host: str, port: int, target: str) -> tuple[int, bytes]:
    """Send a request line exactly as written (no client-side URL normalisation)."""
    r, w = await asyncio.open_connection(host, port)
    w.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await w.drain()
    data = await asyncio.wait_for(r.read(), 10)
    w.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


async def test_caching_headers_range_and_head(hub: Hub, agent_factory) -> None:
    hub.store.add(STARTER / "sme-toolkit-fr")
    a, cache, close = await agent_factory(hub.url)
    await cache.sync()
    url = "/content/sme-toolkit-fr/livre-de-caisse.csv"
    data = (STARTER / "sme-toolkit-fr" / "livre-de-caisse.csv").read_bytes()
    etag = f'"{hashlib.sha256(data).hexdigest()}"'

    resp = await a.client.get(url)
    assert resp.status == 200 and await resp.read() == data
    assert resp.headers["ETag"] == etag
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Accept-Ranges"] == "bytes"

    resp = await a.client.get(url, headers={"If-None-Match": etag})
    assert resp.status == 304 and await resp.read() == b""

    resp = await a.client.get(url, headers={"Range": "bytes=10-19"})
    assert resp.status == 206 and await resp.read() == data[10:20]
    assert resp.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    resp = await a.client.get(url, headers={"Range": "bytes=-5"})
    assert resp.status == 206 and await resp.read() == data[-5:]
    resp = await a.client.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert resp.status == 416
    resp = await a.client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert resp.status == 200 and await resp.read() == data

    resp = await a.client.head(url)
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(data)
    assert await resp.read() == b""
    await close()


async def test_path_traversal_is_impossible(hub: Hub, agent_factory) -> None:
    hub.store.add(STARTER / "guides-admin-ar")
    a, cache, close = await agent_factory(hub.url)
    await cache.sync()
    (cache.root / "secret.txt").write_text("secret")
    host, port = a.client.server.host, a.client.server.port
    status, body = await raw_get(host, port, "/content/guides-admin-ar/index.html")
    assert status == 200 and "dir=\"rtl\"" in body.decode()
    attempts = [
        "/content/guides-admin-ar/../../secret.txt",
        "/content/guides-admin-ar/%2e%2e/%2e%2e/secret.txt",
        "/content/guides-admin-ar/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/content/guides-admin-ar/..%5c..%5csecret.txt",
        "/content/guides-admin-ar/..\\..\\secret.txt",
        "/content/guides-admin-ar//etc/passwd",
        "/content/guides-admin-ar/%2Fetc%2Fpasswd",
        "/content/..%2f..%2fsecret.txt/index.html",
        "/content/guides-admin-ar/manifest.json",
        "/content/guides-admin-ar/pending.json",
        "/content/blobs/index.html",
        "/content/guides-admin-ar/index.html%00.txt",
        "/content/nope/index.html",
        "/content/guides-admin-ar/./index.html/",
    ]
    for target in attempts:
        status, body = await raw_get(host, port, target)
        assert status in (400, 404), (target, status)
        assert b"secret" not in body and b"root:" not in body, target
    sha = next(iter(cache.installed["guides-admin-ar"]["files"]))["sha256"]
    status, _ = await raw_get(host, port, f"/content/guides-admin-ar/{sha}")
    assert status == 404
    await close()


async def test_a_blob_gone_from_disk_is_not_listed_or_served(hub: Hub, agent_factory) -> None:
    hub.store.add(STARTER / "guides-admin-fr")
    a, cache, close = await agent_factory(hub.url)
    await cache.sync()
    f = cache.installed["guides-admin-fr"]["files"][1]
    cache.blob_path(f["sha256"]).unlink()
    await close()
    # a restart notices the loss: the file is neither listed nor served, and it is re-queued
    a, cache, close = await agent_factory(hub.url)
    status, body = await a.st("s1", "GET", "/content")
    paths = [x["path"] for x in body["packages"][0]["files"]]
    assert f["path"] not in paths and len(paths) == 3
    assert (await a.client.get(f"/content/guides-admin-fr/{f['path']}")).status == 404
    assert cache.status()["queued"] == 1
    st = await cache.sync()
    assert st["queued"] == 0 and st["error"] is None
    assert (await a.client.get(f"/content/guides-admin-fr/{f['path']}")).status == 200
    await close()
