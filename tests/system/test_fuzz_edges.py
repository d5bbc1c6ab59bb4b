"""A seeded fuzz of every HTTP endpoint of a real `cac-agent` and a real `cac-hub` (issue 16).

For each endpoint the programs list themselves (`GET /api/v1`) plus the console's and the
dashboard's pages: bounded hostile requests (odd methods, missing, foreign and forged
tokens, non-JSON, wrong types, 2,000-deep nesting, 1e400, NaN, Unicode digits, lone
surrogates, 5 MB bodies, wrong Content-Type, traversal forms in paths and queries). Asserts
zero 5xx, the process alive, and normal requests still right afterwards. The seed and the
status counts are printed (pytest -s)."""

from __future__ import annotations

import asyncio
import io
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agent_support import TOKENS, config_dict
from helpers import free_port

from provisioning.configs import to_toml
from tests.hub.apitoken import add_token_cli

BIN = Path(sys.executable).parent
SEED = int(os.environ.get("CAC_FUZZ_SEED", "16"))
REQUESTS = int(os.environ.get("CAC_FUZZ_REQUESTS", "2000"))
PASSWORD = "fuzz-password-123"

PARAMS = ["s1", "s9", "*", "..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "%00", "²³", "٣",
          "x" * 300, "%C0%AE", "a b", "%ff", "1e400", "-1", "0", "NaN", "<script>"]
QUERIES = ["", "?limit=²³", "?limit=-1", "?limit=1e400", "?day=9999-12-31", "?day=²⁰²⁴-01-01",
           "?from=0001-01-01&to=9999-12-31", "?after=%C2%B2", "?code=..%2f..",
           "?next=/%5Cevil.example", "?lang=%00", "?c=" + "9" * 500, "?cac_id=%ff%fe",
           "?active=1&limit=NaN", "?q=%F0%9F%92%A9", "?station=*&minutes=1e999"]
