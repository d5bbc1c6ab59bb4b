"""The agent's content cache against a real hub content server, through a test proxy."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from agent_support import TOKENS
from content_support import STARTER, Hub, Proxy, make_package

from agent.api import COMMANDS
from wire.messages import Command

BIG = 3 * 1024 * 1024


def blob_gets(hub: Hub) -> list[tuple[str, str, int, str | None]]:
    return [e for e in hub.log if e[1].startswith("/content/blobs/")]


async def test_first_sync_installs_then_a_second_sync_costs_one_304(
        hub: Hub, proxy: Proxy, agent_factory) -> None:
    for d in sorted(STARTER.iterdir()):
        if (d / "manifest.json").is_file():
            hub.store.add(d)
    a, cache, close = await agent_factory(proxy.url)
    st = await cache.sync()
    assert st["error"] is None, st
    assert st["installed"] == 4 and st["queued"] == 0 and st["bytes_queued"] == 0
    assert st["last_success_at"] is not None and st["catalogue_etag"]

    status, body = await a.st("s1", "GET", "/content")
    assert status == 200
    pkgs = {p["id"]: p for p in body["packages"]}
    assert set(pkgs) == {"sme-toolkit-fr", "sme-toolkit-ar", "guides-admin-fr",
                         "guides-admin-ar"}
    assert pkgs["guides-admin-ar"]["language"] == "ar"
    for p in pkgs.values():
        for f in p["files"]:
            resp = await a.client.get(f["url"])
            data = await resp.read()
            assert resp.status == 200, f["url"]
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            assert data == (STARTER / p["id"] / f["path"]).read_bytes()
            assert resp.headers["ETag"] == f'"{f["sha256"]}"'
            assert resp.headers["Content-Type"].split(";")[0] == f["media_type"].split(";")[0]
    status, body = await a.op("GET", "/content")
    assert status == 200 and len(body["packages"]) == 4 and body["sync"]["installed"] == 4

    hub.log.clear()
    proxy.reset_counts()
    st = await cache.sync()
    assert st["error"] is None
    assert hub.log == [("GET", "/api/v1/content/catalogue", 304, None)]
    assert proxy.down < 600, proxy.down  # one 304 answer, no body
    await close()


async def test_interrupted_download_resumes_without_refetching_bytes(
        hub: Hub, proxy: Proxy, agent_factory, tmp_path: Path) -> None:
    big = os.urandom(BIG)
    hub.store.add(make_package(tmp_path / "src", "videos", {"big.bin": big,
                                                            "a.txt": b"hello"}))
    a, cache, close = await agent_factory(proxy.url)
    proxy.cut_after = 1024 * 1024
    st = await cache.sync()
    assert proxy.cuts == 1
    assert st["error"] is None and st["installed"] == 1, st
    assert cache.counters["resumed"] == 1
    ranged = [e for e in blob_gets(hub) if e[3]]
    assert len(ranged) == 1 and ranged[0][2] == 206
    start = int(ranged[0][3].removeprefix("bytes=").rstrip("-"))
    # what had reached the disk before the cut was kept (bytes still in the HTTP client's
    # buffer when the connection dropped are lost: at most a few hundred KB)
    assert start >= 512 * 1024, start
    # the resumed request carried only the missing tail: wire total = the first transfer
    # (cut at 1 MB) + (size - start) + headers
    assert proxy.down <= 1024 * 1024 + (BIG - start) + 4096, proxy.down
    resp = await a.client.get("/content/videos/big.bin")
    assert resp.status == 200 and await resp.read() == big
    await close()


async def test_queue_and_part_file_survive_a_restart(
        hub: Hub, proxy: Proxy, agent_factory, tmp_path: Path) -> None:
    big = os.urandom(BIG)
    hub.store.add(make_package(tmp_path / "src", "videos", {"big.bin": big}))
    a, cache, close = await agent_factory(proxy.url)
    proxy.cut_after = 1024 * 1024
    port = proxy.port

    async def hub_gone_after_cut() -> None:
        await proxy.stop()

    # the cut happens, then the hub disappears: every retry fails to connect
    original = proxy._handle

    async def handle_then_stop(cr, cw) -> None:
        await original(cr, cw)
        if proxy.cuts:
            await hub_gone_after_cut()

    proxy._handle = handle_then_stop  # type: ignore[method-assign]
    await proxy.stop()
    await proxy.start(port)
    st = await cache.sync()
    assert st["error"] and st["queued"] == 1 and st["installed"] == 0, st
    assert st["bytes_queued"] < BIG
    parts = list((cache.root / "downloads").glob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < BIG
    kept = parts[0].stat().st_size
    await close()

    proxy._handle = original  # type: ignore[method-assign]
    await proxy.start(port)
    proxy.reset_counts()
    hub.log.clear()
    a2, cache2, close2 = await agent_factory(proxy.url)
    assert cache2.status()["queued"] == 1
    st = await cache2.sync()
    assert st["error"] is None and st["installed"] == 1, st
    ranged = [e for e in blob_gets(hub) if e[3]]
    assert ranged and ranged[0][3] == f"bytes={kept}-"
    assert proxy.down <= BIG - kept + 4096, proxy.down
    resp = await a2.client.get("/content/videos/big.bin")
    assert await resp.read() == big
    await close2()


async def test_a_corrupted_byte_is_rejected_and_fetched_again(
        hub: Hub, proxy: Proxy, agent_factory, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    hub.store.add(make_package(tmp_path / "src", "pkg", {"f.bin": data}))
    a, cache, close = await agent_factory(proxy.url)
    proxy.flip_at = 100_000
    st = await cache.sync()
    assert proxy.flips == 1
    assert st["error"] is None and st["installed"] == 1 and st["rejected"] == 1, st
    assert len(blob_gets(hub)) == 2
    resp = await a.client.get("/content/pkg/f.bin")
    assert await resp.read() == data
    await close()


async def test_a_file_that_never_verifies_is_never_served(
        hub: Hub, agent_factory, tmp_path: Path) -> None:
    hub.store.add(make_package(tmp_path / "src", "pkg", {"f.txt": b"good", "g.txt": b"ok"}))
    m = hub.store.packages()[0]
    sha = hashlib.sha256(b"good").hexdigest()
    hub.store.blob_path(sha).write_bytes(b"evil")  # the hub's copy went bad
    a, cache, close = await agent_factory(hub.url)
    st = await cache.sync()
    assert st["error"] and "sha256" in st["error"] and st["installed"] == 0, st
    assert m["id"] == "pkg"
    resp = await a.client.get("/content/pkg/f.txt")
    assert resp.status == 404
    assert not (cache.root / "blobs" / sha[:2] / sha).exists()
    assert not list((cache.root / "downloads").glob("*.part"))
    await close()


async def test_hub_gone_stations_still_get_every_file(
        hub: Hub, proxy: Proxy, agent_factory) -> None:
    hub.store.add(STARTER / "sme-toolkit-ar")
    a, cache, close = await agent_factory(proxy.url)
    assert (await cache.sync())["installed"] == 1
    await proxy.stop()
    await hub.stop()
    st = await cache.sync()
    assert st["error"] and "unreachable" in st["error"]
    assert st["installed"] == 1
    status, body = await a.st("s2", "GET", "/content")
    files = body["packages"][0]["files"]
    assert len(files) == 5
    for f in files:
        resp = await a.client.get(f["url"])
        assert resp.status == 200
        assert hashlib.sha256(await resp.read()).hexdigest() == f["sha256"]
    await close()


async def test_a_new_version_downloads_only_changed_files(
        hub: Hub, proxy: Proxy, agent_factory, tmp_path: Path) -> None:
    files = {f"f{i:02d}.txt": os.urandom(20_000) for i in range(20)}
    hub.store.add(make_package(tmp_path / "src", "pkg", files))
    a, cache, close = await agent_factory(proxy.url)
    assert (await cache.sync())["installed"] == 1
    files["f07.txt"] = os.urandom(20_000)
    r = hub.store.add(make_package(tmp_path / "src", "pkg", files))
    assert r.version == 2 and r.new_blobs == 1
    proxy.reset_counts()
    hub.log.clear()
    st = await cache.sync()
    assert st["error"] is None
    assert len(blob_gets(hub)) == 1
    assert proxy.down < 20_000 + 16_000, proxy.down
    status, body = await a.st("s1", "GET", "/content")
    assert body["packages"][0]["version"] == 2
    resp = await a.client.get("/content/pkg/f07.txt")
    assert await resp.read() == files["f07.txt"]
    old = hashlib.sha256(b"x").hexdigest()
    assert not (cache.root / "blobs" / old[:2] / old).exists()
    await close()


async def test_health_and_resync_command(hub: Hub, agent_factory) -> None:
    hub.store.add(STARTER / "guides-admin-fr")
    a, cache, close = await agent_factory(hub.url)
    runner = a.client.app[COMMANDS]
    ack = await runner.run(Command(id="c1", name="resync_content"))
    assert ack.status == "done", ack.message
    assert "1 packages installed" in ack.message
    content = a.service.health_snapshot()["content"]
    for key in ("catalogue_etag", "last_check_at", "last_success_at", "installed", "queued",
                "bytes_queued", "used_bytes", "quota_bytes", "error", "disk_full"):
        assert key in content
    assert content["installed"] == 1 and content["used_bytes"] > 0
    assert content["disk_full"] is False and content["error"] is None
    await close()


async def test_window_limits_polling_but_not_a_forced_sync(hub: Hub, agent_factory) -> None:
    hub.store.add(STARTER / "guides-admin-fr")
    # the fake clock says 09:00 UTC = 10:00 in Casablanca: outside 22:00-06:00
    a, cache, close = await agent_factory(hub.url, window="22:00-06:00", max_kbps=100000)
    st = await cache.sync()
    assert hub.log == [] and st["installed"] == 0
    st = await cache.sync(force=True)
    assert st["installed"] == 1
    a.clock.advance(13 * 3600)  # 23:00 local
    assert cache.in_window()
    await close()


async def test_station_listing_needs_the_station_token(hub: Hub, agent_factory) -> None:
    a, cache, close = await agent_factory(None)
    status, _ = await a.req("GET", "/stations/s1/content", TOKENS["s2"])
    assert status in (401, 403)
    status, body = await a.st("s1", "GET", "/content")
    assert status == 200 and body["packages"] == []
    st = await cache.sync()
    assert st["error"] == "no [content] hub_url configured"
    await close()
