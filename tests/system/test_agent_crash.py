"""kill -9 the real agent in the middle of a burst: no answered money event is ever lost.

DESIGN principle 1: a record is durable before anyone is told it happened. The test runs
`cac-agent` as a process, drives it over HTTP with concurrent clients (operators starting and
ending sessions, selling vouchers, kiosks redeeming them), SIGKILLs it at a random moment,
then reads the data directory with the Ledger and restarts the agent on it, three times.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from helpers import free_port

from agent.ledger import LEDGER_FILE, Ledger

pytestmark = pytest.mark.system

BIN = Path(sys.executable).parent
CAC = "ma-oriental-oujda-001"
TZ = "Africa/Casablanca"
OPERATOR, PASSWORD = "amina", "correct horse battery"
BURST_STATIONS = ("s1", "s2", "s3", "s4", "s5")
REDEEM_STATION = "s6"  # a kiosk redeeming vouchers sold in the burst
OPEN_STATION = "s7"  # an open-ended operator session that lives across the kill
VOUCHER_STATION = "s8"  # a long voucher session that lives across the kill
STATIONS = (*BURST_STATIONS, REDEEM_STATION, OPEN_STATION, VOUCHER_STATION)
ROUNDS = 3
LONG_RUN_SECONDS = 2.2  # long sessions run this long before the burst: a checkpoint or two
KILL_DELAY = (0.3, 1.5)  # the burst is cut this long after it starts
READY_TIMEOUT = 20.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)
EXIT_TIMEOUT = 10.0


def token(sid: str) -> str:
    return f"{sid}-station-token-0123456789"


@dataclass
class Acked:
    """What the agent answered with a 2xx: those writes must survive anything."""

    started: dict[str, dict[str, Any]] = field(default_factory=dict)  # session id -> view
    closed: dict[str, dict[str, Any]] = field(default_factory=dict)  # record id -> record
    sales: dict[str, dict[str, Any]] = field(default_factory=dict)  # sale id -> answer
    unexpected: list[str] = field(default_factory=list)


class AgentProcess:
    """The real `cac-agent --config` process; ended by PID only."""

    def __init__(self, config: Path, port: int, log_path: Path) -> None:
        self.config = config
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "cac-agent"), "--config", str(self.config), "--log-level", "WARNING"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        assert self.proc is not None
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the agent exited with {self.proc.returncode} before answering; "
                            f"log:\n{self.log_tail()}")
            try:
                async with http.get(f"{self.base}/health",
                                    timeout=aiohttp.ClientTimeout(total=1)) as r:
                    if r.status == 200:
                        body = await r.json()
                        assert body["cac_id"] == CAC
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
        pytest.fail(f"the agent did not answer /health within {READY_TIMEOUT} s; "
                    f"log:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL by PID and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=EXIT_TIMEOUT)
        self._close_log()

    def terminate(self) -> int:
        """SIGTERM by PID (a clean stop); the exit status."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        code = self.proc.wait(timeout=EXIT_TIMEOUT)
        self._close_log()
        return code

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[AgentProcess, Path]]:
    data_dir = tmp_path / "data"
    port = free_port()
    stations = "".join(f'[[stations]]\nid = "{s}"\ntoken = "{token(s)}"\n\n' for s in STATIONS)
    config = tmp_path / "agent.toml"
    config.write_text(f"""\
cac_id = "{CAC}"
data_dir = "{data_dir}"
timezone = "{TZ}"
checkpoint_seconds = 1
resume_within_minutes = 0  # closed at restart, as before CONTRACT §7 (tested here)

[mqtt]
host = "127.0.0.1"
port = {free_port()}

[http]
host = "127.0.0.1"
port = {port}

{stations}
[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 0
""")
    added = subprocess.run(
        [str(BIN / "cac-agent"), "add-operator", "--config", str(config), "--name", OPERATOR,
         "--role", "operator", "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=30, check=False)
    assert added.returncode == 0, added.stderr
    agent = AgentProcess(config, port, tmp_path / "agent.log")
    try:
        yield agent, data_dir
    finally:
        agent.kill()


# ---------------------------------------------------------------- clients


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str, acked: Acked) -> None:
        self.http = http
        self.base = base
        self.acked = acked
        self.op_headers: dict[str, str] = {}
        self.killed = False

    async def post(self, path: str, body: dict[str, Any] | None = None,
                   bearer: str | None = None) -> dict[str, Any]:
        """POST and return the answer of a 2xx; anything else stops this client."""
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else self.op_headers
        async with self.http.post(f"{self.base}{path}", json=body or {}, headers=headers,
                                  timeout=REQUEST_TIMEOUT) as r:
            data: dict[str, Any] = await r.json()
            if not 200 <= r.status < 300:
                raise AssertionError(f"POST {path} -> {r.status} {data}")
            return data

    async def login(self) -> None:
        answer = await self.post("/login", {"name": OPERATOR, "password": PASSWORD},
                                 bearer="none")
        self.op_headers = {"Authorization": f"Bearer {answer['token']}"}

    async def start(self, station: str, minutes: int | None) -> dict[str, Any]:
        view = await self.post("/sessions", {"station": station, "minutes": minutes})
        self.acked.started[view["id"]] = view
        return view

    async def end(self, session_id: str) -> None:
        rec = await self.post(f"/sessions/{session_id}/end")
        self.acked.closed[rec["id"]] = rec

    async def sell(self, minutes: int) -> dict[str, Any]:
        sale = await self.post("/vouchers", {"minutes": minutes})
        self.acked.sales[sale["sale_id"]] = sale
        return sale

    async def redeem(self, station: str, code: str) -> dict[str, Any]:
        view = await self.post(f"/stations/{station}/redeem", {"code": code}, token(station))
        self.acked.started[view["id"]] = view
        return view

    async def station_end(self, station: str) -> None:
        rec = await self.post(f"/stations/{station}/session/end", {"reason": "citizen"},
                              token(station))
        self.acked.closed[rec["id"]] = rec

    async def guarded(self, loop_body: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop_body`` until the agent dies; a failure before the kill is recorded."""
        try:
            while True:
                await loop_body()
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            if not self.killed:
                self.acked.unexpected.append(f"{type(exc).__name__}: {exc}")
        except AssertionError as exc:
            if not self.killed:
                self.acked.unexpected.append(str(exc))


async def burst(client: Client, agent: AgentProcess) -> datetime:
    """Run the concurrent burst and SIGKILL the agent inside it; the time of the kill."""

    def station_loop(station: str) -> Callable[[], Awaitable[None]]:
        async def body() -> None:
            view = await client.start(station, random.choice((None, 30)))
            await client.end(view["id"])
        return body

    async def sell_loop() -> None:
        await client.sell(random.randint(5, 60))

    async def redeem_loop() -> None:
        sale = await client.sell(10)
        await client.redeem(REDEEM_STATION, sale["code"])
        await client.station_end(REDEEM_STATION)

    tasks = [asyncio.create_task(client.guarded(station_loop(s))) for s in BURST_STATIONS]
    tasks += [asyncio.create_task(client.guarded(sell_loop)) for _ in range(2)]
    tasks.append(asyncio.create_task(client.guarded(redeem_loop)))
    await asyncio.sleep(random.uniform(*KILL_DELAY))
    client.killed = True
    killed_at = datetime.now(UTC)
    agent.kill()
    done, pending = await asyncio.wait(tasks, timeout=15)
    for t in pending:
        t.cancel()
    assert not pending, "clients did not notice the agent was gone within 15 s"
    return killed_at


# ---------------------------------------------------------------- checks


def check_ledger_after_kill(data_dir: Path, acked: Acked) -> list[dict[str, Any]]:
    """Every answered write is in the ledger once; the sessions active at the kill."""
    ledger = Ledger(data_dir, CAC, ZoneInfo(TZ))  # a StorageError here fails the test
    try:
        records = list(ledger.records())
        by_id = {r["id"]: r for r in records}
        assert len(by_id) == len(records), "a record id appears twice"
        seqs = sorted(r["seq"] for r in records)
        assert seqs == list(range(1, ledger.next_seq)), "sequence numbers have a gap"
        assert all(r["cac_id"] == CAC for r in records)
        for rid, answered in acked.closed.items():
            assert rid in by_id, f"answered session close {rid} is lost"
            stored = by_id[rid]
            assert (stored["seq"], stored["fee"], stored["billed_seconds"]) == (
                answered["seq"], answered["fee"], answered["billed_seconds"])
        for sale_id, answered in acked.sales.items():
            assert sale_id in by_id, f"answered voucher sale {sale_id} is lost"
            entry = ledger.voucher(answered["code"])
            assert entry is not None and entry["sale_id"] == sale_id
        active = ledger.active_checkpoints()
        active_ids = {cp["id"] for cp in active}
        for sid in acked.started:
            assert sid in active_ids or sid in by_id, f"answered session start {sid} is lost"
        assert not active_ids & set(by_id), "a session is both active and closed"
        # the hub acknowledges half of what it has, so later rounds read archive + outbox
        if ledger.next_seq > 1:
            ledger.ack((ledger.acked_seq + ledger.next_seq - 1) // 2 or 1)
        return active
    finally:
        ledger.close()


def check_recovered(data_dir: Path, active: list[dict[str, Any]], killed_at: datetime,
                    long_ids: set[str]) -> None:
    """After a restart the sessions cut by the kill are closed and billed, no more."""
    db = json.loads((data_dir / LEDGER_FILE).read_bytes())  # read-only: the agent holds it
    assert db["state"]["1"]["active"] == {}
    reader = Ledger(data_dir, CAC, ZoneInfo("UTC"), lock=False)  # reads, never writes
    try:
        outbox = {r["id"]: r for r in reader.outbox()}
    finally:
        reader.close()
    vouchers = {e["voucher"]["code"]: e for e in db.get("vouchers", {}).values()}
    for cp in active:
        rec = outbox.get(cp["id"])
        assert rec is not None, f"session {cp['id']} active at the kill was not closed"
        assert rec["end_reason"] == "restart_recovery"
        started = datetime.fromisoformat(cp["started_at"])
        ran = (killed_at - started).total_seconds()
        assert 0 <= rec["billed_seconds"] <= ran + 0.05, (rec, ran)
        assert rec["billed_seconds"] >= cp["billed_seconds"]  # never less than checkpointed
        if cp["id"] in long_ids:
            assert ran >= LONG_RUN_SECONDS
            assert rec["billed_seconds"] >= 1, "no checkpoint was taken in 2 s of running"
        if cp.get("voucher_code"):
            entry = vouchers[cp["voucher_code"]]
            assert entry["in_use"] is None
            v = entry["voucher"]
            assert v["seconds_left"] == v["seconds_total"] - rec["billed_seconds"]


async def test_kill_9_during_a_burst_loses_no_answered_write(
    site: tuple[AgentProcess, Path],
) -> None:
    agent, data_dir = site
    acked = Acked()
    async with aiohttp.ClientSession() as http:
        agent.start()
        await agent.wait_ready(http)
        for _ in range(ROUNDS):
            client = Client(http, agent.base, acked)
            await client.login()
            # two long sessions that the kill will interrupt
            long_open = await client.start(OPEN_STATION, None)
            sale = await client.sell(60)
            long_voucher = await client.redeem(VOUCHER_STATION, sale["code"])
            long_ids = {long_open["id"], long_voucher["id"]}
            await asyncio.sleep(LONG_RUN_SECONDS)
            killed_at = await burst(client, agent)
            assert not acked.unexpected, acked.unexpected
            active = check_ledger_after_kill(data_dir, acked)
            assert long_ids <= {cp["id"] for cp in active}

            agent.start()
            await agent.wait_ready(http)  # recovery runs before the agent listens
            check_recovered(data_dir, active, killed_at, long_ids)
            client = Client(http, agent.base, acked)
            await client.login()
            async with http.get(f"{agent.base}/sessions", headers=client.op_headers) as r:
                assert r.status == 200
                assert await r.json() == []
            # the recovered voucher can be used again for the rest of its balance
            rest = await client.redeem(VOUCHER_STATION, sale["code"])
            assert 0 < rest["limit_seconds"] <= 3600 - 1
            await client.station_end(VOUCHER_STATION)

        assert len(acked.closed) > ROUNDS * 5, "the burst answered too little to prove much"
        assert acked.sales
        assert agent.terminate() == 0, agent.log_tail()
    check_ledger_after_kill(data_dir, acked)