BODIES: list[tuple[str | None, bytes]] = [
    (None, b""),
    ("application/json", b"not json"),
    ("application/json", b"[" * 2000 + b"]" * 2000),
    ("application/json", b'{"a":' * 2000 + b"1" + b"}" * 2000),
    ("application/json", b'{"minutes": 1e400, "station": "s1"}'),
    ("application/json", b'{"minutes": NaN, "station": "s1"}'),
    ("application/json", b'{"minutes": Infinity, "seconds": -Infinity}'),
    ("application/json", '{"minutes": "²³", "station": "٣"}'.encode()),
    ("application/json", b'{"text": "\\udfff", "name": "\\ud800", "password": "\\udc00"}'),
    ("application/json", b'{"station": ["s1"], "minutes": {"x": 1}, "code": 3}'),
    ("application/json", b'{"station": "../../etc/passwd", "minutes": 30}'),
    ("application/json", b'{"code": "' + b"A" * 10_000 + b'"}'),
    ("application/json", b"\xff\xfe\x00{"),
    ("text/plain", b'{"name": "amina", "password": "x"}'),
    ("application/x-www-form-urlencoded", b"name=%ff&password=%00&csrf=x"),
    ("application/x-www-form-urlencoded; charset=bogus", b"a=b"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nv"),
    ("multipart/form-data", b"no boundary"),
    ("application/json; charset=utf-16", b"{\x00}\x00"),
]
BIG = ("application/json", b'{"x": "' + b"y" * (5 * 1024 * 1024) + b'"}')
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def fill(path: str, rnd: random.Random) -> str:
    out = []
    for part in path.split("/"):
        out.append(rnd.choice(PARAMS) if part.startswith("{") else part)
    return "/".join(out)


Endpoint = tuple[str, list[str]]  # a path and the methods it serves


Prelude = Callable[[aiohttp.ClientSession], Awaitable[None]]


async def fuzz(base: str, paths: list[Endpoint], tokens: list[str | None],
               rnd: random.Random, n: int, login: Prelude) -> Counter[int]:
    """``n`` hostile requests; the session holds a real page login (``login``), so the
    handlers behind it are reached too (logout paths are left out to keep it)."""
    statuses: Counter[int] = Counter()
    timeout = aiohttp.ClientTimeout(total=30)
    paths = [(p, m) for p, m in paths if not p.endswith("/logout")]
    async with aiohttp.ClientSession(timeout=timeout,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await login(http)
        for i in range(n):
            template, served = rnd.choice(paths)
            path = fill(template, rnd) + rnd.choice(QUERIES)
            method = rnd.choice(served) if rnd.random() < 0.8 else rnd.choice(METHODS)
            ctype, body = BIG if i % 250 == 7 else rnd.choice(BODIES)
            headers: dict[str, str] = {}
            token = rnd.choice(tokens)
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            if ctype is not None:
                headers["Content-Type"] = ctype
            if rnd.random() < 0.1:
                headers["Cookie"] = "cac_console=forged; cac_hub_session=forged"
            try:
                data: Any = io.BytesIO(body) if len(body) > 1 << 20 else (body or None)
                async with http.request(method, base + path, data=data,
                                        headers=headers, allow_redirects=False) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
                    assert resp.status < 500, (method, path, ctype, body[:80], resp.status,
                                               (await resp.text())[:300])
            except aiohttp.ClientError as exc:
                # a 5 MB body may be cut off once the server has refused it (413 first)
                assert body is BIG[1], (method, path, exc)
                statuses[0] += 1
    return statuses


class Program:
    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.name = name

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def wait_http(url: str, prog: Program) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            assert prog.alive(), prog.log.read_text()[-2000:]
            try:
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, prog.log.read_text()[-2000:]
            await asyncio.sleep(0.1)


async def index_paths(base: str, token: str | None) -> list[Endpoint]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.get(base + "/api/v1") as resp:
        assert resp.status == 200
        return [(e["path"], e["methods"]) for e in (await resp.json())["endpoints"]]


def pages(*paths: str) -> list[Endpoint]:
    return [(p, ["GET", "POST"]) for p in paths]


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Program, str]]:
    port = free_port()
    cfg = config_dict(tmp_path / "agent-data")
    cfg["http"]["port"] = port
    cfg["mqtt"]["port"] = free_port()  # no broker: the agent works offline
    toml = tmp_path / "agent.toml"
    toml.write_text(to_toml(cfg))
    subprocess.run([str(BIN / "cac-agent"), "add-operator", "--config", str(toml), "--name",
                    "amina", "--role", "manager", "--password-stdin"], input=PASSWORD + "\n",
                   text=True, check=True, capture_output=True, timeout=60)
    prog = Program("agent", [str(BIN / "cac-agent"), "--config", str(toml)],
                   tmp_path / "agent.log")
    try:
        yield prog, f"http://127.0.0.1:{port}"
    finally:
        prog.stop()


