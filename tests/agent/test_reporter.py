"""The MQTT reporter (agent/reporter.py) against a real Mosquitto, a bare paho client as the hub.

Intervals are shortened by patching the reporter's module constants; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from helpers import MosquittoBroker, free_port
from paho.mqtt.enums import CallbackAPIVersion

from agent import __version__, reporter
from agent.clock import FakeClock
from agent.commands import CommandRunner
from agent.config import parse_agent_config
from agent.ledger import Ledger
from agent.operators import OperatorStore
from agent.reporter import Reporter, reconnect_delays
from agent.service import AgentService
from wire.messages import (
    MAX_BATCH,
    MAX_PAYLOAD_BYTES,
    Ack,
    Command,
    CommandAck,
    Health,
    Status,
    Usage,
    decode,
    encode,
)
from wire.topics import FROM_CAC, Kind, cac_topic, parse_cac_topic

TIMEOUT = 10.0
TOKEN = "station-one-token-0001"


async def until(pred: Callable[[], bool], what: str, limit: float = TIMEOUT) -> None:
    """Wait (without blocking the event loop) until pred() holds, or fail the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not pred():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.02)


def new_cac_id() -> str:
    return f"ma-test-{uuid.uuid4().hex[:10]}"  # own status topic and session per test


# ---------------------------------------------------------------- the hub's side


class FakeHub:
    """A bare paho client playing the hub: records what one CAC publishes, sends it acks.

    With ``auto_ack`` it acks the highest contiguous sequence number seen, like the real hub.
    It reconnects by itself (paho's loop) and subscribes again on every connection; with
    ``persistent`` it keeps a broker session, as the real hub does, so that what arrives
    while it is reconnecting waits for it.
    """

    def __init__(self, broker: MosquittoBroker, cac_id: str, *, auto_ack: bool = False,
                 persistent: bool = False) -> None:
        self.cac_id = cac_id
        self.auto_ack = auto_ack
        self.lock = threading.Lock()
        self.received: dict[Kind, list[mqtt.MQTTMessage]] = defaultdict(list)
        self.stored: set[int] = set()
        self.contiguous = 0
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"hub-{uuid.uuid4().hex[:8]}",
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(TIMEOUT):
            self.close()
            pytest.fail("the fake hub got no SUBACK")

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe([(cac_topic(self.cac_id, kind), 1) for kind in FROM_CAC])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        kind = parse_cac_topic(msg.topic).kind
        with self.lock:
            self.received[kind].append(msg)
        if kind is Kind.USAGE and self.auto_ack:
            with self.lock:
                self.stored.update(r.seq for r in decode(msg.payload, Usage).records)
                while self.contiguous + 1 in self.stored:
                    self.contiguous += 1
                seq = self.contiguous
            self.ack(seq)

    def messages(self, kind: Kind) -> list[mqtt.MQTTMessage]:
        with self.lock:
            return list(self.received[kind])

    def batches(self) -> list[list[int]]:
        return [[r.seq for r in decode(m.payload, Usage).records]
                for m in self.messages(Kind.USAGE)]

    def seqs(self) -> list[int]:
        return [s for b in self.batches() for s in b]

    def statuses(self) -> list[Status]:
        return [decode(m.payload, Status) for m in self.messages(Kind.STATUS)]

    def publish(self, kind: Kind, payload: bytes) -> None:
        self.client.publish(cac_topic(self.cac_id, kind), payload, qos=1)

    def ack(self, seq: int) -> None:
        self.publish(Kind.ACK, encode(Ack(seq=seq)))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def hubs() -> Iterator[Callable[..., FakeHub]]:
    made: list[FakeHub] = []

    def make(broker: MosquittoBroker, cac_id: str, **kw: Any) -> FakeHub:
        made.append(FakeHub(broker, cac_id, **kw))
        return made[-1]

    try:
        yield make
    finally:
        for hub in made:
            hub.close()


# ---------------------------------------------------------------- the agent's side


