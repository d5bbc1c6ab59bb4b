"""Impact records (issue 18) as real processes: Mosquitto, `cac-hub`, `cac-agent`.

Sessions with visit profiles (given at the counter, at the kiosk's redeem and after it) and
content opened through the agent's `/content/` routes while the hub is down; a clean restart
writes the opens counted so far; a kill -9 with a profiled session running and more opens
uncounted: after the restart the session comes back with its profile, and every session and
content_use record reaches the hub's store exactly once, as the agent's ledger holds it (the
opens not yet written at the kill -9 are lost, never doubled).
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import MosquittoBroker, http, until

from agent.ledger import Ledger
from tests.system.test_pipeline import BIN, CAC, Site, token
from tests.system.test_till_pipeline import hub_records

pytestmark = [pytest.mark.system, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
PID = "guides-admin-fr"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def run(*args: str) -> str:
    r = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True,
                       timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture
def site(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Site]:
    s = Site(tmp_path, broker)
    with (tmp_path / "agent.toml").open("a", encoding="utf-8") as f:
        f.write('\n[impact]\nflush_minutes = 60\n')
    # the content comes on a stick from the hub (as at a CAC that never reached it)
    hub_toml = str(tmp_path / "hub.toml")
    run("cac-hub", "add-content", "--config", hub_toml, str(REPO / "content" / PID))
    stick = tmp_path / "stick"
    stick.mkdir()
    run("cac-hub", "export-content", "--config", hub_toml, "--out", str(stick))
    run("cac-agent", "import-content", "--config", str(tmp_path / "agent.toml"), str(stick))
    yield s
    s.agent.stop()
    s.hub.stop()


def open_page(site: Site, path: str) -> None:
    url = f"http://127.0.0.1:{site.agent_port}/content/{PID}/{path}"
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - 127.0.0.1 only
        assert resp.status == 200
        resp.read()


def voucher(site: Site) -> str:
    status, v = http("POST", f"{site.a}/vouchers", {"minutes": 60}, site.tok)
    assert status == 201, v
    return str(v["code"])


def test_profiles_and_content_use_reach_the_hub_exactly_once_across_a_kill9(
        site: Site, tmp_path: Path) -> None:
    procs = (site.agent, site.hub)
    site.start_agent()
    tok = site.tok
    profiles: dict[str, dict[str, str]] = {}
    # at the counter
    p1 = {"purpose": "egov", "age_band": "25-34", "gender": "f"}
    status, s1 = http("POST", f"{site.a}/sessions",
                      {"station": "s1", "minutes": 30, "profile": p1}, tok)
    assert status == 201 and s1["profile"] == p1, s1
    profiles[s1["id"]] = p1
    status, bad = http("POST", f"{site.a}/sessions",
                       {"station": "s2", "minutes": 30, "profile": {"gender": "woman"}}, tok)
    assert status == 400 and bad["message"].startswith("profile.gender"), bad
    # at the kiosk: with the redeem, and after it ("help us count")
    p2 = {"age_band": "<18"}
    status, s2 = http("POST", f"{site.a}/stations/s2/redeem",
                      {"code": voucher(site), "profile": p2}, token("s2"))
    assert status == 201 and s2["profile"] == p2, s2
    profiles[s2["id"]] = p2
    status, s3 = http("POST", f"{site.a}/stations/s3/redeem", {"code": voucher(site)},
                      token("s3"))
    assert status == 201, s3
    p3 = {"purpose": "job", "gender": "m"}
    status, _ = http("POST", f"{site.a}/stations/s3/session/profile", {"profile": p3},
                     token("s3"))
    assert status == 200
    status, again = http("POST", f"{site.a}/stations/s3/session/profile",
                         {"profile": {"gender": "f"}}, token("s3"))
    assert status == 409, again
    profiles[s3["id"]] = p3
    for sid, s in (("s1", s1), ("s2", s2)):
        status, rec = http("POST", f"{site.a}/sessions/{s['id']}/end", {}, tok)
        assert status == 200 and rec["profile"] == profiles[s["id"]], (sid, rec)
    # content opened, then a clean restart writes the counts
    for path in ("index.html", "index.html", "carte-identite.html"):
        open_page(site, path)
    site.agent.stop()
    site.start_agent()
    # more opens, then a kill -9 with s3 running: these opens were never written
    for path in ("index.html", "auto-entrepreneur.html"):
        open_page(site, path)
    site.agent.kill9()
    site.start_agent()
    status, view = http("GET", f"{site.a}/stations/s3/session", None, token("s3"))
    assert status == 200 and view["session"]["id"] == s3["id"], view
    assert view["session"]["resumed"] is True and view["session"]["profile"] == p3
    status, rec3 = http("POST", f"{site.a}/stations/s3/session/end", {}, token("s3"))
    assert status == 200 and rec3["profile"] == p3, rec3
    open_page(site, "extrait-naissance.html")
    site.agent.stop()  # the clean stop writes this open
    site.start_agent()
    site.start_hub()
    until(lambda: site.backlog() == 0, "every record at the hub", procs=procs)

    site.agent.stop()
    ledger = Ledger(site.agent_data, CAC, ZoneInfo("Africa/Casablanca"), lock=False)
    mine = {(r["type"], r["id"]): r for r in ledger.records()
            if r["type"] in ("session", "content_use")}
    ledger.close()
    got = [(t, i, r) for t, i, r in hub_records(tmp_path) if t in ("session", "content_use")]
    keys = [(t, i) for t, i, _ in got]
    assert len(keys) == len(set(keys)), "a record reached the hub twice"
    assert set(keys) == set(mine)
    for t, i, rec in got:
        for key, value in mine[(t, i)].items():
            assert rec.get(key) == value, (t, key, rec, mine[(t, i)])
    sessions = {i: r for t, i, r in got if t == "session"}
    assert {i: r.get("profile") for i, r in sessions.items()} == profiles
    uses = [r for t, _, r in got if t == "content_use"]
    assert len(uses) == 2  # the two clean stops; the kill -9 wrote none
    opens = sum(r["opens"][PID] for r in uses)
    pages: dict[str, int] = {}
    for r in uses:
        for page, n in r["pages"].items():
            pages[page] = pages.get(page, 0) + n
    assert opens == 4  # 3 before the restart + 1 after the kill -9; the 2 at the kill lost
    assert pages == {f"{PID}/index.html": 2, f"{PID}/carte-identite.html": 1,
                     f"{PID}/extrait-naissance.html": 1}


