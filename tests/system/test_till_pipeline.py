"""The till's records (issue 17) as real processes: Mosquitto, `cac-hub`, `cac-agent`.

Counter sales (cash and on a session's bill), a manager's void and shift closes made while
the hub is down, then a kill -9 of the agent with a shift open and records unsent: after the
restart the shift is still open, and every sale, void, session and shift record reaches the
hub's store exactly once, as the agent's ledger holds it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import MosquittoBroker, http, until

from agent.ledger import Ledger
from tests.system.test_pipeline import BIN, CAC, PASSWORD, Site

pytestmark = pytest.mark.system
TZ = ZoneInfo("Africa/Casablanca")

CATALOGUE = """
[[catalogue]]
id = "print-bw"
name = { fr = "Impression N&B", ar = "طباعة أبيض وأسود" }
price = 100
unit = "page"

[[catalogue]]
id = "letter"
name = { fr = "Saisie d'une lettre", ar = "كتابة رسالة" }
price = 1500
unit = "item"
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def site(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Site]:
    s = Site(tmp_path, broker)
    with (tmp_path / "agent.toml").open("a", encoding="utf-8") as f:
        f.write(CATALOGUE)
    subprocess.run([str(BIN / "cac-agent"), "add-operator", "--config",
                    str(tmp_path / "agent.toml"), "--name", "boss", "--role", "manager",
                    "--password-stdin"], input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True)
    yield s
    s.agent.stop()
    s.hub.stop()


def hub_records(tmp: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, id, record) of every record the hub stored for the CAC (read-only)."""
    db = tmp / "hub-data" / "hub.sqlite3"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT type, id, json FROM records WHERE cac_id = ?",
                           (CAC,)).fetchall()
    except sqlite3.OperationalError:  # the hub has not made its tables yet
        return []
    finally:
        con.close()
    return [(t, i, json.loads(j)) for t, i, j in rows]


def local_day(rec: dict[str, Any]) -> str:
    return datetime.fromisoformat(rec["closed_at"]).astimezone(TZ).date().isoformat()


def manager_token(site: Site) -> str:
    status, body = http("POST", f"{site.a}/login", {"name": "boss", "password": PASSWORD})
    assert status == 200, body
    return str(body["token"])


def test_sales_voids_and_shifts_reach_the_hub_exactly_once_across_a_kill9(
        site: Site, tmp_path: Path) -> None:
    procs = (site.agent, site.hub)
    site.start_agent()
    tok = site.tok
    status, shift1 = http("POST", f"{site.a}/shifts", {"opening_float": 20000}, tok)
    assert status == 201, shift1
    sales = []
    for qty in (3, 1, 12):
        status, sale = http("POST", f"{site.a}/sales", {"item": "print-bw", "quantity": qty},
                            tok)
        assert status == 201, sale
        sales.append(sale)
    status, s = http("POST", f"{site.a}/sessions", {"station": "s1", "minutes": None,
                                                     "profile": {"purpose": "egov",
                                                                 "gender": "f"}}, tok)
    assert status == 201
    status, billed = http("POST", f"{site.a}/sales",
                          {"item": "letter", "quantity": 1, "session": s["id"]}, tok)
    assert status == 201 and billed["session"] == s["id"]
    status, session_rec = http("POST", f"{site.a}/sessions/{s['id']}/end", {}, tok)
    assert status == 200 and session_rec["sales"] == [billed["id"]]
    assert session_rec["total"] == session_rec["fee"] + 1500
    status, void = http("POST", f"{site.a}/sales/{sales[1]['id']}/void",
                        {"reason": "printer jam"}, manager_token(site))
    assert status == 200 and void["amount"] == -100, void
    status, closed1 = http("POST", f"{site.a}/shifts/current/close",
                           {"counted_cash": 20000 + 1500 + 1500 + session_rec["fee"]}, tok)
    assert status == 200, closed1
    assert closed1["over_short"] == 0, closed1

    # the hub comes and goes; the next shift's records are unsent at the kill -9
    site.start_hub()
    until(lambda: site.backlog() == 0, "the first records at the hub", procs=procs)
    site.hub.stop()
    status, shift2 = http("POST", f"{site.a}/shifts", {"opening_float": 5000}, tok)
    assert status == 201
    status, late = http("POST", f"{site.a}/sales", {"item": "letter", "quantity": 2}, tok)
    assert status == 201
    assert site.backlog() == 1
    # a session with a profile runs through the kill -9 (resumed, CONTRACT §7) and keeps it
    status, s2 = http("POST", f"{site.a}/sessions", {"station": "s2", "minutes": None,
                                                      "profile": {"age_band": "18-24"}}, tok)
    assert status == 201, s2
    site.agent.kill9()
    site.start_agent()
    status, cur = http("GET", f"{site.a}/shifts/current", None, site.tok)
    assert status == 200 and cur["id"] == shift2["id"] and cur["cash_in"] == 3000, cur
    status, closed2 = http("POST", f"{site.a}/shifts/current/close", {"counted_cash": 7900},
                           site.tok)
    assert status == 200 and closed2["over_short"] == -100, closed2
    status, s2_rec = http("POST", f"{site.a}/sessions/{s2['id']}/end", {}, site.tok)
    assert status == 200 and s2_rec["profile"] == {"age_band": "18-24"}, s2_rec
    site.start_hub()
    until(lambda: site.backlog() == 0, "records across the kill -9 at the hub", procs=procs)

    status, agent_day = http("GET", f"{site.a}/reports/day?date={local_day(closed2)}", None,
                             site.tok)
    assert status == 200, agent_day
    site.agent.stop()
    ledger = Ledger(site.agent_data, CAC, ZoneInfo("Africa/Casablanca"), lock=False)
    mine = {(r["type"], r["id"]): r for r in ledger.records()}
    ledger.close()
    got = hub_records(tmp_path)
    keys = [(t, i) for t, i, _ in got]
    assert len(keys) == len(set(keys)), "a record reached the hub twice"
    assert set(keys) == set(mine)
    kinds = sorted(t for t, _ in keys)
    assert kinds == sorted(["sale"] * 5 + ["sale_void"] + ["session"] * 2 + ["shift"] * 2)
    profiles = {i: rec.get("profile") for t, i, rec in got if t == "session"}
    assert profiles == {s["id"]: {"purpose": "egov", "gender": "f"},
                        s2["id"]: {"age_band": "18-24"}}
    for t, i, rec in got:
        for key, value in mine[(t, i)].items():
            assert rec.get(key) == value, (t, key, rec, mine[(t, i)])
    assert {i for t, i, _ in got if t == "shift"} == {shift1["id"], shift2["id"]}
    assert late["id"] in {i for t, i, _ in got if t == "sale"}
    # the hub's daily report splits the revenue as the agent's day close does
    status, rows = http("GET", f"{site.h}/reports/daily?from={local_day(closed2)}"
                        f"&to={local_day(closed2)}", None, site.hub_token)
    assert status == 200, rows
    [row] = [r for r in rows if r["cac_id"] == CAC]
    assert row["sales"] == 5 and row["sale_voids"] == 1
    assert row["sales_amount"] == sum(a["amount"] for a in agent_day["sales"].values())
    assert row["sales_amount"] == 300 + 100 + 1200 + 1500 + 3000
    assert row["sale_voids_amount"] == -100
    assert row["revenue"] == agent_day["revenue"], (row, agent_day)
    # the session's bill at the hub, through its API
    hub_sessions = site.hub_sessions()
    assert [(r["id"], r["sales"], r["total"]) for r in hub_sessions
            if r["id"] == s["id"]] == [(s["id"], [billed["id"]], session_rec["total"])]
