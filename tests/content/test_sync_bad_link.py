"""Content sync over a link that drops during the catalogue and manifest fetches
(tests/netproxy.py): the sync retries them like file downloads instead of failing and
waiting a whole ``poll_seconds`` (300 s by default) for the next try."""

from __future__ import annotations

from typing import Any

import pytest
from content_support import STARTER, Hub
from netproxy import LinkProxy


@pytest.mark.parametrize("request_line", [b"GET /api/v1/content/catalogue",
                                          b"GET /api/v1/content/packages/"])
async def test_a_cut_during_the_catalogue_or_a_manifest_is_retried_within_the_sync(
        hub: Hub, agent_factory: Any, request_line: bytes) -> None:
    hub.store.add(STARTER / "guides-admin-fr")
    link = LinkProxy(hub.port, rate=12_800, latency=0.02)  # 256-byte pieces
    await link.start()
    try:
        _, cache, close = await agent_factory(f"http://127.0.0.1:{link.port}")
        # the first answer and the first retry's are cut 100 bytes in; the third try works
        link.cut_after_down(100, after_up=request_line, times=2)
        st = await cache.sync()
        await close()
        assert link.stats().cuts == 2
        assert st["error"] is None, st
        assert st["installed"] == 1 and st["queued"] == 0, st
    finally:
        await link.stop()
