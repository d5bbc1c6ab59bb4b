"""The hub's CAC page shows that CAC's till for the last 7 days (issue 17): time, vouchers,
counter sales, prints, voids and revenue per day and the sales by item, equal to the records
the CAC sent over MQTT, in English and in Arabic. An in-process hub on a real broker."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from helpers import MosquittoBroker

from hub import users
from hub.daemon import Hub
from hub.store import Store
from tests.hub.factories import hub_config, status, usage
from tests.hub.fakecac import FakeCac
from wire.messages import SaleRecord, SaleVoidRecord
from wire.topics import Kind

CAC = "ma-souss-till-001"
PASSWORD = "dash-pass-123"


@pytest.fixture
async def hub(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[Hub]:
    cfg = hub_config(str(tmp_path / "hub"), mosquitto.port, 0, hub_id="hub-cac-till")
    with Store(cfg.db_path) as store, store.transaction():
        users.add_user(store.db, "viewer", "viewer", PASSWORD, time.time())
    h = Hub(cfg)
    await h.start()
    assert await asyncio.to_thread(h.link.wait_connected, 10)
    try:
        yield h
    finally:
        await h.stop()


def sale(seq: int, item: str, qty: int, price: int, at: datetime, *, unit: str = "item",
         print_job: str | None = None) -> SaleRecord:
    return SaleRecord(id=f"{CAC}-sale-{seq}", seq=seq, cac_id=CAC, at=at.isoformat(),
                      tz="Africa/Casablanca", item=item, quantity=qty, unit_price=price,
                      amount=qty * price, currency="MAD", unit=unit, print_job=print_job)


async def page(hub: Hub, lang: str) -> str:
    base = f"http://127.0.0.1:{hub.http_port}"
    async with aiohttp.ClientSession(headers={"Accept-Language": lang},
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{base}/login", data={"name": "viewer", "password": PASSWORD,
                                                     "next": "/"}) as resp:
            assert resp.status == 200
        async with http.get(f"{base}/cacs/{CAC}") as resp:
            assert resp.status == 200
            return await resp.text()


async def test_the_cac_page_shows_the_till_of_the_last_days(hub: Hub,
                                                            mosquitto: MosquittoBroker) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=20)  # outside the block
    letter = sale(3, "letter", 1, 1500, now)
    recs = [sale(1, "print-bw", 3, 100, now, unit="page", print_job="41"),
            sale(2, "print-bw", 2, 100, now - timedelta(days=1), unit="page",
                 print_job="42"),
            letter,
            SaleVoidRecord(id=f"{CAC}-sv-4", seq=4, cac_id=CAC, at=now.isoformat(),
                           tz="Africa/Casablanca", ref=letter.id, item="letter", quantity=1,
                           amount=-1500, currency="MAD", reason="mistake"),
            sale(5, "scan", 4, 250, old)]
    cac = FakeCac(mosquitto.host, mosquitto.port, CAC)
    try:
        cac.publish(Kind.STATUS, status())  # not retained: the broker is shared by the session
        cac.publish(Kind.USAGE, usage(*recs))
        await asyncio.to_thread(cac.wait_ack, len(recs))
    finally:
        cac.close()
    # the status went before the usage on one connection: the CAC is known once it is acked
    html = await page(hub, "en")
    assert 'id="till"' in html, re.sub(r"<[^>]+>", " ", html)[:1500]
    shown = re.search(r'id="till-revenue">([^<]+)<', html)
    # 5 pages printed (5.00) + the letter (15.00) voided (-15.00); the old scan is not in it
    assert shown is not None and shown.group(1) == "5.00", html[html.find('id="till"'):][:3000]
    items = dict(re.findall(r'<tr data-item="([^"]+)">.*?<td class="net">([^<]+)<', html))
    assert items == {"letter": "0.00", "print-bw": "5.00"}
    assert "scan" not in items
    days = re.findall(r'<tr data-day="([^"]+)">', html)
    assert len(days) == 2  # today and yesterday (the CAC's local days)
    assert "2 / 5 p / 5.00" in html  # print jobs / pages / amount in the total row
    ar = await page(hub, "ar")
    assert "الصندوق، آخر 7 أيام" in ar and 'dir="rtl"' in ar
