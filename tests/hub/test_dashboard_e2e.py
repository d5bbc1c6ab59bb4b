"""The hub dashboard in Debian's Chromium against real processes on loopback.

One stack for the module: Mosquitto, `cac-hub` (technician and viewer accounts made with
`cac-hub add-user`), `cac-simulate` (CACs in two regions, one killed without a last will)
and a real `cac-agent`. The browser logs in, sees the fleet, the killed CAC go offline with
an alarm, sends `lock` to the real agent and sees it done (the agent's own API confirms),
and downloads the CSV report, whose totals equal the stored records.
Screenshots: test-artifacts/dashboard/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import MosquittoBroker, free_port

from tests.hub.apitoken import add_token_cli

pytestmark = pytest.mark.system

BIN = Path(sys.executable).parent
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
AGENT_CAC = "ma-rif-agent-001"
SIM_COUNT = 5
TECH, VIEWER, PASSWORD = "tech", "viewer", "hub-pass-123"
STATION_TOKEN = "dashboard-e2e-token-s1-000000"
WAIT = 30.0


def until(cond: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = cond()
        except (OSError, urllib.error.URLError, ValueError):
            got = None
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def get_json(url: str, token: str | None = None) -> Any:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.broker = MosquittoBroker(tmp / "broker")
        self.hub_port, self.agent_port = free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.victim = ""
        self.api_token = ""

    @property
    def hub(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    @property
    def agent(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}/api/v1"

    def run(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        out = (self.tmp / f"{name}.log").open("ab")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        out.close()
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        self.broker.start()
        port = self.broker.port
        hub_toml = self.tmp / "hub.toml"
        hub_toml.write_text(f"""
hub_id = "hub-dash"
data_dir = "{self.tmp / 'hub-data'}"
offline_after_seconds = 3
flush_seconds = 1
[mqtt]
host = "127.0.0.1"
port = {port}
[http]
host = "127.0.0.1"
port = {self.hub_port}
[alarms]
offline_minutes = 0
""")
        for name, role in ((TECH, "technician"), (VIEWER, "viewer")):
            subprocess.run([str(BIN / "cac-hub"), "add-user", "--config", str(hub_toml),
                            "--name", name, "--role", role, "--password-stdin"],
                           input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        self.api_token = add_token_cli(hub_toml, "e2e", "viewer")
        self.run("hub", [str(BIN / "cac-hub"), "--config", str(hub_toml)])
        until(lambda: get_json(f"{self.hub}/api/v1/cacs", self.api_token) == [], "the hub")
        agent_toml = self.tmp / "agent.toml"
        agent_toml.write_text(f"""
