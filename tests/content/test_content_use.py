"""Content use counted at the site (CONTRACT §9b, issue 18): a citizen's GET of a page
counts one open of its package (and of that page) on the CAC's local day; a HEAD, a 404,
the rest of a ranged download or a page's styles do not; the counts reach the ledger as
content_use records (increments, one per day), exactly once, never with a search query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from content_support import STARTER, Hub

from agent.ledger import LedgerError
from wire.messages import ContentUseRecord, record_from_dict


def content_records(a) -> list[dict]:
    return [r for r in a.service.ledger.outbox() if r["type"] == "content_use"]


async def test_opens_are_counted_per_package_and_page_and_flushed_once(
        hub: Hub, agent_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.store.add(STARTER / "guides-admin-ar")
    hub.store.add(STARTER / "sme-toolkit-fr")
    a, cache, close = await agent_factory(hub.url)
    await cache.sync()
    for path in ("index.html", "index.html", "bitaqa-wataniya.html"):
        assert (await a.client.get(f"/content/guides-admin-ar/{path}")).status == 200
    assert (await a.client.head("/content/guides-admin-ar/index.html")).status == 200
    assert (await a.client.get("/content/guides-admin-ar/nope.html")).status == 404
    csv = "/content/sme-toolkit-fr/livre-de-caisse.csv"  # a download, not a page: not counted
    assert (await a.client.get(csv)).status == 200
    assert (await a.client.get("/api/v1/content/search?q=carte",
                               headers={"Authorization": f"Bearer {a.token}"})).status == 200
    # a write that fails keeps the counts for the next flush
    real = a.service.ledger.add_records

    def broken(recs):
        raise LedgerError("disk full")
    monkeypatch.setattr(a.service.ledger, "add_records", broken)
    with pytest.raises(LedgerError):
        a.service.flush_content_use()
    assert content_records(a) == []
    monkeypatch.setattr(a.service.ledger, "add_records", real)
    [rec] = a.service.flush_content_use()
    assert rec["opens"] == {"guides-admin-ar": 3}
    assert rec["pages"] == {"guides-admin-ar/index.html": 2,
                            "guides-admin-ar/bitaqa-wataniya.html": 1}
    assert rec["day"] == a.service.today()
    assert "carte" not in str(rec)  # the search query is never stored
    assert isinstance(record_from_dict(rec), ContentUseRecord)  # what the hub takes
    assert a.service.flush_content_use() == []  # nothing twice
    assert len(content_records(a)) == 1
    # the local day changes: the next tick sends the old day's counts by itself
    assert (await a.client.get("/content/guides-admin-ar/index.html")).status == 200
    a.clock.advance(timedelta(days=1).total_seconds())
    a.service.tick()
    recs = content_records(a)
    assert len(recs) == 2 and recs[1]["opens"] == {"guides-admin-ar": 1}
    assert recs[1]["day"] != a.service.today()
    await close()