def config_dict(cac_id: str, data_dir: Path, broker: MosquittoBroker,
                http_port: int = 0) -> dict[str, Any]:
    return {
        "cac_id": cac_id, "data_dir": str(data_dir), "timezone": "Africa/Casablanca",
        "mqtt": {"host": broker.host, "port": broker.port},
        "http": {"host": "127.0.0.1", "port": http_port},
        "stations": [{"id": "s1", "token": TOKEN}],
        "tariff": {"currency": "MAD", "block_minutes": 15, "block_price": 200,
                   "minimum_blocks": 1, "grace_seconds": 60},
    }


@dataclass
class Site:
    """One CAC's ledger and service on their single thread, and a reporter (not started)."""

    cac_id: str
    service: AgentService
    ledger: Ledger
    executor: ThreadPoolExecutor
    reporter: Reporter

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def sell(self, n: int) -> None:
        """Close n ledger records (voucher sales), on the service thread."""
        def work() -> None:
            for _ in range(n):
                self.service.sell_voucher(30, None, "amina")
        await self.call(work)

    async def backlog(self) -> int:
        result: int = await self.call(self.ledger.backlog)
        return result

    async def start(self) -> None:
        self.reporter.start()
        await asyncio.wait_for(self.reporter.connected.wait(), TIMEOUT)

    def new_reporter(self) -> Reporter:
        self.reporter = Reporter(self.service.config, self.ledger, self.executor,
                                 self.service.health_snapshot)
        return self.reporter


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short intervals; the ack timeout stays long unless a test shortens it."""
    monkeypatch.setattr(reporter, "POLL_INTERVAL", 0.05)
    monkeypatch.setattr(reporter, "RECONNECT_MIN", 0.05)
    monkeypatch.setattr(reporter, "RECONNECT_MAX", 0.3)


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[Callable[[MosquittoBroker], Site]]:
    sites: list[Site] = []

    def make(broker: MosquittoBroker) -> Site:
        cac_id = new_cac_id()
        cfg = parse_agent_config(config_dict(cac_id, tmp_path / cac_id, broker))
        ledger = Ledger(cfg.data_dir, cfg.cac_id, cfg.tz)
        svc = AgentService(cfg, ledger, OperatorStore(cfg.data_dir),
                           FakeClock(datetime(2026, 6, 10, 9, 0, tzinfo=UTC)))
        executor = ThreadPoolExecutor(max_workers=1)
        runner = CommandRunner(svc, executor)
        site = Site(cac_id, svc, ledger, executor, Reporter(
            cfg, ledger, executor, svc.health_snapshot, command_handler=runner.run))
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.executor.shutdown(wait=True)
        site.ledger.close()


@pytest.fixture
async def site(make_site: Callable[[MosquittoBroker], Site],
               mosquitto: MosquittoBroker) -> AsyncIterator[Site]:
    s = make_site(mosquitto)
    yield s
    await s.reporter.stop()


# ---------------------------------------------------------------- status and last will


async def test_birth_is_retained_online_and_a_clean_stop_leaves_offline(
        site: Site, mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub]) -> None:
    early = hubs(mosquitto, site.cac_id)
    await site.start()
    await until(lambda: early.statuses(), "the birth")  # the broker has it now
    late = hubs(mosquitto, site.cac_id)  # subscribes after the birth: gets the retained one
    await until(lambda: late.statuses(), "the retained status")
    msg = late.messages(Kind.STATUS)[0]
    status = decode(msg.payload, Status)
    assert msg.retain and msg.qos == 1
    assert (status.state, status.version) == ("online", __version__)
    assert status.boot_id == reporter.BOOT_ID and len(status.boot_id) == 32

    await site.reporter.stop()
    await until(lambda: len(late.statuses()) == 2, "the offline status")
    assert late.statuses()[1].state == "offline"
    assert late.statuses()[1].boot_id == status.boot_id
    await until(lambda: f"Client cac-{site.cac_id} disconnected." in mosquitto.log_text(),
                "the broker to log a clean disconnect")
    after = hubs(mosquitto, site.cac_id)
    await until(lambda: after.statuses(), "the retained status after the stop")
    assert after.messages(Kind.STATUS)[0].retain
    assert after.statuses()[0].state == "offline"


def write_agent_toml(path: Path, cac_id: str, data_dir: Path, broker: MosquittoBroker) -> None:
    cfg = config_dict(cac_id, data_dir, broker, http_port=free_port())
    path.write_text(f"""\