async def test_fuzz_the_agent(agent: tuple[Program, str]) -> None:
    prog, base = agent
    await wait_http(base + "/api/v1/health", prog)
    async with aiohttp.ClientSession() as http, http.post(base + "/api/v1/login",
                         json={"name": "amina", "password": PASSWORD}) as resp:
        assert resp.status == 200
        op = (await resp.json())["token"]
    paths = await index_paths(base, None)
    paths += pages("/console/", "/console/login", "/console/logout", "/console/vouchers",
              "/console/vouchers/sell", "/console/tickets", "/console/report",
              "/console/report.csv", "/console/stations/{sid}/start", "/console/tariff",
              "/console/operators", "/console/audit", "/console/lang",
              "/content/{pid}/{path}", "/content/{pid}/../../../etc/passwd")
    async def console_login(http: aiohttp.ClientSession) -> None:
        async with http.get(base + "/console/login") as resp:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert csrf
        async with http.post(base + "/console/login", allow_redirects=False, data={
                "csrf": csrf.group(1), "name": "amina", "password": PASSWORD}) as resp:
            assert resp.status == 303

    rnd = random.Random(SEED)
    statuses = await fuzz(base, paths, [None, "forged", op, TOKENS["s1"], TOKENS["s2"]],
                          rnd, REQUESTS, console_login)
    print(f"\nagent fuzz: seed {SEED}, {sum(statuses.values())} requests, statuses "
          f"{dict(sorted(statuses.items()))}")
    assert prog.alive()
    assert not [s for s in statuses if s >= 500]
    # normal work still right: a login (the fuzz may have logged the first one out), a
    # session started and ended, the console still renders
    async with aiohttp.ClientSession() as http, \
            http.post(base + "/api/v1/login",
                      json={"name": "amina", "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        op = (await resp.json())["token"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {op}"}) as http:
        # the fuzz may have locked s1 or left a session on it (valid tokens, real endpoints)
        async with http.post(base + "/api/v1/stations/s1/unlock", json={}) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get(base + "/api/v1/sessions") as resp:
            left = [x["id"] for x in await resp.json() if x["station"] == "s1"]
        for leftover in left:
            async with http.post(base + f"/api/v1/sessions/{leftover}/end", json={}) as resp:
                assert resp.status == 200, await resp.text()
        async with http.post(base + "/api/v1/sessions",
                             json={"station": "s1", "minutes": 30}) as resp:
            assert resp.status == 201, await resp.text()
            sid = (await resp.json())["id"]
        async with http.post(base + f"/api/v1/sessions/{sid}/end", json={}) as resp:
            assert resp.status == 200
            assert (await resp.json())["station"] == "s1"
        async with http.get(base + "/console/login") as resp:
            assert resp.status == 200
    assert "Traceback" not in prog.log.read_text()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[Program, str, str]]:
    port = free_port()
    toml = tmp_path / "hub.toml"
    toml.write_text(f"""
hub_id = "hub-fuzz"
data_dir = "{tmp_path / 'hub-data'}"
offline_after_seconds = 90
[mqtt]
host = "127.0.0.1"
port = {free_port()}
[http]
host = "127.0.0.1"
port = {port}
""")
    subprocess.run([str(BIN / "cac-hub"), "add-user", "--config", str(toml), "--name", "tech",
                    "--role", "technician", "--password-stdin"], input=PASSWORD + "\n",
                   text=True, check=True, capture_output=True, timeout=60)
    token = add_token_cli(toml, "fuzz", "technician")
    prog = Program("hub", [str(BIN / "cac-hub"), "--config", str(toml)], tmp_path / "hub.log")
    try:
        yield prog, f"http://127.0.0.1:{port}", token
    finally:
        prog.stop()


async def test_fuzz_the_hub(hub: tuple[Program, str, str]) -> None:
    prog, base, token = hub
    await wait_http(base + "/login", prog)
    paths = await index_paths(base, token)
    paths += pages("/", "/login", "/logout", "/alarms", "/alarms/{id}/ack", "/commands",
              "/cacs/{id}", "/cacs/{id}/commands", "/reports", "/reports/daily.csv",
              "/reports/hourly.csv", "/dashboard/fleet.json", "/metrics",
              "/content/blobs/{sha}", "/static/../hub.sqlite3", "/static/%2e%2e/x")
    async def dashboard_login(http: aiohttp.ClientSession) -> None:
        async with http.post(base + "/login", allow_redirects=False, data={
                "name": "tech", "password": PASSWORD, "next": "/"}) as resp:
            assert resp.status == 303

    rnd = random.Random(SEED + 1)
    statuses = await fuzz(base, paths, [None, "forged", token, "Bearer"], rnd, REQUESTS,
                          dashboard_login)
    print(f"\nhub fuzz: seed {SEED + 1}, {sum(statuses.values())} requests, statuses "
          f"{dict(sorted(statuses.items()))}")
    assert prog.alive()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http, \
            http.get(base + "/api/v1/cacs") as resp:
        assert resp.status == 200 and await resp.json() == []
    async with aiohttp.ClientSession() as http, \
            http.post(base + "/login", data={"name": "tech", "password": PASSWORD,
                                             "next": "/"}, allow_redirects=False) as resp:
        assert resp.status == 303
    assert "Traceback" not in prog.log.read_text()
