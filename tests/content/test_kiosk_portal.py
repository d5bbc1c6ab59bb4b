"""The kiosk's portal client against a real agent that synced the starter set from a hub."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from agent_support import TOKENS
from content_support import STARTER, Hub

from kiosk.client import AgentRefused, StationClient

STARTER_IDS = {"sme-toolkit-fr", "sme-toolkit-ar", "guides-admin-fr", "guides-admin-ar"}


async def test_the_kiosk_lists_and_opens_the_synced_starter_content(
        hub: Hub, agent_factory, tmp_path: Path) -> None:
    for pid in sorted(STARTER_IDS):
        hub.store.add(STARTER / pid)
    a, cache, close = await agent_factory(hub.url)
    try:
        st = await cache.sync()
        assert st["error"] is None and st["installed"] == 4
        base = str(a.client.make_url("")).rstrip("/")
        kiosk = StationClient(base, "s1", TOKENS["s1"])
        packages = await asyncio.to_thread(kiosk.content)
        assert {p["id"] for p in packages} == STARTER_IDS
        ar = next(p for p in packages if p["id"] == "guides-admin-ar")
        assert ar["language"] == "ar" and ar["title"]
        page = next(f for f in ar["files"] if f["path"].endswith(".html")
                    and f["path"] != "index.html")
        text = await asyncio.to_thread(kiosk.fetch_text, page["url"])
        assert 'dir="rtl"' in text
        assert "مثال" in text  # the guides are marked as samples
        # what the kiosk shows is byte for byte what the hub published
        assert text == (STARTER / "guides-admin-ar" / page["path"]).read_text()
        # the portal's search box: the words of a page's text, written without diacritics
        # or article, find that page first (a real agent's index of what it synced)
        hits = await asyncio.to_thread(kiosk.search, "بطاقه وطنيه", "ar")
        assert hits[0]["package"] == "guides-admin-ar"
        assert hits[0]["path"] == "bitaqa-wataniya.html" and hits[0]["snippet"]
        assert await asyncio.to_thread(kiosk.search, "؟!", "ar") == []
        # another station's token does not list this station's portal
        other = StationClient(base, "s1", TOKENS["s2"])
        with pytest.raises(AgentRefused) as refused:
            await asyncio.to_thread(other.content)
        assert refused.value.status == 403
    finally:
        await close()
