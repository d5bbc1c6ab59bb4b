"""Console refusals over real HTTP (aiohttp test server, FakeClock): wrong password, lockout
shared with the JSON API, expired cookie, forged CSRF token, station tokens, roles."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import PASSWORD, TOKENS, Agent, start_agent

from agent.auth import LoginLockout
from agent.usecases.accounts import OPERATOR_TOKEN_TTL

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client, role="manager"):
        yield a


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, html[:500]
    return m.group(1)


async def login(a: Agent, name: str = "amina", password: str = PASSWORD) -> Any:
    """Log in through the console's form; returns the response (redirects not followed)."""
    page = await a.client.get("/console/login")
    assert page.status == 200
    return await a.client.post("/console/login", allow_redirects=False, data={
        "csrf": csrf_of(await page.text()), "name": name, "password": password})


async def logged_in(a: Agent) -> str:
    """Log in and return the CSRF token of the grid page."""
    resp = await login(a)
    assert resp.status == 303, await resp.text()
    grid = await a.client.get("/console/")
    assert grid.status == 200
    return csrf_of(await grid.text())


def session_cookie(a: Agent) -> str | None:
    for c in a.client.session.cookie_jar:
        if c.key == "cac_console":
            return c.value
    return None


async def test_root_redirects_to_the_login(agent: Agent) -> None:
    resp = await agent.client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/console/"
    resp = await agent.client.get("/console/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"


async def test_wrong_password_is_refused(agent: Agent) -> None:
    resp = await login(agent, password="wrong-password")
    assert resp.status == 401
    assert "Nom ou mot de passe incorrect" in await resp.text()
    assert session_cookie(agent) is None
    assert (await agent.client.get("/console/", allow_redirects=False)).status == 303
    audit = agent.service.audit_entries()
    assert any(e["action"] == "login.failed" and e["actor"] == "operator:amina" for e in audit)


async def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(agent: Agent) -> None:
    resp = await login(agent)
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    set_cookie = [h for h in resp.headers.getall("Set-Cookie") if "cac_console=" in h][0]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "Path=/console" in set_cookie and "Secure" not in set_cookie  # plain-HTTP LAN
    grid = await agent.client.get("/console/")
    assert "Content-Security-Policy" in grid.headers
    token = session_cookie(agent)
    assert token and agent.service.tokens.lookup(token, agent.clock.monotonic())
    out = await agent.client.post("/console/logout", allow_redirects=False,
                                  data={"csrf": csrf_of(await grid.text())})
    assert out.status == 303
    assert agent.service.tokens.lookup(token, agent.clock.monotonic()) is None
    assert any(e["action"] == "logout" for e in agent.service.audit_entries())


async def test_secure_cookie_when_configured(tmp_path: Path, aiohttp_client: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAC_CONSOLE_SECURE_COOKIES", "1")
    async for a in start_agent(tmp_path / "data", aiohttp_client):
        page = await a.client.get("/console/login")
        assert all("Secure" in h for h in page.headers.getall("Set-Cookie"))


async def test_lockout_after_five_failures_covers_the_json_api(agent: Agent) -> None:
    for _ in range(5):
        assert (await login(agent, password="wrong-password")).status == 401
    # the right password is refused now, on the console and on the JSON API
    resp = await login(agent)
    assert resp.status == 429
    assert "réessayez dans 15 min" in await resp.text()
    status, body = await agent.req("POST", "/login", json={"name": "amina",
                                                           "password": PASSWORD})
    assert status == 429 and body["error"] == "locked_out"
    assert any(e["action"] == "login.lockout" for e in agent.service.audit_entries())
    # another operator is not locked out; amina is again after 15 minutes
    agent.clock.advance(15 * 60 + 1)
    assert (await login(agent)).status == 303


async def test_json_api_failures_lock_the_console_too(agent: Agent) -> None:
    for _ in range(5):
        status, _ = await agent.req("POST", "/login", json={"name": "amina",
                                                            "password": "nope-nope"})
        assert status == 401
    assert (await login(agent)).status == 429


def test_login_lockout_rules() -> None:
    lock = LoginLockout(limit=3, window_seconds=60, lock_seconds=100)
    assert not lock.record_failure("k", 0) and not lock.record_failure("k", 10)
    assert lock.locked_for("k", 20) == 0
    assert lock.record_failure("k", 20)  # the third within the window locks
    assert lock.locked_for("k", 20) == 100 and lock.locked_for("k", 119) == 1
    assert lock.locked_for("k", 120) == 0
    # failures spread wider than the window never lock
    for t in (200, 270, 340, 410):
        assert not lock.record_failure("j", t)
    lock.record_failure("x", 0)
    lock.reset("x")
    assert not lock.record_failure("x", 1) and not lock.record_failure("x", 2)


async def test_expired_cookie_is_refused(agent: Agent) -> None:
    csrf = await logged_in(agent)
    agent.clock.advance(OPERATOR_TOKEN_TTL + 1)
    resp = await agent.client.get("/console/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login?expired=1"
    page = await agent.client.get("/console/login?expired=1")
    assert "Votre session a expiré" in await page.text()
    post = await agent.client.post("/console/stations/s1/start", allow_redirects=False,
                                   data={"csrf": csrf, "minutes": "30", "mode": "fixed"})
    assert post.status == 401
    assert agent.service.sessions == {}
    sse = await agent.client.get("/console/events", headers={"Accept": "text/event-stream"})
    assert sse.status == 401


async def test_forged_csrf_token_is_refused_and_changes_nothing(agent: Agent) -> None:
    csrf = await logged_in(agent)
    next_seq = agent.service.ledger.next_seq
    audit_len = len(agent.service.audit_entries())
    forged = ("0" if csrf[0] != "0" else "1") + csrf[1:]
    for path, data in [("/console/stations/s1/start", {"minutes": "30", "mode": "fixed"}),
                       ("/console/vouchers/sell", {"minutes": "60", "count": "3"}),
                       ("/console/tariff", {"currency": "MAD", "block_minutes": "15",
                                            "block_price": "1", "minimum_blocks": "1",
                                            "grace_seconds": "0"}),
                       ("/console/stations/s1/lock", {"reason": "x"})]:
        for token in (forged, "", None):
            body = dict(data) if token is None else {**data, "csrf": token}
            resp = await agent.client.post(path, data=body, allow_redirects=False)
            assert resp.status == 403, path
            assert "falsifié" in await resp.text()
    assert agent.service.ledger.next_seq == next_seq
    assert agent.service.sessions == {} and agent.service.locks == {}
    assert agent.service.tariff.block_price == 200
    assert len(agent.service.audit_entries()) == audit_len
    # the real token works
    resp = await agent.client.post("/console/stations/s1/start", allow_redirects=False,
                                   data={"csrf": csrf, "minutes": "30", "mode": "fixed"})
    assert resp.status == 303 and len(agent.service.sessions) == 1


async def test_login_form_needs_its_csrf_cookie(agent: Agent) -> None:
    resp = await agent.client.post("/console/login", allow_redirects=False,
                                   data={"csrf": "made-up", "name": "amina",
                                         "password": PASSWORD})
    assert resp.status == 403
    assert session_cookie(agent) is None


async def test_station_token_is_refused_on_operator_endpoints(agent: Agent) -> None:
    station = TOKENS["s1"]
    # as the console's cookie
    agent.client.session.cookie_jar.update_cookies({"cac_console": station})
    resp = await agent.client.get("/console/", allow_redirects=False)
    assert resp.status == 303
    resp = await agent.client.post("/console/stations/s1/start", allow_redirects=False,
                                   data={"csrf": "x", "minutes": "30", "mode": "fixed"})
    assert resp.status == 401
    agent.client.session.cookie_jar.clear()
    # as a bearer token on console pages and on the JSON API's operator endpoints
    headers = {"Authorization": f"Bearer {station}"}
    resp = await agent.client.get("/console/report.csv", headers=headers,
                                  allow_redirects=False)
    assert resp.status == 303
    for method, path, body in [("GET", "/stations", None), ("GET", "/sessions", None),
                               ("POST", "/sessions", {"station": "s1", "minutes": 30}),
                               ("POST", "/vouchers", {"minutes": 60}),
                               ("GET", "/tariff", None), ("GET", "/audit", None),
                               ("POST", "/stations/s1/lock", {})]:
        status, answer = await agent.req(method, path, station, json=body)
        assert status == 401, (path, answer)
    assert agent.service.sessions == {} and agent.service.locks == {}
    # even with a valid operator cookie, a bearer header is not accepted on the console
    await logged_in(agent)
    resp = await agent.client.get("/console/", headers=headers, allow_redirects=False)
    assert resp.status == 303


async def test_operator_role_cannot_use_manager_pages(tmp_path: Path,
                                                      aiohttp_client: Any) -> None:
    async for a in start_agent(tmp_path / "data", aiohttp_client, role="operator"):
        csrf = await logged_in(a)
        for path in ("/console/tariff", "/console/operators", "/console/audit"):
            resp = await a.client.get(path)
            assert resp.status == 403, path
        resp = await a.client.post("/console/tariff", data={
            "csrf": csrf, "currency": "MAD", "block_minutes": "15", "block_price": "1",
            "minimum_blocks": "1", "grace_seconds": "0"})
        assert resp.status == 403 and a.service.tariff.block_price == 200
        resp = await a.client.post("/console/operators", data={
            "csrf": csrf, "name": "evil", "role": "manager", "password": "12345678"})
        assert resp.status == 403 and a.service.operators.get("evil") is None
        for path in ("/console/", "/console/vouchers", "/console/report"):
            assert (await a.client.get(path)).status == 200


async def test_deactivated_operator_loses_the_session(agent: Agent) -> None:
    csrf = await logged_in(agent)
    agent.service.operators.put("youssef", "operator", PASSWORD, agent.clock.now())
    status, grant = await agent.req("POST", "/login", json={"name": "youssef",
                                                            "password": PASSWORD})
    assert status == 200
    resp = await agent.client.post("/console/operators/youssef/deactivate",
                                   data={"csrf": csrf})
    assert resp.status == 200
    assert agent.service.operators.get("youssef")["active"] is False
    status, _ = await agent.req("GET", "/stations", grant["token"])
    assert status == 401
    status, _ = await agent.req("POST", "/login", json={"name": "youssef",
                                                        "password": PASSWORD})
    assert status == 401
    # a manager cannot lock themselves out
    resp = await agent.client.post("/console/operators/amina/deactivate", data={"csrf": csrf})
    assert agent.service.operators.get("amina")["active"] is True
    actions = [e["action"] for e in agent.service.audit_entries()]
    assert "operator.deactivate" in actions


async def test_arabic_is_right_to_left_and_the_switch_stays_on_the_console(
        agent: Agent) -> None:
    await logged_in(agent)
    resp = await agent.client.get("/console/lang?to=ar&next=/console/vouchers",
                                  allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/vouchers"
    page = await agent.client.get("/console/vouchers")
    html = await page.text()
    assert '<html lang="ar" dir="rtl">' in html and "تذاكر الوقت" in html
    resp = await agent.client.get("/console/lang?to=fr&next=//evil.example/",
                                  allow_redirects=False)
    assert resp.headers["Location"] == "/console/"


def test_every_message_has_both_languages() -> None:
    from agent.console.i18n import LANGS, MESSAGES

    missing = [k for k, v in MESSAGES.items() for lang in LANGS if not v.get(lang)]
    assert missing == []
    templates = Path(__file__).resolve().parents[2] / "agent" / "console" / "templates"
    used = set()
    for path in templates.glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z_]+)'\)", path.read_text()))
    assert used - set(MESSAGES) == set()


async def test_station_controls_from_the_console(agent: Agent) -> None:
    csrf = await logged_in(agent)

    async def post(path: str, **data: str) -> str:
        resp = await agent.client.post(path, data={"csrf": csrf, **data})
        assert resp.status == 200
        return await resp.text()

    await post("/console/stations/s1/lock", reason="maintenance")
    status, state = await agent.st("s1", "GET", "/session")
    assert status == 200 and state["locked"] and state["lock"]["reason"] == "maintenance"
    html = await post("/console/stations/s1/start", minutes="30", mode="fixed")
    assert "Ce poste est verrouillé" in html and agent.service.sessions == {}
    await post("/console/stations/s1/unlock")
    await post("/console/stations/s1/message", text="Fermeture à 18h", seconds="600")
    status, state = await agent.st("s1", "GET", "/session")
    assert not state["locked"] and state["message"]["text"] == "Fermeture à 18h"
    await post("/console/message-all", text="Bonjour")
    status, state = await agent.st("s2", "GET", "/session")
    assert state["message"]["text"] == "Bonjour"
    # a fixed session; an action aimed at a session the page no longer shows is refused
    await post("/console/stations/s1/start", minutes="30", mode="fixed", category="student")
    (sid,) = agent.service.sessions
    html = await post("/console/stations/s1/end", session_id="not-this-one")
    assert "La session de ce poste a changé" in html and sid in agent.service.sessions
    html = await post("/console/stations/s1/extend", session_id=sid, minutes="abc")
    assert "Nombre de minutes invalide" in html
    await post("/console/stations/s1/extend", session_id=sid, minutes="15")
    assert agent.service.sessions[sid].limit_seconds == 45 * 60
    agent.clock.advance(20 * 60)
    html = await post("/console/stations/s1/end", session_id=sid)
    assert "2,00" in html and agent.service.sessions == {}  # 2 blocks of 2,00 at 50 % off
    actions = [(e["actor"], e["action"]) for e in agent.service.audit_entries()]
    for action in ("station.lock", "station.unlock", "station.message", "session.start",
                   "session.extend", "session.end"):
        assert ("operator:amina", action) in actions


async def test_pause_resume_move_and_pause_all_from_the_console(agent: Agent) -> None:
    csrf = await logged_in(agent)

    async def post(path: str, **data: str) -> str:
        resp = await agent.client.post(path, data={"csrf": csrf, **data})
        assert resp.status == 200
        return await resp.text()

    await post("/console/stations/s1/start", minutes="30", mode="fixed")
    (sid,) = agent.service.sessions
    html = await post("/console/stations/s1/pause", session_id=sid, reason="coupure")
    assert "le temps ne compte plus" in html and 'data-run="paused"' in html
    assert agent.service.sessions[sid].paused
    html = await post("/console/stations/s1/pause", session_id=sid)
    assert "déjà en pause" in html
    await post("/console/stations/s1/resume", session_id=sid)
    assert not agent.service.sessions[sid].paused
    html = await post("/console/stations/s1/resume", session_id=sid)
    assert "pas en pause" in html
    await post("/console/stations/s2/lock", reason="écran cassé")
    html = await post("/console/stations/s1/move", session_id=sid, target="s2")
    assert "Ce poste est verrouillé" in html and agent.service.sessions[sid].station == "s1"
    await post("/console/stations/s2/unlock")
    html = await post("/console/stations/s1/move", session_id=sid, target="s2")
    assert "déplacée de s1 vers s2" in html and agent.service.sessions[sid].station == "s2"
    html = await post("/console/pause-all", reason="onduleur")
    assert "1 session(s) en pause" in html and agent.service.sessions[sid].paused
    html = await post("/console/resume-all")
    assert "1 session(s) reprise(s)" in html and not agent.service.sessions[sid].paused
    actions = [(e["actor"], e["action"]) for e in agent.service.audit_entries()]
    for action in ("session.pause", "session.resume", "session.move", "session.pause_all",
                   "session.resume_all"):
        assert ("operator:amina", action) in actions