cac_id = "{cac_id}"
data_dir = "{cfg["data_dir"]}"
timezone = "{cfg["timezone"]}"

[mqtt]
host = "{broker.host}"
port = {broker.port}

[http]
host = "127.0.0.1"
port = {cfg["http"]["port"]}

[[stations]]
id = "s1"
token = "{TOKEN}"

[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 60
""")


@pytest.fixture
def agent_process(tmp_path: Path) -> Iterator[Callable[[MosquittoBroker], tuple[str, Any]]]:
    """Starts `cac-agent --config` (the real process, reporter on); kills it afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(broker: MosquittoBroker) -> tuple[str, subprocess.Popen[bytes]]:
        cac_id = new_cac_id()
        conf = tmp_path / f"{cac_id}.toml"
        write_agent_toml(conf, cac_id, tmp_path / cac_id, broker)
        with (tmp_path / f"{cac_id}.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "--config", str(conf)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        procs.append(proc)
        return cac_id, proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=TIMEOUT)


@pytest.mark.system
async def test_an_agent_killed_without_disconnecting_is_offline_by_its_last_will(
        mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub],
        agent_process: Callable[[MosquittoBroker], tuple[str, subprocess.Popen[bytes]]]) -> None:
    cac_id, proc = agent_process(mosquitto)
    hub = hubs(mosquitto, cac_id)
    await until(lambda: any(s.state == "online" for s in hub.statuses()), "the agent's birth",
                limit=20)
    boot_id = hub.statuses()[-1].boot_id
    os.kill(proc.pid, signal.SIGKILL)
    await until(lambda: hub.statuses()[-1].state == "offline", "the last will")
    assert hub.statuses()[-1].boot_id == boot_id
    later = hubs(mosquitto, cac_id)  # the will was retained
    await until(lambda: later.statuses(), "the retained will")
    assert later.statuses()[0].state == "offline"


@pytest.mark.system
async def test_sigterm_publishes_offline_and_disconnects_cleanly(
        mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub],
        agent_process: Callable[[MosquittoBroker], tuple[str, subprocess.Popen[bytes]]]) -> None:
    cac_id, proc = agent_process(mosquitto)
    hub = hubs(mosquitto, cac_id)
    await until(lambda: any(s.state == "online" for s in hub.statuses()), "the agent's birth",
                limit=20)
    proc.send_signal(signal.SIGTERM)
    await until(lambda: proc.poll() is not None, "the agent to exit")
    assert proc.returncode == 0
    await until(lambda: hub.statuses()[-1].state == "offline", "the offline status")
    await until(lambda: f"Client cac-{cac_id} disconnected." in mosquitto.log_text(),
                "the broker to log a clean disconnect")


# ---------------------------------------------------------------- usage and acks


async def test_records_go_out_in_order_in_bounded_batches_and_acks_empty_the_outbox(
        site: Site, mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub]) -> None:
    hub = hubs(mosquitto, site.cac_id)
    await site.sell(2 * MAX_BATCH + 50)
    await site.start()
    await until(lambda: len(hub.seqs()) == 2 * MAX_BATCH + 50, "every record")
    assert hub.seqs() == list(range(1, 2 * MAX_BATCH + 51))
    assert [len(b) for b in hub.batches()] == [MAX_BATCH, MAX_BATCH, 50]
    for m in hub.messages(Kind.USAGE):
        assert m.qos == 1 and len(m.payload) <= MAX_PAYLOAD_BYTES
        usage = decode(m.payload, Usage)
        assert {r.cac_id for r in usage.records} == {site.cac_id}
    assert await site.backlog() == 2 * MAX_BATCH + 50

    hub.ack(MAX_BATCH)
    await until(lambda: site.reporter.stats.acked_seq == MAX_BATCH, "the first ack")
    assert await site.backlog() == MAX_BATCH + 50
    await site.sell(1)  # a record closed now goes out promptly
    await until(lambda: hub.seqs()[-1:] == [2 * MAX_BATCH + 51], "the new record", limit=3)
    hub.ack(2 * MAX_BATCH + 51)
    await until(lambda: site.reporter.stats.acked_seq == 2 * MAX_BATCH + 51, "the last ack")
    assert await site.backlog() == 0
    assert site.reporter.stats.republishes == 0
    assert site.reporter.stats.published_batches == 4


