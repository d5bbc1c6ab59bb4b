"""The till (issue 17, CONTRACT §8) through the real agent API (aiohttp test server, fake
clock): the catalogue, sales (cash and on a session's bill, with concessions), voids by a
manager, shifts with expected cash and over/short, ``require_shift``, the day close, and
every bad input of the issue refused with a 4xx naming the field and nothing written."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import PASSWORD, Agent, config_dict, start_agent

from agent.config import ConfigError, parse_agent_config

CATALOGUE = [
    {"id": "print-bw", "name": {"fr": "Impression N&B", "ar": "طباعة أبيض وأسود"},
     "price": 100, "unit": "page"},
    {"id": "scan", "name": {"fr": "Numérisation", "ar": "مسح ضوئي"}, "price": 250,
     "unit": "page"},
    {"id": "letter", "name": {"fr": "Saisie d'une lettre", "ar": "كتابة رسالة"},
     "price": 1500, "unit": "item"},
]


def till_config(data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {**config_dict(data_dir), "catalogue": CATALOGUE, **extra}


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client, role="manager",
                               config=till_config(tmp_path / "data")):
        yield a


async def as_operator(agent: Agent, name: str = "omar") -> str:
    agent.service.operators.put(name, "operator", PASSWORD, agent.clock.now())
    status, body = await agent.req("POST", "/login", json={"name": name, "password": PASSWORD})
    assert status == 200
    return str(body["token"])


def ledger_files(data_dir: Path) -> dict[str, str]:
    """Every file of the ledger (and the stored catalogue) with its digest."""
    out = {}
    for p in sorted(data_dir.rglob("*")):
        rel = p.relative_to(data_dir).as_posix()
        if p.is_file() and (rel in ("ledger.json", "catalogue.json")
                            or rel.startswith(("outbox/", "archive/"))):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def raw_records(data_dir: Path) -> list[dict[str, Any]]:
    """The ledger's records read straight from its files (outbox segments and archive),
    deduplicated by (type, id), below the committed next_seq."""
    state = json.loads((data_dir / "ledger.json").read_text())["state"]["1"]
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for p in sorted([*data_dir.glob("outbox/*.jsonl"), *data_dir.glob("archive/*.jsonl")]):
        for line in p.read_text().splitlines():
            rec = json.loads(line)
            if rec["seq"] < state["next_seq"]:
                seen[(rec["type"], rec["id"])] = rec
    return list(seen.values())


# ---------------------------------------------------------------- the catalogue


def test_the_config_file_catalogue_is_checked_naming_the_key(tmp_path: Path) -> None:
    cfg = parse_agent_config(till_config(tmp_path))
    assert [i.id for i in cfg.catalogue] == ["print-bw", "scan", "letter"]
    assert cfg.catalogue[0].label("ar") == "طباعة أبيض وأسود"
    bad = [
        ([*CATALOGUE, {**CATALOGUE[0]}], "catalogue[3].id", "duplicate"),
        ([{**CATALOGUE[0], "price": -1}], "catalogue[0].price", "between"),
        ([{**CATALOGUE[0], "price": 1.5}], "catalogue[0].price", "integer"),
        ([{**CATALOGUE[0], "id": "Print BW"}], "catalogue[0].id", "[a-z0-9-]"),
        ([{**CATALOGUE[0], "unit": "kg"}], "catalogue[0].unit", "page"),
        ([{**CATALOGUE[0], "name": {}}], "catalogue[0].name", "language"),
        ([{"id": "x", "price": 1}], "catalogue[0].name", "required"),
        ([{**CATALOGUE[0], "colour": "red"}], "catalogue[0].colour", "unknown"),
    ]
    for cat, key, words in bad:
        with pytest.raises(ConfigError) as err:
            parse_agent_config(till_config(tmp_path, catalogue=cat))
        assert err.value.key == key and words in str(err.value), (cat, str(err.value))
    with pytest.raises(ConfigError) as err:
        parse_agent_config(till_config(tmp_path, require_shift="yes"))
    assert err.value.key == "require_shift"


async def test_a_manager_edits_the_catalogue_and_bad_ones_change_nothing(
        agent: Agent, tmp_path: Path) -> None:
    status, cat = await agent.op("GET", "/catalogue")
    assert status == 200 and cat["catalogue"] == CATALOGUE and cat["version"] == 0
    new = [*CATALOGUE, {"id": "seat-word", "name": {"fr": "Formation Word"}, "price": 5000,
                        "unit": "seat"}]
    status, cat = await agent.op("PUT", "/catalogue", json=new)
    assert status == 200 and cat["version"] == 1 and cat["catalogue"][-1]["id"] == "seat-word"
    before = ledger_files(tmp_path / "data")
    for body, key in (([*new, new[0]], "catalogue[4].id"),
                      ([{**new[0], "price": -100}], "catalogue[0].price"),
                      ({"nope": 1}, "catalogue")):
        status, err = await agent.op("PUT", "/catalogue", json=body)
        assert status == 400 and err["error"] == "bad_catalogue" and key in err["message"]
    assert ledger_files(tmp_path / "data") == before
    operator = await as_operator(agent)
    status, err = await agent.req("PUT", "/catalogue", operator, json=new)
    assert status == 403
    _, cat = await agent.op("GET", "/catalogue")
    assert cat["version"] == 1 and len(cat["catalogue"]) == 4


# ---------------------------------------------------------------- sales and voids


async def test_a_cash_sale_and_a_sale_on_a_session_bill(agent: Agent) -> None:
    status, sale = await agent.op("POST", "/sales", json={"item": "print-bw", "quantity": 3})
    assert status == 201, sale
    assert {k: sale[k] for k in ("item", "quantity", "unit_price", "amount", "currency",
                                 "session")} == {
        "item": "print-bw", "quantity": 3, "unit_price": 100, "amount": 300,
        "currency": "MAD", "session": None}
    assert sale["id"] and sale["at"] and sale["seq"] >= 1
    # a student's session: the sale on its bill takes the session's concession (50 %)
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None,
                                                     "category": "student"})
    status, on_bill = await agent.op("POST", "/sales", json={"item": "scan", "quantity": 3,
                                                             "session": s["id"]})
    assert status == 201 and on_bill["amount"] == 375  # 750 * 50 // 100
    assert on_bill["session"] == s["id"] and on_bill["category"] == "student"
    _, other = await agent.op("POST", "/sales", json={"item": "print-bw", "quantity": 1,
                                                      "session": s["id"], "category": None})
    agent.clock.advance(20 * 60)  # two blocks at 2.00, half price: 2.00
    _, live = await agent.op("GET", "/sessions")
    assert (live[0]["fee_so_far"], live[0]["sales_amount"], live[0]["total_so_far"]) == (
        200, 425, 625)  # the operator collects the bill, not only the time
    status, rec = await agent.op("POST", f"/sessions/{s['id']}/end")
    assert status == 200
    assert rec["fee"] == 200
    assert rec["sales"] == [on_bill["id"], other["id"]]
    assert rec["sales_amount"] == 375 + 50
    assert rec["total"] == 200 + 425
    # a session without sales keeps the record it always had
    _, s2 = await agent.op("POST", "/sessions", json={"station": "s2", "minutes": 15})
    agent.clock.advance(15 * 60)
    _, rec2 = await agent.op("POST", f"/sessions/{s2['id']}/end")
    assert "sales" not in rec2 and "total" not in rec2


async def test_a_manager_voids_a_sale_once_and_a_bill_loses_it(
        agent: Agent, tmp_path: Path) -> None:
    _, cash = await agent.op("POST", "/sales", json={"item": "letter", "quantity": 1})
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
    _, billed = await agent.op("POST", "/sales", json={"item": "print-bw", "quantity": 2,
                                                       "session": s["id"]})
    operator = await as_operator(agent)
    status, err = await agent.req("POST", f"/sales/{cash['id']}/void", operator,
                                  json={"reason": "wrong item"})
    assert status == 403
    status, v = await agent.op("POST", f"/sales/{cash['id']}/void", json={"reason": "typo"})
    assert status == 200, v
    assert v["type"] == "sale_void" and v["amount"] == -1500 and v["ref"] == cash["id"]
    assert v["cash"] is True and v["seq"] > cash["seq"]
    status, v2 = await agent.op("POST", f"/sales/{billed['id']}/void",
                                json={"reason": "misprint"})
    assert status == 200 and v2["cash"] is False and v2["amount"] == -200
    before = ledger_files(tmp_path / "data")
    for target, code, status_want in ((cash["id"], "cannot_void", 409),
                                      (v["id"], "cannot_void", 409),
                                      ("0" * 32, "unknown_sale", 404)):
        status, err = await agent.op("POST", f"/sales/{target}/void", json={"reason": "again"})
        assert (status, err["error"]) == (status_want, code), err
        assert "id" in err["message"]
    status, err = await agent.op("POST", f"/sales/{billed['id']}/void", json={"reason": " "})
    assert status == 400 and "reason" in err["message"]
    assert ledger_files(tmp_path / "data") == before
    agent.clock.advance(10 * 60)
    _, rec = await agent.op("POST", f"/sessions/{s['id']}/end")
    assert "sales" not in rec  # the voided sale left the bill


async def test_bad_sales_are_refused_naming_the_field_and_write_nothing(
        agent: Agent, tmp_path: Path) -> None:
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 15})
    agent.clock.advance(15 * 60 + 5)
    await agent.op("GET", "/sessions")  # its time is up: it closes
    data = tmp_path / "data"
    before = ledger_files(data)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"item": "caviar", "quantity": 1}, 400, "item"),
        ({"quantity": 1}, 400, "item"),
        ({"item": "print-bw", "quantity": 0}, 400, "quantity"),
        ({"item": "print-bw", "quantity": -2}, 400, "quantity"),
        ({"item": "print-bw", "quantity": 1.5}, 400, "quantity"),
        ({"item": "print-bw", "quantity": "2"}, 400, "quantity"),
        ({"item": "print-bw", "quantity": 10**9}, 400, "quantity"),
        ({"item": "print-bw", "quantity": True}, 400, "quantity"),
        ({"item": "print-bw", "quantity": 1, "session": s["id"]}, 404, "session"),
        ({"item": "print-bw", "quantity": 1, "session": "nope"}, 404, "session"),
        ({"item": "print-bw", "quantity": 1, "category": "pensioner"}, 400, "category"),
    ]
    for body, want, field in cases:
        status, err = await agent.op("POST", "/sales", json=body)
        assert status == want, (body, err)
        assert field in err["message"], (body, err)
    assert ledger_files(data) == before


# ---------------------------------------------------------------- shifts


async def test_a_shift_counts_the_cash_and_says_over_or_short(
        agent: Agent, tmp_path: Path) -> None:
    data = tmp_path / "data"
    status, err = await agent.op("POST", "/shifts/current/close", json={"counted_cash": 0})
    assert status == 409 and err["error"] == "no_open_shift"
    status, shift = await agent.op("POST", "/shifts", json={"opening_float": 20000})
    assert status == 201 and shift["operator"] == "amina" and shift["opening_float"] == 20000
    status, err = await agent.op("POST", "/shifts", json={"opening_float": 0})
    assert status == 409
    await agent.op("POST", "/sales", json={"item": "print-bw", "quantity": 5})  # +500
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 30})  # +400
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
    await agent.op("POST", "/sales", json={"item": "letter", "quantity": 1, "session": s["id"]})
    agent.clock.advance(14 * 60)
    _, rec = await agent.op("POST", f"/sessions/{s['id']}/end")  # +200 +1500
    assert rec["total"] == 1700
    _, cash = await agent.op("POST", "/sales", json={"item": "scan", "quantity": 2})  # +500
    await agent.op("POST", f"/sales/{cash['id']}/void", json={"reason": "refund"})  # -500
    await agent.op("POST", f"/vouchers/{v['code']}/void", json={"reason": "refund"})  # -400
    status, cur = await agent.op("GET", "/shifts/current")
    assert status == 200
    assert cur["cash_in"] == 500 + 400 + 1700 + 500
    assert cur["expected_cash"] == 20000 + 3100 - 900
    before = ledger_files(data)
    for bad in (12.5, "2200", -1, None):
        status, err = await agent.op("POST", "/shifts/current/close", json={"counted_cash": bad})
        assert status == 400 and "counted_cash" in err["message"], (bad, err)
    assert ledger_files(data) == before
    status, closed = await agent.op("POST", "/shifts/current/close",
                                    json={"counted_cash": 22150})
    assert status == 200, closed
    assert closed["expected_cash"] == 22200 and closed["over_short"] == -50
    assert closed["counted_cash"] == 22150 and closed["closed_at"]
    shifts = [r for r in raw_records(data) if r["type"] == "shift"]
    assert len(shifts) == 1 and shifts[0]["over_short"] == -50
    status, err = await agent.op("GET", "/shifts/current")
    assert status == 409
    # hand over: the next operator opens with what was counted
    omar = await as_operator(agent)
    status, nxt = await agent.req("POST", "/shifts", omar, json={"opening_float": 22150})
    assert status == 201 and nxt["operator"] == "omar"


async def test_require_shift_refuses_money_outside_a_shift(
        tmp_path: Path, aiohttp_client: Any) -> None:
    data = tmp_path / "data"
    async for agent in start_agent(data, aiohttp_client,
                                   config=till_config(data, require_shift=True)):
        before = ledger_files(data)
        for path, body in (("/sales", {"item": "print-bw", "quantity": 1}),
                           ("/vouchers", {"minutes": 30}),
                           ("/sessions", {"station": "s1", "minutes": 15})):
            status, err = await agent.op("POST", path, json=body)
            assert (status, err["error"]) == (409, "no_open_shift"), (path, err)
        assert ledger_files(data) == before
        await agent.op("POST", "/shifts", json={"opening_float": 0})
        status, _ = await agent.op("POST", "/sales", json={"item": "print-bw", "quantity": 1})
        assert status == 201


# ---------------------------------------------------------------- the day close


async def test_the_day_close_equals_the_ledger_files_to_the_centime(
        agent: Agent, tmp_path: Path) -> None:
    data = tmp_path / "data"
    await agent.op("POST", "/shifts", json={"opening_float": 10000})
    _, a = await agent.op("POST", "/sales", json={"item": "print-bw", "quantity": 7})
    await agent.op("POST", "/sales", json={"item": "scan", "quantity": 3,
                                           "category": "student"})
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 60})
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None,
                                                     "category": "student"})
    await agent.op("POST", "/sales", json={"item": "letter", "quantity": 1, "session": s["id"]})
    agent.clock.advance(47 * 60 + 13)
    await agent.op("POST", f"/sessions/{s['id']}/end")
    await agent.op("POST", f"/sales/{a['id']}/void", json={"reason": "paper jam"})
    await agent.op("POST", f"/vouchers/{v['code']}/void", json={"reason": "unused"})
    await agent.op("POST", "/shifts/current/close", json={"counted_cash": 11000})
    day = agent.clock.now().astimezone(agent.service.tz).date().isoformat()
    status, rep = await agent.op("GET", f"/reports/day?date={day}")
    assert status == 200, rep

    recs = [r for r in raw_records(data) if r["at"][:10] == day]
    fees = sum(r["fee"] for r in recs if r["type"] == "session")
    vouchers = sum(r["price"] for r in recs if r["type"] == "voucher_sale")
    sales: dict[str, dict[str, int]] = {}
    for r in recs:
        if r["type"] == "sale":
            line = sales.setdefault(r["item"], {"quantity": 0, "amount": 0})
            line["quantity"] += r["quantity"]
            line["amount"] += r["amount"]
    voids = (sum(r["amount"] for r in recs if r["type"] == "sale_void")
             - sum(r["amount"] for r in recs if r["type"] == "void"))
    assert rep["sessions"]["fees"] == fees == 400  # 4 blocks at 2.00, half price
    assert rep["vouchers"] == {"count": 1, "amount": vouchers} and vouchers == 800
    assert rep["sales"] == sales == {"letter": {"quantity": 1, "amount": 750},
                                     "print-bw": {"quantity": 7, "amount": 700},
                                     "scan": {"quantity": 3, "amount": 375}}
    assert rep["voids"] == {"count": 2, "amount": voids} and voids == -700 - 800
    assert rep["revenue"] == fees + vouchers + 700 + 375 + 750 + voids == 1525
    [shift] = rep["shifts"]
    # cash: 700 + 375 + 800 + (400 + 750), less 700 and 800 given back
    assert shift["expected_cash"] == 10000 + 3025 - 1500
    assert shift["over_short"] == 11000 - 11525
    status, err = await agent.op("GET", "/reports/day?date=2026-13-01")
    assert status == 400 and "date" in err["message"]


async def test_the_hub_pushes_a_catalogue_checked_like_the_file(
        agent: Agent, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from agent.commands import CommandRunner
    from wire.messages import Command

    new = [{"id": "copy", "name": {"fr": "Photocopie", "ar": "نسخ"}, "price": 50,
            "unit": "page"}]
    with ThreadPoolExecutor(max_workers=1) as executor:
        runner = CommandRunner(agent.service, executor)
        bad = await runner.run(Command(id="c1", name="set_catalogue",
                                       args={"catalogue": [{**new[0], "price": -5}]}))
        assert bad.status == "failed" and "catalogue[0].price" in bad.message
        missing = await runner.run(Command(id="c2", name="set_catalogue"))
        assert missing.status == "failed" and "catalogue" in missing.message
        good = await runner.run(Command(id="c3", name="set_catalogue",
                                        args={"catalogue": new}))
        assert good.status == "done", good
    _, cat = await agent.op("GET", "/catalogue")
    assert cat["catalogue"] == new and cat["set_by"] == "hub"
    status, sale = await agent.op("POST", "/sales", json={"item": "copy", "quantity": 4})
    assert status == 201 and sale["amount"] == 200
    status, err = await agent.op("POST", "/sales", json={"item": "print-bw", "quantity": 1})
    assert status == 400 and err["error"] == "unknown_item"


async def test_an_edit_of_the_file_wins_over_the_catalogue_set_at_run_time(
        tmp_path: Path, aiohttp_client: Any) -> None:
    data = tmp_path / "data"
    edited = [{"id": "copy", "name": {"fr": "Photocopie"}, "price": 50, "unit": "page"}]
    async for agent in start_agent(data, aiohttp_client, role="manager",
                                   config=till_config(data)):
        status, _ = await agent.op("PUT", "/catalogue", json=edited)
        assert status == 200
    async for agent in start_agent(data, aiohttp_client, role="manager",
                                   config=till_config(data)):  # same file: the edit stays
        _, cat = await agent.op("GET", "/catalogue")
        assert cat["catalogue"] == edited and cat["source"] == "edited"
    changed = [{**CATALOGUE[0], "price": 120}]
    async for agent in start_agent(data, aiohttp_client, role="manager",
                                   config=till_config(data, catalogue=changed)):
        _, cat = await agent.op("GET", "/catalogue")
        assert cat["catalogue"] == changed and cat["source"] == "config"


async def test_print_release_without_cups_configured_is_a_404_not_a_fault(agent: Agent) -> None:
    for method, path in (("GET", "/print/jobs"), ("POST", "/print/jobs/1/release"),
                         ("POST", "/print/jobs/1/cancel")):
        status, err = await agent.op(method, path)
        assert (status, err["error"]) == (404, "printing_off"), (path, err)
    status, err = await agent.st("s1", "GET", "/print/jobs")
    assert status == 404
