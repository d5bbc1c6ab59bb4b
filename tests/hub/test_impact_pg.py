"""The impact report on PostgreSQL ([store] url): the same records give the same report as
on SQLite (a real PostgreSQL server, tests/pgserver.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from helpers import MosquittoBroker

from hub import impact, tokens
from hub.daemon import Hub
from hub.pgstore import PgStore
from hub.store import Store
from tests.hub.apitoken import auth
from tests.hub.factories import CAC, hub_config, usage
from tests.hub.test_impact import fleet, visit
from tests.hub.test_impact_http import publish, until, url


def test_postgres_gives_the_sqlite_report(tmp_path: Path, pg_url: str) -> None:
    with Store(tmp_path / "lite.sqlite3") as lite, \
            PgStore(pg_url, tmp_path / "aux.sqlite3") as pg:
        fleet(lite)
        fleet(pg)
        assert pg.count_records() == lite.count_records() > 20
        for by in impact.BY:
            want = impact.report(lite.db, "2024-04", "2024-06", by, 5)
            assert want["rows"]
            with pg.transaction() as conn:
                assert impact.report(conn, "2024-04", "2024-06", by, 5) == want


async def test_the_api_reads_postgres(tmp_path: Path, pg_url: str,
                                      mosquitto: MosquittoBroker) -> None:
    cfg = hub_config(str(tmp_path / "hub"), mosquitto.port, 0, hub_id="hub-impact-pg",
                     store={"url": pg_url})
    hub = Hub(cfg)
    await hub.start()
    try:
        assert await asyncio.to_thread(hub.link.wait_connected, 10)
        await asyncio.to_thread(publish, mosquitto.port, CAC,
                                [usage(*[visit(i, gender="f") for i in range(1, 7)])])
        await until(lambda: hub.ingest.store.watermark(CAC) == 6, "the records")
        aux = hub.ingest.store.aux  # the API tokens are in PostgreSQL too (hub/pgaux.py)
        with aux.transaction():
            token = tokens.add_token(aux.db, "t", "viewer", time.time())
        async with aiohttp.ClientSession() as http, http.get(
                url(hub, "/api/v1/reports/impact?from=2024-05&to=2024-05"),
                headers=auth(token)) as resp:
            rep = await resp.json()
        assert resp.status == 200, rep
        assert [(r["cac"], r["visits"], r["gender"]) for r in rep["rows"]] == [
            (CAC, 6, {"f": 6})]
    finally:
        await hub.stop()