async def test_at_most_max_in_flight_batches_wait_for_an_ack(
        site: Site, mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporter, "MAX_BATCH", 10)
    hub = hubs(mosquitto, site.cac_id)
    await site.sell(60)
    await site.start()
    await until(lambda: len(hub.batches()) == reporter.MAX_IN_FLIGHT, "a full window")
    await asyncio.sleep(0.3)  # several polls: nothing more may go out
    assert hub.seqs() == list(range(1, 41))
    hub.ack(15)  # frees one batch (1..10) and half of the next
    await until(lambda: len(hub.batches()) == 5, "the fifth batch")
    await asyncio.sleep(0.3)
    assert hub.batches()[-1] == list(range(41, 51)) and len(hub.batches()) == 5
    hub.ack(60)  # beyond what was sent is fine while the ledger holds it
    await until(lambda: site.reporter.stats.acked_seq == 60, "the ack of everything")
    assert await site.backlog() == 0
    await asyncio.sleep(0.3)
    assert len(hub.seqs()) == 50  # 51..60 were acknowledged, never needed to go out


async def test_without_an_ack_the_records_are_published_again(
        site: Site, mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporter, "ACK_TIMEOUT", 0.5)
    hub = hubs(mosquitto, site.cac_id)
    await site.sell(3)
    await site.start()
    await until(lambda: len(hub.batches()) >= 2, "a re-publication")
    assert hub.batches()[:2] == [[1, 2, 3], [1, 2, 3]]
    assert site.reporter.stats.republishes >= 1
    hub.ack(3)
    await until(lambda: site.reporter.stats.acked_seq == 3, "the ack")
    seen = len(hub.batches())
    await asyncio.sleep(1.0)  # two timeouts: nothing is outstanding, nothing goes again
    assert len(hub.batches()) == seen
    assert await site.backlog() == 0


async def test_bad_acks_are_counted_and_dropped_and_commands_are_answered(
        site: Site, mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub]) -> None:
    hub = hubs(mosquitto, site.cac_id)
    await site.sell(2)
    await site.start()
    await until(lambda: hub.seqs() == [1, 2], "the records")
    for junk in (b"not json", b'{"v": 1}', b'{"v": 9, "seq": 1}', b"[]"):
        hub.publish(Kind.ACK, junk)
    hub.ack(50)  # beyond the ledger's last record: refused
    await until(lambda: site.reporter.stats.bad_acks == 4, "the malformed acks")
    await until(lambda: site.reporter.stats.refused_acks == 1, "the refused ack")
    assert await site.backlog() == 2
    hub.publish(Kind.CMD, encode(Command(id="c1", name="lock", station="s1",
                                         args={"reason": "screen broken"})))
    hub.publish(Kind.CMD, b'{"v": 1, "name": "no id"}')
    await until(lambda: hub.messages(Kind.CMD_ACK), "the command's answer")
    answer = decode(hub.messages(Kind.CMD_ACK)[0].payload, CommandAck)
    assert (answer.id, answer.status, answer.message) == ("c1", "done", "locked s1")
    assert site.service.locks["s1"]["reason"] == "screen broken"
    assert site.service.locks["s1"]["by"] == "hub"
    assert [c.id for c in site.reporter.commands] == ["c1"]
    await until(lambda: site.reporter.stats.bad_commands == 1, "the malformed command")
    # a re-delivered command is answered again but not executed twice; unknown ones fail
    await site.call(site.service.unlock_station, "s1", "operator:amina")
    hub.publish(Kind.CMD, encode(Command(id="c1", name="lock", station="s1")))
    hub.publish(Kind.CMD, encode(Command(id="c2", name="self_destruct")))
    hub.publish(Kind.CMD, encode(Command(id="c3", name="lock", station="s9")))
    await until(lambda: len(hub.messages(Kind.CMD_ACK)) == 4, "three more answers")
    answers = [decode(m.payload, CommandAck) for m in hub.messages(Kind.CMD_ACK)]
    assert [(a.id, a.status) for a in answers[1:]] == [
        ("c1", "done"), ("c2", "failed"), ("c3", "failed")]
    assert "unknown command" in answers[2].message and "'s9'" in answers[3].message
    assert "s1" not in site.service.locks  # c1 was not executed a second time
    hub.ack(2)  # a good ack still works after the bad ones
    await until(lambda: site.reporter.stats.acked_seq == 2, "the good ack")
    assert await site.backlog() == 0
    assert site.reporter.stats.connected and site.reporter.stats.connects == 1