cac_id = "{AGENT_CAC}"
data_dir = "{self.tmp / 'agent-data'}"
timezone = "Africa/Casablanca"
health_interval_seconds = 1
[mqtt]
host = "127.0.0.1"
port = {port}
[http]
host = "127.0.0.1"
port = {self.agent_port}
[[stations]]
id = "s1"
token = "{STATION_TOKEN}"
[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 60
[uplink]
probe = ["127.0.0.1:9"]
interval_seconds = 1
timeout_seconds = 1
""")
        self.run("agent", [str(BIN / "cac-agent"), "--config", str(agent_toml)])
        self.run("sim", [str(BIN / "cac-simulate"), "--port", str(port), "--count",
                         str(SIM_COUNT), "--prefix", "ma", "--regions", "oriental,souss",
                         "--stations", "2", "--no-will-kill", "1", "--kill-after", "4",
                         "--health-interval", "1", "--usage-rate", "2000", "--seed", "3",
                         "--duration", "300"])
        line = until(lambda: [x for x in self.log("sim").splitlines() if "without a will" in x],
                     "the simulator's victim")
        self.victim = line[0].rsplit(" ", 1)[-1]

    def stop_process(self, name: str) -> None:
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def stop(self) -> None:
        for name in ("sim", "agent", "hub"):
            self.stop_process(name)
        self.broker.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("dashboard"))
    try:
        s.start()
        yield s
    finally:
        s.stop()
        print(f"\ndashboard logs in {s.tmp}; screenshots in {ARTIFACTS}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


def login(browser: Any, stack: Stack, name: str) -> Any:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{stack.hub}/")
    assert "/login" in page.url  # every page asks for a login first
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#who")
    cookie = next(c for c in ctx.cookies() if c["name"] == "cac_hub_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    return page


def sim_ids() -> list[str]:
    regions = ("oriental", "souss")
    return [f"ma-{regions[(i - 1) % 2]}-{i:04d}" for i in range(1, SIM_COUNT + 1)]


def test_the_dashboard_lists_the_simulated_cacs_by_region(stack: Stack, browser: Any) -> None:
    page = login(browser, stack, VIEWER)
    expected = set(sim_ids()) | {AGENT_CAC}
    page.wait_for_selector("#fleet[data-loaded='1']")

    def listed() -> set[str]:
        return set(page.eval_on_selector_all("#fleet tbody tr[data-id]",
                                             "rows => rows.map(r => r.dataset.id)"))

    def all_listed() -> bool:
        if expected <= listed():
            return True
        page.reload()
        page.wait_for_selector("#fleet[data-loaded='1']")
        return False

    until(all_listed, "every CAC in the table")
    regions = page.eval_on_selector_all("#regions [data-region]",
                                        "bs => bs.map(b => b.dataset.region)")
    assert {"oriental", "souss", "rif"} <= set(regions)
    # live data in the row: CPU and agent version of a simulated CAC
    cells = page.eval_on_selector_all(f"#fleet tr[data-id='{sim_ids()[0]}'] td",
                                      "tds => tds.map(td => td.textContent)")
    assert cells[8] == "sim-0.1" and cells[4] != "–"
    page.screenshot(path=str(ARTIFACTS / "fleet.png"), full_page=True)
    # filter client-side by region, then by text
    page.select_option("#f-region", "souss")
    assert listed() == {c for c in expected if "-souss-" in c}
    page.select_option("#f-region", "")
    page.fill("#f-text", "agent")
    assert listed() == {AGENT_CAC}
    page.fill("#f-text", "")
    page.check("#f-group")
    groups = page.eval_on_selector_all("#fleet tr.group th", "ths => ths.map(t => t.textContent)")
    assert [g.split(" ")[0] for g in groups] == sorted(["oriental", "souss", "rif"])
    page.context.close()


def test_a_cac_killed_without_a_will_turns_offline_and_raises_an_alarm(
        stack: Stack, browser: Any) -> None:
    page = login(browser, stack, TECH)
    victim = stack.victim
    assert victim in sim_ids()

    def offline_row() -> bool:
        page.goto(f"{stack.hub}/")
        page.wait_for_selector("#fleet[data-loaded='1']")
        return page.get_attribute(f"#fleet tr[data-id='{victim}']", "class") == "off"

    until(offline_row, f"{victim} offline on the dashboard")
    assert page.text_content(f"#fleet tr[data-id='{victim}'] td.state") == "offline"
    page.screenshot(path=str(ARTIFACTS / "fleet-offline.png"), full_page=True)
    until(lambda: page.goto(f"{stack.hub}/alarms") and page.query_selector(
        f"#alarms tr.active[data-cac='{victim}'][data-kind='offline']"), "the offline alarm")
    row = f"#alarms tr[data-cac='{victim}'][data-kind='offline']"
    page.click(f"{row} button")  # acknowledge
    page.wait_for_selector(f"{row} td.ack:has-text('{TECH} at')")
    page.screenshot(path=str(ARTIFACTS / "alarms.png"), full_page=True)
    api = get_json(f"{stack.hub}/api/v1/alarms?active=1", stack.api_token)
    mine = [a for a in api if a["cac_id"] == victim and a["kind"] == "offline"]
    assert len(mine) == 1 and mine[0]["acked_by"] == TECH and mine[0]["raised_at"]
    # the live CACs raised no offline alarm
    assert not [a for a in api if a["kind"] == "offline" and a["cac_id"] != victim]
    page.context.close()


def test_a_lock_command_round_trips_to_a_real_agent(stack: Stack, browser: Any) -> None:
    until(lambda: any(c["cac_id"] == AGENT_CAC and c["online"] and c["health"]
                      for c in get_json(f"{stack.hub}/api/v1/cacs", stack.api_token)),
          "the real agent online")
    station = get_json(f"{stack.agent}/stations/s1/session", STATION_TOKEN)
    assert station["locked"] is False

    viewer = login(browser, stack, VIEWER)
    viewer.goto(f"{stack.hub}/cacs/{AGENT_CAC}")
    assert viewer.query_selector("#command-form") is None  # a viewer only looks
    csrf = viewer.get_attribute("form.who input[name=csrf]", "value")
    refused = viewer.request.post(f"{stack.hub}/cacs/{AGENT_CAC}/commands",
                                  form={"csrf": csrf, "name": "lock"})
    assert refused.status == 403
    viewer.context.close()

    page = login(browser, stack, TECH)
    page.goto(f"{stack.hub}/cacs/{AGENT_CAC}")
    page.select_option("#cmd-name", "lock")
    page.select_option("#cmd-station", "s1")
    page.fill("input[name=reason]", "maintenance")
    page.click("#cmd-send")
    page.wait_for_selector("#command-list tr[data-command] td.status")
    # the page reloads itself while the command is pending
    page.wait_for_selector("#command-list tr[data-command] td.status.done", timeout=20_000)
    assert "locked s1" in page.text_content("#command-list tr[data-command]")
    station = get_json(f"{stack.agent}/stations/s1/session", STATION_TOKEN)
    assert station["locked"] is True and station["lock"]["by"] == "hub"
    page.screenshot(path=str(ARTIFACTS / "cac-command.png"), full_page=True)
    # the agent's next health report shows the lock on the dashboard too
    until(lambda: page.goto(f"{stack.hub}/cacs/{AGENT_CAC}") and page.query_selector(
        "#stations tr[data-station='s1'] td.locked:has-text('locked')"), "s1 shown locked")
    page.goto(f"{stack.hub}/commands")
    audit = page.text_content("#audit")
    assert "command.lock" in audit and f"{AGENT_CAC}/s1" in audit and TECH in audit
    # a forged form without the CSRF token is refused
    forged = page.request.post(f"{stack.hub}/cacs/{AGENT_CAC}/commands",
                               form={"name": "unlock"})
    assert forged.status == 403
    page.context.close()


CATALOGUE = """[[catalogue]]
id = "print-bw"
name = { fr = "Impression N&B", ar = "طباعة أبيض وأسود" }
price = 150
unit = "page"

[[catalogue]]
id = "letter"
name = { fr = "Saisie d'une lettre" }
price = 1500
unit = "item"
"""


def test_set_catalogue_from_the_cac_page_reaches_the_real_agent(
        stack: Stack, browser: Any) -> None:
    """Issue 17: a technician pushes the till's price list from the CAC page; a bad one
    (a negative price) is refused on the page, naming the key, and nothing is sent."""
    page = login(browser, stack, TECH)
    page.goto(f"{stack.hub}/cacs/{AGENT_CAC}")
    sent_before = len(page.query_selector_all("#command-list tr[data-command]"))
    page.select_option("#cmd-name", "set_catalogue")
    page.fill("textarea[name=catalogue]", CATALOGUE.replace("price = 150", "price = -150"))
    page.click("#cmd-send")
    page.wait_for_selector("#command-error")
    assert "catalogue[0].price" in (page.text_content("#command-error") or "")
    # what was typed is still there to correct
    assert "price = -150" in page.input_value("textarea[name=catalogue]")
    assert page.eval_on_selector("#cmd-name", "e => e.value") == "set_catalogue"
    page.screenshot(path=str(ARTIFACTS / "cac-set-catalogue-refused.png"), full_page=True)
    page.goto(f"{stack.hub}/cacs/{AGENT_CAC}")
    assert len(page.query_selector_all("#command-list tr[data-command]")) == sent_before

    page.select_option("#cmd-name", "set_catalogue")
    page.fill("textarea[name=catalogue]", CATALOGUE)
    page.click("#cmd-send")

    def answered() -> str | None:  # the newest row (first) once the agent has answered
        page.goto(f"{stack.hub}/cacs/{AGENT_CAC}")
        row = page.text_content("#command-list tr[data-command]") or ""
        return row if "set_catalogue" in row and "pending" not in row else None

    row = until(answered, "the set_catalogue answer")
    assert "(2 items)" in row, row
    page.screenshot(path=str(ARTIFACTS / "cac-set-catalogue.png"), full_page=True)
    stored = json.loads(next((stack.tmp / "agent-data").rglob("catalogue.json")).read_text())
    assert stored["set_by"].startswith("hub") or "hub" in stored["set_by"], stored
    assert {i["id"]: i["price"] for i in stored["catalogue"]} == {"print-bw": 150,
                                                                 "letter": 1500}
    assert stored["catalogue"][0]["name"]["ar"] == "طباعة أبيض وأسود"
    page.context.close()


def test_the_csv_report_totals_equal_the_stored_records(stack: Stack, browser: Any) -> None:
    stack.stop_process("sim")  # no more records: the store and the report must agree
    # positive signal that the hub has stored all they sent: each stopped CAC's "offline"
    # status, sent after its last records on the same connection and ingested in order
    stopped = [c for c in sim_ids() if c != stack.victim]
    until(lambda: all(get_json(f"{stack.hub}/api/v1/cacs/{c}", stack.api_token)["state"]
                      == "offline" for c in stopped), "every stopped CAC offline at the hub")
    page = login(browser, stack, VIEWER)
    resp = page.request.get(f"{stack.hub}/reports/daily.csv")
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text())))
    assert rows and {r["cac_id"] for r in rows} <= set(sim_ids()) | {AGENT_CAC}
    page.goto(f"{stack.hub}/reports")
    assert page.query_selector("table#items") and page.query_selector("a#csv-items")
    items = page.request.get(f"{stack.hub}/reports/items.csv")
    assert items.status == 200
    assert items.text().splitlines()[0].startswith("cac_id,day,currency,item,unit")
    for key in ("sessions", "session_fees", "billed_seconds", "voucher_sales_amount",
                "voids_amount", "revenue"):
        assert all(r[key].lstrip("-").isdigit() for r in rows), key
    for cac in sim_ids():
        mine = [r for r in rows if r["cac_id"] == cac]
        sessions = get_json(f"{stack.hub}/api/v1/cacs/{cac}/sessions", stack.api_token)
        assert sum(int(r["sessions"]) for r in mine) == len(sessions)
        assert sum(int(r["session_fees"]) for r in mine) == sum(s["fee"] for s in sessions)
        assert sum(int(r["billed_seconds"]) for r in mine) == \
            sum(s["billed_seconds"] for s in sessions)
        with sqlite3.connect(f"file:{stack.tmp / 'hub-data' / 'hub.sqlite3'}?mode=ro",
                             uri=True) as db:
            sales = [json.loads(j)["price"] for (j,) in db.execute(
                "SELECT json FROM records WHERE cac_id = ? AND type = 'voucher_sale'", (cac,))]
            voids = [json.loads(j)["amount"] for (j,) in db.execute(
                "SELECT json FROM records WHERE cac_id = ? AND type = 'void'", (cac,))]
        assert sum(int(r["voucher_sales_amount"]) for r in mine) == sum(sales)
        assert sum(int(r["voids_amount"]) for r in mine) == sum(voids)
        assert sum(int(r["revenue"]) for r in mine) == \
            sum(s["fee"] for s in sessions) + sum(sales) - sum(voids)
    assert sum(int(r["sessions"]) for r in rows) > 0
    page.goto(f"{stack.hub}/reports")
    total = page.text_content("#totals")
    assert str(sum(int(r["sessions"]) for r in rows)) in total
    page.screenshot(path=str(ARTIFACTS / "reports.png"), full_page=True)
    hourly = page.request.get(f"{stack.hub}/reports/hourly.csv").text()
    counts = [int(line.split(",")[1]) for line in hourly.strip().splitlines()[1:]]
    assert len(counts) == 24 and sum(counts) == sum(int(r["sessions"]) for r in rows)
    page.context.close()
    assert os.path.isdir(ARTIFACTS)


def test_the_fleet_shows_each_cacs_uplink(stack: Stack, browser: Any) -> None:
    """The real agent probes a closed port of this machine ([uplink] probe): "internet down"
    in its fleet row and on its page; the simulated CACs (no uplink in their health) show -."""
    until(lambda: any(c["cac_id"] == AGENT_CAC and (c["health"].get("uplink") or {})
                      .get("internet") is False for c in get_json(f"{stack.hub}/api/v1/cacs",
                                                                 stack.api_token)),
          "the real agent's uplink at the hub")
    page = login(browser, stack, VIEWER)
    page.goto(f"{stack.hub}/")
    page.wait_for_selector(f"#fleet tr[data-id='{AGENT_CAC}'] td.uplink.bad")
    assert page.text_content(f"#fleet tr[data-id='{AGENT_CAC}'] td.uplink") == "internet down"
    others = page.eval_on_selector_all("#fleet tr[data-id] td.uplink",
                                       "tds => tds.map(td => td.textContent)")
    assert others.count("–") == len(others) - 1
    page.goto(f"{stack.hub}/cacs/{AGENT_CAC}")
    assert page.text_content("#uplink td").startswith("internet down, since ")
    page.screenshot(path=str(ARTIFACTS / "cac-uplink.png"), full_page=True)
    page.context.close()
