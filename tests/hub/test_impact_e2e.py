"""The impact page in Debian's Chromium, in English, French and Arabic, against a real
`cac-hub` fed by a real Mosquitto: `cac-simulate` CACs (profiles, vouchers used again,
content_use records) for this month, and three earlier months of one CAC's sessions
published as its agent would. Screenshots: test-artifacts/hub/impact-*.png.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as mqtt
import pytest
from helpers import MosquittoBroker, free_port
from paho.mqtt.enums import CallbackAPIVersion

from hub import impact
from tests.hub.apitoken import add_token_cli
from tests.hub.factories import usage
from tests.hub.test_dashboard_e2e import BIN, CHROMIUM, CHROMIUM_ARGS, get_json, until
from tests.hub.test_impact import seat_sale, visit
from wire.messages import Record
from wire.topics import Kind, cac_topic

pytestmark = pytest.mark.system

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "hub"
HISTORY_CAC = "ma-oriental-history-001"
PASSWORD = "impact-pass-123"


def months_back(n: int) -> list[str]:
    now = datetime.now(UTC)
    i = now.year * 12 + now.month - 1
    return [impact.month_name(j) for j in range(i - n, i + 1)]


def history(port: int) -> int:
    """Three earlier months of a CAC with more women each month, published with QoS 1."""
    recs: list[Record] = []
    seq = itertools.count(1)
    for k, month in enumerate(months_back(3)[:3]):
        for i in range(30):
            recs.append(visit(next(seq), HISTORY_CAC, ended=f"{month}-{i % 27 + 1:02d}T10:00:00"
                              "+00:00", voucher=f"h{i % 12}" if i % 2 else None,
                              gender="f" if i < 10 + 5 * k else "m",
                              purpose=("egov", "job", "school")[i % 3],
                              age_band=("18-24", "25-34")[i % 2]))
        recs.append(seat_sale(next(seq), "word-basics", 8 + k, HISTORY_CAC,
                              at=f"{month}-10T09:00:00+00:00"))
        recs.append(seat_sale(next(seq), "cv-writing", 3, HISTORY_CAC,
                              at=f"{month}-12T09:00:00+00:00"))
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"agent-{HISTORY_CAC}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for i in range(0, len(recs), 50):
            c.publish(cac_topic(HISTORY_CAC, Kind.USAGE), usage(*recs[i:i + 50]),
                      qos=1).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()
    return sum(1 for r in recs if r.__struct_config__.tag == "session")


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.broker = MosquittoBroker(tmp / "broker")
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.token = ""

    @property
    def hub(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, name: str, args: list[str]) -> None:
        with (self.tmp / f"{name}.log").open("ab") as out:
            self.procs.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL))

    def start(self) -> None:
        self.broker.start()
        toml = self.tmp / "hub.toml"
        toml.write_text(f"""
hub_id = "hub-impact"
data_dir = "{self.tmp / 'hub-data'}"
offline_after_seconds = 30
[mqtt]
host = "127.0.0.1"
port = {self.broker.port}
[http]
host = "127.0.0.1"
port = {self.port}
[reports]
min_cell = 5
""")
        subprocess.run([str(BIN / "cac-hub"), "add-user", "--config", str(toml), "--name",
                        "viewer", "--role", "viewer", "--password-stdin"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        self.token = add_token_cli(toml, "e2e", "viewer")
        self.run("hub", [str(BIN / "cac-hub"), "--config", str(toml)])
        until(lambda: get_json(f"{self.hub}/api/v1/cacs", self.token) == [], "the hub")
        self.run("sim", [str(BIN / "cac-simulate"), "--port", str(self.broker.port),
                         "--count", "4", "--prefix", "ma", "--regions", "oriental,souss",
                         "--stations", "2", "--health-interval", "5", "--usage-rate",
                         "20000", "--seed", "7", "--duration", "300"])

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.broker.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("impact"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_the_impact_page_in_three_languages(stack: Stack) -> None:
    from playwright.sync_api import sync_playwright

    n = history(stack.broker.port)
    months = months_back(3)
    query = f"from={months[0]}&to={months[-1]}"

    def report(by: str) -> dict[str, Any]:
        got: dict[str, Any] = get_json(f"{stack.hub}/api/v1/reports/impact?{query}&by={by}",
                                       stack.token)
        return got

    def filled() -> bool:
        rows = report("cac")["rows"]
        hist = sum(r["visits"] for r in rows if r["cac"] == HISTORY_CAC)
        live = [r for r in rows if r["month"] == months[-1] and isinstance(r["visits"], int)
                and r["visits"] >= 40 and r["content"]]
        return hist == n and len(live) == 4
    until(filled, "the history and 4 busy simulated CACs in the report")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     timeout=60_000)
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{stack.hub}/reports/impact?{query}&by=region")
            page.fill("input[name=name]", "viewer")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#impact")
            shots = {}
            for lang, title, women in (("en", "Impact", "Share of women among visits"),
                                       ("fr", "Impact", "Part des femmes parmi les visites"),
                                       ("ar", "الأثر", "نسبة النساء من الزيارات")):
                nxt = quote(f"/reports/impact?{query}&by=region", safe="")
                page.goto(f"{stack.hub}/lang?to={lang}&next={nxt}")
                page.wait_for_selector("#impact")
                assert page.get_attribute("html", "dir") == ("rtl" if lang == "ar" else "ltr")
                assert page.text_content("h1") == title
                assert page.locator(f"svg[aria-label='{women}']").count() == 1
                # the nav links here, the table has a row per month and region
                assert page.locator("nav a.here").get_attribute("href") == "/reports/impact"
                rows = page.eval_on_selector_all(
                    "#impact tr[data-month]", "rs => rs.map(r => [r.dataset.month, "
                    "r.dataset.group, r.querySelector('.visits').textContent])")
                rep = report("region")  # the month under way grows while we look
                want = [[r["month"], r["region"], str(r["visits"])] for r in rep["rows"]]
                assert [r[:2] for r in rows] == [r[:2] for r in want]
                assert [r for r in rows if r[0] != months[-1]] == [
                    r for r in want if r[0] != months[-1]]
                # the share-of-women chart has a point for each month of the history
                assert page.locator("svg[aria-label] circle").count() >= 4
                assert page.evaluate("() => document.documentElement.scrollWidth - "
                                     "window.innerWidth") <= 0  # no sideways scrolling
                path = ARTIFACTS / f"impact-{lang}.png"
                page.screenshot(path=str(path), full_page=True)
                page.locator("#impact tr[data-month]").last.screenshot(
                    path=str(ARTIFACTS / f"impact-{lang}-row.png"))
                shots[lang] = path
            seats = [r["seats"] for r in report("cac")["rows"] if r["cac"] == HISTORY_CAC]
            assert seats == [{"word-basics": 8 + k, "cv-writing": "<5"} for k in range(3)]
            csv_text = page.request.get(f"{stack.hub}/reports/impact.csv?{query}").text()
            assert csv_text.startswith("month,cac,measure,key,value")
            for line in csv_text.splitlines()[1:]:
                value = line.rsplit(",", 1)[1]
                assert not (value.isdigit() and int(value) < 5), line
            ctx.close()
        finally:
            browser.close()
    assert all(p.stat().st_size > 10_000 for p in shots.values())