async def test_acks_sent_while_the_agent_was_away_arrive_on_return(
        site: Site, mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub]) -> None:
    hub = hubs(mosquitto, site.cac_id)
    await site.sell(5)
    await site.start()
    await until(lambda: hub.seqs() == [1, 2, 3, 4, 5], "the records")
    await site.reporter.stop()
    hub.ack(5)  # queued by the broker in the agent's persistent session
    await asyncio.sleep(0.2)
    site.new_reporter()
    await site.start()
    await until(lambda: site.reporter.stats.acked_seq == 5, "the queued ack")
    assert await site.backlog() == 0


async def test_health_is_published_on_its_topic_and_validates(
        site: Site, mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub],
        monkeypatch: pytest.MonkeyPatch) -> None:
    hub = hubs(mosquitto, site.cac_id)
    site.reporter.health_interval = 0.2
    await site.sell(2)
    await site.call(site.service.station_for_token, TOKEN, "s1")
    await site.start()
    await until(lambda: len(hub.messages(Kind.HEALTH)) >= 2, "two health reports")
    msg = hub.messages(Kind.HEALTH)[0]
    health = decode(msg.payload, Health)
    assert msg.qos == 0 and not msg.retain
    assert (health.boot_id, health.version) == (reporter.BOOT_ID, __version__)
    assert health.backlog == 2
    assert [(s.id, s.online) for s in health.stations] == [("s1", True)]
    assert health.disk_total > 0 and 0 <= health.cpu_percent <= 100
    assert site.reporter.stats.health_published >= 2


async def test_a_batch_is_split_to_stay_under_the_payload_limit(
        site: Site, mosquitto: MosquittoBroker, hubs: Callable[..., FakeHub],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporter, "MAX_PAYLOAD_BYTES", 1000)  # a few records per message
    hub = hubs(mosquitto, site.cac_id)
    await site.sell(12)
    await site.start()
    await until(lambda: len(hub.seqs()) == 12, "every record")
    assert hub.seqs() == list(range(1, 13))
    assert len(hub.batches()) > 2
    assert all(len(m.payload) <= 1000 for m in hub.messages(Kind.USAGE))


# ---------------------------------------------------------------- broker outages


def test_reconnect_delays_double_with_jitter_up_to_the_maximum(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporter, "RECONNECT_MIN", 1.0)
    monkeypatch.setattr(reporter, "RECONNECT_MAX", 60.0)
    delays = reconnect_delays(random.Random(7))
    got = [next(delays) for _ in range(10)]
    for delay, base in zip(got, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60], strict=True):
        assert base <= delay <= base * (1 + reporter.RECONNECT_JITTER)
    assert len(set(got[-4:])) == 4  # jittered: a fleet does not retry in lockstep


