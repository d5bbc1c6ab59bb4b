"""The CAC simulator: its pure model (fees, outbox, acks, health) and its real MQTT clients."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from helpers import MosquittoBroker
from paho.mqtt.enums import CallbackAPIVersion

from agent.tariff import compute_fee
from hub import simulator
from hub.sim import driver
from hub.sim.cac import DEFAULT_TARIFF, SIM_VERSION, Publish, SimCac, SimSettings, cac_ids
from hub.sim.driver import Simulator
from wire.messages import (
    Ack,
    Command,
    CommandAck,
    ContentUseRecord,
    Health,
    Profile,
    SessionRecord,
    Status,
    Usage,
    VoidRecord,
    VoucherSaleRecord,
    decode,
    encode,
)
from wire.topics import Kind, TopicError, cac_topic, hub_subscriptions, parse_cac_topic

T0 = datetime.fromisoformat("2024-05-01T06:00:00+00:00").timestamp()
TZ = ZoneInfo("Africa/Casablanca")
DECODERS: dict[Kind, Any] = {Kind.STATUS: Status, Kind.HEALTH: Health, Kind.USAGE: Usage,
            Kind.CMD_ACK: CommandAck}


def model(seed: int = 1, now: float = T0, **kw: Any) -> SimCac:
    return SimCac("sim-0001", SimSettings(**kw), random.Random(seed), now)


def usage_seqs(pubs: list[Publish]) -> list[int]:
    return [r.seq for p in pubs if p.kind is Kind.USAGE for r in decode(p.payload, Usage).records]


# ---------------------------------------------------------------- the pure model


def test_cac_ids_follow_the_contract() -> None:
    assert cac_ids(3) == ["sim-0001", "sim-0002", "sim-0003"]
    assert cac_ids(12000, "x")[-1] == "x-12000"
    with pytest.raises(TopicError):
        cac_ids(2, "Sim_")


def test_records_follow_the_tariff_and_the_ledger_rules() -> None:
    """Three days of a busy CAC: every fee is what agent.tariff says, seqs are 1..n."""
    m = model(usage_rate=120)
    now = T0
    while now < T0 + 3 * 86400:
        now += 60
        m.accrue(now)
    recs = m.outbox
    assert len(recs) > 5000
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
    assert len({r.id for r in recs}) == len(recs)
    assert all(r.cac_id == "sim-0001" and getattr(r, "currency", "MAD") == "MAD" for r in recs)
    sales: dict[str, VoucherSaleRecord] = {}
    voided: set[str] = set()
    fees = []
    content_days: set[str] = set()
    for r in recs:
        if isinstance(r, SessionRecord):
            started = datetime.fromisoformat(r.started_at)
            ended = datetime.fromisoformat(r.ended_at)
            assert (ended - started).total_seconds() == r.billed_seconds
            assert r.at == r.ended_at
            if r.voucher_id is not None:
                assert r.fee == 0 and r.paid_by == "voucher"
            else:
                assert r.fee == compute_fee(DEFAULT_TARIFF, started, r.billed_seconds, TZ,
                                            r.category)
                fees.append((r.billed_seconds, r.category, r.fee))
            if r.minutes is not None:
                assert r.billed_seconds <= r.minutes * 60
        elif isinstance(r, VoucherSaleRecord):
            assert r.price == compute_fee(DEFAULT_TARIFF, datetime.fromisoformat(r.at),
                                          r.minutes * 60, TZ, r.category)
            sales[r.id] = r
        elif isinstance(r, ContentUseRecord):  # issue 18: daily content increments
            assert r.day == datetime.fromisoformat(r.at).astimezone(TZ).date().isoformat()
            assert r.opens and all(n > 0 for n in r.opens.values())
            content_days.add(r.day)
        else:
            assert isinstance(r, VoidRecord)
            assert r.ref in sales and r.ref not in voided  # an earlier sale, voided once
            voided.add(r.ref)
            assert r.amount == sales[r.ref].price
            assert r.minutes_voided == sales[r.ref].minutes
    # the tariff's cases all occur: free in the grace period, day and night blocks, students
    assert any(s < 60 and f == 0 for s, _c, f in fees)
    assert any(s == 900 and c is None and f == 200 for s, c, f in fees)  # day block
    assert any(s == 900 and c is None and f == 100 for s, c, f in fees)  # night band
    assert any(c == "student" and f > 0 for _s, c, f in fees)
    assert sales and voided
    # the impact data: profiles (some skipped), vouchers used again, content every day
    sessions = [r for r in recs if isinstance(r, SessionRecord)]
    given = [r.profile for r in sessions if isinstance(r.profile, Profile)]
    assert 0.6 < len(given) / len(sessions) < 0.9
    assert {p.gender for p in given} >= {"f", "m", None}
    vouchers = [r.voucher_id for r in sessions if r.voucher_id]
    assert len(set(vouchers)) < len(vouchers)
    assert len(content_days) >= 3
    # and a batch of them is a valid wire message
    decode(encode(Usage(records=recs[:200])), Usage)


def test_health_is_valid_varied_and_the_disk_fills_slowly() -> None:
    fleet = [model(seed, health_interval=30, usage_rate=0, stations=6) for seed in range(40)]
    reports: dict[int, list[Health]] = defaultdict(list)
    for i, m in enumerate(fleet):
        for p in m.connected(T0):
            if p.kind is Kind.HEALTH:
                reports[i].append(decode(p.payload, Health))
        now = T0
        while now < T0 + 6 * 3600:
            now += 30
            for p in m.step(now):
                assert p.kind is Kind.HEALTH and p.qos == 0 and not p.retain
                reports[i].append(decode(p.payload, Health))
    for hs in reports.values():
        assert 700 <= len(hs) <= 722  # every 30 s for 6 hours
        assert all(h.version == SIM_VERSION and len(h.stations) == 6 for h in hs)
        assert len({h.boot_id for h in hs}) == 1
        assert hs[-1].uptime_s - hs[0].uptime_s == pytest.approx(6 * 3600, abs=31)
        used = [h.disk_total - h.disk_free for h in hs]
        assert used[-1] > used[0]  # filling, slowly: well under 1% of the disk in 6 hours
        assert hs[-1].disk_percent - hs[0].disk_percent < 1
        assert hs[-1].net_recv > hs[0].net_recv
    firsts = [hs[0] for hs in reports.values()]
    assert 5 < sum(1 for h in firsts if h.temps) < 35  # some sites have sensors
    assert len({h.cpu_percent for h in firsts}) > 30
    assert len({h.mem_total for h in firsts}) > 1


def frozen_outbox(n_seconds: float = 10, **kw: Any) -> tuple[SimCac, float]:
    """A connected model with a few records that then stops creating new ones."""
    m = model(usage_rate=3600, **kw)
    m.connected(T0)
    now = T0 + n_seconds
    m.accrue(now)
    m.next_usage = math.inf
    return m, now


def test_usage_is_published_once_then_again_after_the_ack_timeout() -> None:
    m, now = frozen_outbox(ack_timeout=10, ack_timeout_max=40)
    n = m.last_seq
    assert n >= 3
    assert usage_seqs(m.step(now)) == list(range(1, n + 1))
    assert usage_seqs(m.step(now + 9.9)) == []
    assert usage_seqs(m.step(now + 10)) == list(range(1, n + 1))  # no ack: again
    assert m.stats.republishes == 1
    assert usage_seqs(m.step(now + 10 + 19.9)) == []  # the wait doubled
    assert usage_seqs(m.step(now + 30)) == list(range(1, n + 1))
    # an ack frees the outbox up to its seq and resets the wait
    assert m.on_ack(2, now + 31)
    assert m.backlog == n - 2 and m.acked_seq == 2
    assert usage_seqs(m.step(now + 40.9)) == []
    assert usage_seqs(m.step(now + 41)) == list(range(3, n + 1))
    assert m.on_ack(n, now + 42)
    assert m.backlog == 0
    assert usage_seqs(m.step(now + 1000)) == []
    # stale acks and acks beyond the last record change nothing
    assert not m.on_ack(1, now + 1001)
    assert not m.on_ack(n + 5, now + 1001)
    assert m.stats.refused_acks == 1 and m.acked_seq == n


def test_acked_usage_is_not_published_again_and_a_reconnect_resumes_after_the_ack() -> None:
    m, now = frozen_outbox(ack_timeout=5)
    n = m.last_seq
    assert usage_seqs(m.step(now)) == list(range(1, n + 1))
    m.on_ack(n, now + 0.1)
    assert usage_seqs(m.step(now + 60)) == []
    assert m.stats.republishes == 0
    m.next_usage = now + 61  # two more records, the second one after a reconnect
    m.step(now + 61.5)
    m.next_usage = math.inf
    after = m.connected(now + 62)
    assert [p.kind for p in after[:2]] == [Kind.STATUS, Kind.HEALTH]
    assert after[0].retain and after[0].qos == 1
    assert decode(after[0].payload, Status).state == "online"
    assert usage_seqs(after) == [n + 1]  # sent again on the new connection: not acked yet


def test_the_in_flight_window_is_bounded() -> None:
    m = model(usage_rate=3600 * 50, max_in_flight=2)
    m.connected(T0)
    pubs = []
    for k in range(1, 20):  # ~50 records a step, each step's records in one new batch
        pubs += m.step(T0 + k)
    assert len([p for p in pubs if p.kind is Kind.USAGE]) == 2
    m.on_ack(m.sent_seq, T0 + 20)
    more = m.step(T0 + 20)
    seqs = usage_seqs(more)
    assert seqs[0] == m.acked_seq + 1 and len(seqs) <= 2 * 200


# ---------------------------------------------------------------- real clients, real broker


@dataclass
class Seen:
    at: float
    cac_id: str
    kind: Kind
    payload: bytes
    msg: Any


@dataclass
class FakeHub:
    """A bare paho subscriber on every CAC topic that acks the usage of ``acking`` CACs."""

    broker: MosquittoBroker
    acking: set[str] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)
    seqs: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        c = self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="",
                                      clean_session=True)
        c.on_message = self._on_message
        ready = threading.Event()
        c.on_subscribe = lambda *a: ready.set()
        c.connect(self.broker.host, self.broker.port)
        c.loop_start()
        c.subscribe([(t, 1) for t in hub_subscriptions()])
        assert ready.wait(5)

    def _on_message(self, client: mqtt.Client, userdata: object, m: mqtt.MQTTMessage) -> None:
        topic = parse_cac_topic(m.topic)
        payload = bytes(m.payload)
        msg: Any = decode(payload, DECODERS[topic.kind])  # every message is valid, or this raises
        with self.lock:
            self.seen.append(Seen(time.time(), topic.cac_id, topic.kind, payload, msg))
        if isinstance(msg, Usage) and topic.cac_id in self.acking:
            got = self.seqs[topic.cac_id]
            got.update(r.seq for r in msg.records)
            mark = 0
            while mark + 1 in got:
                mark += 1
            client.publish(cac_topic(topic.cac_id, Kind.ACK), encode(Ack(seq=mark)), qos=1)

    def command(self, cac_id: str) -> None:
        self.client.publish(cac_topic(cac_id, Kind.CMD),
                            encode(Command(id="c1", name="lock", station="s1")), qos=1)

    def of(self, cac_id: str, kind: Kind | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.cac_id == cac_id and kind in (None, s.kind)]

    async def sync(self, limit: float = 10.0) -> None:
        """Publish a marker through the broker and wait until it comes back: whatever the
        broker had to deliver before (a will of a socket that closed earlier) is here."""
        marker = f"ma-marker-{time.monotonic_ns()}"
        self.client.publish(cac_topic(marker, Kind.STATUS), encode(Status(
            state="offline", boot_id="marker", version="0", at="2026-01-01T00:00:00+00:00")),
            qos=1)
        await until(lambda: bool(self.of(marker)), "the marker back from the broker", limit)
        with self.lock:
            self.seen = [s for s in self.seen if s.cac_id != marker]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def until(pred: Any, what: str, limit: float = 10.0) -> None:
    """Poll ``pred`` without blocking the loop until it holds, or fail after ``limit`` s."""
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.02)


def first_seen_seqs(seen: list[Seen]) -> tuple[list[int], dict[int, list[float]]]:
    order: list[int] = []
    times: dict[int, list[float]] = defaultdict(list)
    for s in seen:
        assert isinstance(s.msg, Usage)
        for r in s.msg.records:
            if r.seq not in times:
                order.append(r.seq)
            times[r.seq].append(s.at)
    return order, times


async def test_twenty_cacs_on_a_real_broker(mosquitto: MosquittoBroker) -> None:
    ack_timeout = 1.0
    settings = SimSettings(health_interval=0.5, usage_rate=7200, ack_timeout=ack_timeout,
                           ack_timeout_max=8)
    sim = Simulator(mosquitto.host, mosquitto.port, 20, prefix="simtest", settings=settings,
                    no_will_kill=3, kill_after=1.5, seed=7)
    ids = [a.model.cac_id for a in sim.agents]
    victims = set(sim.victims)
    assert len(victims) == 3
    live = [c for c in ids if c not in victims]
    acking, silent_hub = set(live[:9]), set(live[9:])
    hub = FakeHub(mosquitto, acking=acking)
    try:
        task = asyncio.create_task(sim.run(duration=5.0))
        # the command goes once the CAC is online and the victims have gone silent
        await until(lambda: sim.killed_at is not None and bool(hub.of(live[0], Kind.STATUS)),
                    "the victims' kill and the commanded CAC online")
        hub.command(live[0])
        summary = await task
        await hub.sync()  # a will would be here by now, if one were sent
    finally:
        hub.close()
    assert summary.cacs == 20 and summary.connected == 17 and summary.silenced == 3
    assert summary.offline_published == 17
    assert sim.killed_at is not None
    by_id = {a.model.cac_id: a.model for a in sim.agents}

    for cac in ids:
        statuses = [s.msg for s in hub.of(cac, Kind.STATUS)]
        assert isinstance(statuses[0], Status)
        assert statuses[0].state == "online" and statuses[0].version == SIM_VERSION
        health = [s.msg for s in hub.of(cac, Kind.HEALTH)]
        assert health and all(isinstance(h, Health) and h.boot_id == statuses[0].boot_id
                              for h in health)
        order, times = first_seen_seqs(hub.of(cac, Kind.USAGE))
        assert order == list(range(1, len(order) + 1)), f"{cac}: seqs not 1..n in order"
        if cac in victims:
            # silent from the kill on, and never an offline status: no will, no goodbye
            assert [s.state for s in statuses] == ["online"]
            assert all(s.at < sim.killed_at + 0.3 for s in hub.of(cac))
            continue
        assert [s.state for s in statuses] == ["online", "offline"]  # clean stop at the end
        assert len(order) >= 4
        if cac in acking:
            assert all(len(t) == 1 for t in times.values()), f"{cac} re-sent acked records"
            assert by_id[cac].stats.republishes == 0
            assert by_id[cac].acked_seq >= len(order) - 3
        else:
            assert by_id[cac].stats.republishes >= 1 and by_id[cac].acked_seq == 0
            first, second = times[1][:2]  # seq 1 went out again, after the ack timeout
            assert second - first >= ack_timeout * 0.9
    cmd_acks = [s.msg for s in hub.of(live[0], Kind.CMD_ACK)]
    assert len(cmd_acks) == 1 and isinstance(cmd_acks[0], CommandAck)
    assert cmd_acks[0].id == "c1" and cmd_acks[0].status == "done"  # simulated lock
    assert [st.locked for st in by_id[live[0]]._stations][:1] == [True]
    assert silent_hub


async def test_simulated_cacs_come_back_after_a_broker_restart(
        mosquitto_fresh: MosquittoBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "RECONNECT_MIN", 0.1)
    settings = SimSettings(health_interval=0.5, usage_rate=3600)
    sim = Simulator(mosquitto_fresh.host, mosquitto_fresh.port, 5, prefix="simrestart",
                    settings=settings, seed=3)
    task = asyncio.create_task(sim.run(duration=6.0))
    await asyncio.sleep(1.5)
    await asyncio.to_thread(mosquitto_fresh.stop)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(mosquitto_fresh.start)
    hub = FakeHub(mosquitto_fresh)
    try:
        summary = await task
    finally:
        hub.close()
    assert summary.connects == 10 and summary.reconnects == 5
    for a in sim.agents:
        assert [s.msg.state for s in hub.of(a.model.cac_id, Kind.STATUS)][:1] == ["online"]
        assert hub.of(a.model.cac_id, Kind.HEALTH)
        # nothing acked: the new connection starts again from seq 1
        order, _ = first_seen_seqs(hub.of(a.model.cac_id, Kind.USAGE))
        assert order[:1] == [1]


def test_the_command_runs_and_prints_a_summary(mosquitto: MosquittoBroker,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = simulator.main(["--host", mosquitto.host, "--port", str(mosquitto.port),
                           "--count", "3", "--prefix", "simcli", "--duration", "1.5",
                           "--health-interval", "0.5", "--log-level", "WARNING"])
    out = capsys.readouterr().out
    assert code == 0
    assert "3 CACs simcli-0001..simcli-0003" in out
    assert "health published: " in out and "offline published at stop: 3" in out


@pytest.mark.parametrize("args, message", [
    (["--count", "0"], "--count must be at least 1"),
    (["--prefix", "Bad_"], "bad CAC id"),
    (["--count", "2", "--no-will-kill", "3"], "--no-will-kill 3"),
    (["--password", "x"], "a password needs --username"),
    (["--health-interval", "0"], "health interval"),
])
def test_bad_arguments_get_a_one_line_error(args: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        simulator.main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
