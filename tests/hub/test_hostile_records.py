"""Issue 16, what a CAC (or anyone with its credentials) sends the hub: Unicode digits in a
timestamp made /reports answer 500 for everyone, for good; a currency of
'=HYPERLINK(...)' landed in /reports/daily.csv as a formula. The wire schema refuses both
at ingest; the reports survive records stored before; CSV cells are escaped."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
from helpers import MosquittoBroker

from hub import commands, users
from hub.daemon import Hub
from hub.fleet import FleetState
from hub.ingest import Ingest
from hub.reports import DailyRow, daily_csv
from hub.store import Store
from tests.hub.apitoken import auth, make_token
from tests.hub.factories import CAC, hub_config, session, usage
from wire.messages import Ack, decode
from wire.topics import Kind, cac_topic

NOW = 1_700_000_000.0
PASSWORD = "hostile-pass-123"


def test_unicode_digits_and_formula_currency_are_refused_at_ingest(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.sqlite3")
    ingest = Ingest(store, FleetState(90, NOW))
    try:
        good = session(1)
        for bad in (msgspec.structs.replace(good, started_at="2024-05-01T0²:³0:00+01:00"),
                    msgspec.structs.replace(good, ended_at="２０２４-05-01T09:20:00+01:00"),
                    msgspec.structs.replace(good, currency='=HYPERLINK("http://x","y")'),
                    msgspec.structs.replace(good, at="2024-05-01T10:00:00+01:00\n")):
            out = ingest.handle(cac_topic(CAC, Kind.USAGE), usage(bad), NOW)
            assert not [o for o in out if o.topic == cac_topic(CAC, Kind.ACK)], bad
            assert store.count_records() == 0
        out = ingest.handle(cac_topic(CAC, Kind.USAGE), usage(good), NOW)
        assert [decode(o.payload, Ack).seq for o in out] == [1]
    finally:
        store.close()


def test_csv_cells_that_would_run_as_formulas_are_escaped() -> None:
    row = DailyRow(CAC, "2024-05-01", '=HYPERLINK("http://evil","x")', sessions=1,
                   revenue=-200)
    lines = daily_csv([row]).splitlines()
    assert lines[1].split(",")[2].startswith("\"'=HYPERLINK"), lines[1]
    assert lines[1].endswith(",-200")  # numbers, also negative ones, stay numbers
    for lead in "+-@\t":
        assert daily_csv([DailyRow(lead + "x", "d", "MAD")]).splitlines()[1][0] in "'\""


def test_a_command_form_with_unicode_digits_is_a_clear_error() -> None:
    with pytest.raises(commands.CommandError, match="seconds"):
        commands.build_args("message", {"text": "hi", "seconds": "²³"})


@pytest.fixture
async def hub(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[Hub]:
    cfg = hub_config(str(tmp_path / "hub"), mosquitto.port, 0, hub_id="hub-hostile")
    with Store(cfg.db_path) as store, store.transaction():
        users.add_user(store.db, "tech", "technician", PASSWORD, time.time())
        # a record stored before the schema refused it (an older hub, a restored backup)
        rec = json.loads(msgspec.json.encode(session(1)))
        rec.update(started_at="2024-05-01T0²:³0:00+01:00", ended_at="²³",
                   currency='=HYPERLINK("http://x","y")')
        store.db.execute("INSERT INTO records (id, cac_id, seq, type, at, json, received_at) "
                         "VALUES (?, ?, 1, 'session', ?, ?, 0)",
                         (rec["id"], CAC, rec["at"], json.dumps(rec)))
    h = Hub(cfg)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def test_reports_survive_a_stored_record_with_unicode_digits(hub: Hub) -> None:
    base = f"http://127.0.0.1:{hub.http_port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(base + "/login", data={"name": "tech", "password": PASSWORD,
                                                    "next": "/"}, allow_redirects=False) as r:
            assert r.status == 303
        for path in ("/reports", "/reports/hourly.csv", "/reports/daily.csv",
                     "/reports?from=2024-05-01&to=2024-05-31"):
            async with http.get(base + path) as r:
                assert r.status == 200, (path, await r.text())
                if path == "/reports/daily.csv":
                    assert "'=HYPERLINK" in await r.text()
    async with aiohttp.ClientSession(headers=auth(make_token(hub.config.db_path))) as http:
        for path in ("/api/v1/reports/daily", "/api/v1/content/packages/x/%C2%B2",
                     "/api/v1/cacs/x/sessions?after=%C2%B2", "/api/v1/cacs/x/sessions?limit=0"):
            async with http.get(base + path) as r:
                assert r.status < 500, (path, r.status, await r.text())