async def test_after_a_broker_restart_the_reporter_reconnects_and_the_rest_arrives(
        make_site: Callable[[MosquittoBroker], Site], mosquitto_fresh: MosquittoBroker,
        hubs: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporter, "ACK_TIMEOUT", 1.0)  # the hub may resubscribe late
    site = make_site(mosquitto_fresh)
    hub = hubs(mosquitto_fresh, site.cac_id, auto_ack=True)
    try:
        await site.sell(10)
        await site.start()
        await until(lambda: site.reporter.stats.acked_seq == 10, "the first ten acked")
        mosquitto_fresh.stop()
        await until(lambda: not site.reporter.connected.is_set(), "the reporter to notice")
        await site.sell(5)
        mosquitto_fresh.start()
        await until(lambda: site.reporter.stats.acked_seq == 15, "the rest acked")
        assert await site.backlog() == 0
        assert sorted(set(hub.seqs())) == list(range(1, 16))
        assert site.reporter.stats.reconnects >= 1
        assert site.reporter.stats.last_error
        assert site.reporter.connected.is_set()
    finally:
        await site.reporter.stop()


async def test_a_thousand_records_closed_while_the_broker_is_down_all_arrive_in_order(
        make_site: Callable[[MosquittoBroker], Site], tmp_path: Path,
        mosquitto_factory: Callable[..., MosquittoBroker], hubs: Callable[..., FakeHub],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporter, "ACK_TIMEOUT", 2.0)
    # a broker that keeps sessions over its restart, so the hub's subscription is there
    # before the agent is back whichever reconnects first (the order is then the agent's)
    (tmp_path / "persist").mkdir()
    broker = mosquitto_factory(extra_config=(
        "persistence true", f"persistence_location {tmp_path / 'persist'}/"))
    site = make_site(broker)
    hub = hubs(broker, site.cac_id, auto_ack=True, persistent=True)
    try:
        await site.start()
        broker.stop()
        await until(lambda: not site.reporter.connected.is_set(), "the reporter to notice")
        await site.sell(1000)
        await asyncio.sleep(0.5)  # a few failed reconnection attempts
        broker.start()
        await until(lambda: site.reporter.stats.acked_seq == 1000, "every record acked",
                    limit=30)
        assert await site.backlog() == 0
        # in order and none missing: the first copy of each record came in sequence order
        assert list(dict.fromkeys(hub.seqs())) == list(range(1, 1001))
        assert all(len(b) <= MAX_BATCH for b in hub.batches())
    finally:
        await site.reporter.stop()


async def test_a_link_that_drops_but_carries_acks_keeps_the_reconnect_delay_short(
        make_site: Callable[[Any], Site], mosquitto: MosquittoBroker,
        hubs: Callable[..., FakeHub], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A flapping uplink (tests/netproxy.py): each short connection gets its records acked,
    so the next try comes after the shortest delay, not a doubling one; a link that lets
    nothing through still backs off."""
    import logging
    import re
    from types import SimpleNamespace

    from netproxy import LinkProxy

    monkeypatch.setattr(reporter, "RECONNECT_MIN", 0.2)
    monkeypatch.setattr(reporter, "RECONNECT_MAX", 10.0)
    caplog.set_level(logging.DEBUG, logger="agent.reporter")
    link = LinkProxy(mosquitto.port, latency=0.02)
    await link.start()
    site = make_site(SimpleNamespace(host="127.0.0.1", port=link.port))  # type: ignore[arg-type]
    hubs(mosquitto, site.cac_id, auto_ack=True)
    try:
        await site.start()
        for i in range(4):
            await site.sell(1)
            await until(lambda i=i: site.reporter.stats.acked_seq == i + 1, f"ack {i + 1}")
            link.cut()
            await until(lambda i=i: site.reporter.stats.connects == i + 2,
                        f"connection {i + 2}")
        delays = [float(d) for d in re.findall(r"retrying in ([\d.]+) s", caplog.text)]
        assert len(delays) == 4
        assert max(delays) <= 0.2 * 1.5 + 0.05, delays  # each time the first, short delay
        caplog.clear()
        link.hold_down(None)  # now nothing gets through: the delays double
        await until(lambda: len(re.findall(r"retrying in", caplog.text)) >= 4, "4 retries")
        delays = [float(d) for d in re.findall(r"retrying in ([\d.]+) s", caplog.text)]
        assert delays[3] > 0.2 * 1.5 * 2, delays
    finally:
        await site.reporter.stop()
        await link.stop()
