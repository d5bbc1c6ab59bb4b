"""Disk quota, free-space reserve, LRU eviction of unpinned packages, full-disk alarm."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from content_support import Hub, make_package

import agent.content as agent_content
import agent.content.store as content_store

KB = 1024


async def test_lru_unpinned_package_is_evicted_for_a_new_one(
        hub: Hub, agent_factory, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for pid in ("a", "b", "pinned"):
        hub.store.add(make_package(src, pid, {"x.bin": os.urandom(300 * KB)}))
    a, cache, close = await agent_factory(hub.url, quota_mb=1, reserve_mb=0,
                                          pinned=["pinned"])
    st = await cache.sync()
    assert st["installed"] == 3 and st["error"] is None
    # stations used "a" recently, "b" not
    assert (await a.client.get("/content/a/x.bin")).status == 200
    a.clock.advance(60)
    assert (await a.client.get("/content/pinned/x.bin")).status == 200
    cache.last_used.pop("b", None)
    hub.store.add(make_package(src, "c", {"x.bin": os.urandom(300 * KB)}))
    st = await cache.sync()
    assert st["error"] is None, st
    assert sorted(cache.installed) == ["a", "c", "pinned"]
    assert st["evicted"] == ["b"]
    assert st["used_bytes"] <= st["quota_bytes"]
    assert (await a.client.get("/content/b/x.bin")).status == 404
    # the evicted package is not fetched back at the next sync (no thrashing)
    hub.log.clear()
    st = await cache.sync()
    assert sorted(cache.installed) == ["a", "c", "pinned"] and st["error"] is None
    await close()


async def test_a_package_bigger_than_the_quota_is_a_clear_error(
        hub: Hub, agent_factory, tmp_path: Path) -> None:
    hub.store.add(make_package(tmp_path / "src", "huge", {"x.bin": os.urandom(1100 * KB)}))
    hub.store.add(make_package(tmp_path / "src", "small", {"x.txt": b"small"}))
    a, cache, close = await agent_factory(hub.url, quota_mb=1, reserve_mb=0)
    st = await cache.sync()
    assert st["error"] and "does not fit in the 1 MB quota" in st["error"]
    assert st["disk_full"] is False
    assert list(cache.installed) == ["small"] and st["queued"] == 1
    await close()


async def test_full_disk_sets_the_alarm_and_pauses_until_space_returns(
        hub: Hub, agent_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.store.add(make_package(tmp_path / "src", "pkg", {"x.bin": os.urandom(200 * KB)}))
    a, cache, close = await agent_factory(hub.url, reserve_mb=250)
    monkeypatch.setattr(content_store, "free_bytes", lambda path: 100 * 1024 * 1024)
    st = await cache.sync()
    assert st["disk_full"] is True and "disk full" in st["error"]
    assert st["installed"] == 0 and st["queued"] == 1
    health = a.service.health_snapshot()["content"]
    assert health["disk_full"] is True
    assert not list((cache.root / "downloads").glob("*.part"))
    monkeypatch.setattr(content_store, "free_bytes", lambda path: 10 * 1024**3)
    st = await cache.sync()
    assert st["disk_full"] is False and st["error"] is None and st["installed"] == 1
    await close()


async def test_enospc_while_writing_is_disk_full_not_a_crash(
        hub: Hub, agent_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.store.add(make_package(tmp_path / "src", "pkg", {"x.bin": os.urandom(600 * KB)}))
    a, cache, close = await agent_factory(hub.url, reserve_mb=0)

    def no_space(self, f, h, data) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(agent_content.ContentCache, "_write", no_space)
    st = await cache.sync()
    assert st["disk_full"] is True and "disk full" in st["error"], st
    assert (await a.client.get("/content/pkg/x.bin")).status == 404
    monkeypatch.undo()
    st = await cache.sync()
    assert st["disk_full"] is False and st["installed"] == 1
    await close()
