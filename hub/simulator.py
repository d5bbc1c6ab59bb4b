"""`cac-simulate`: N simulated CAC agents as real MQTT clients, for load tests and the demo.

On the wire each simulated CAC behaves like ``agent.reporter``: client id ``cac-{id}``,
persistent session, a retained ``online`` birth with its boot id and version ``sim-0.1``, a
retained ``offline`` last will, health every ``--health-interval`` seconds (QoS 0), and usage
records (sessions, voucher sales, voids) with per-CAC sequence numbers from 1, published in
order from an in-memory outbox (QoS 1, at most ``MAX_IN_FLIGHT`` batches unacknowledged),
dropped only on the hub's ``ack``, and published again when the hub makes no progress for
``ack_timeout`` seconds (the wait doubling up to ``ACK_TIMEOUT_MAX``, as the reporter does).

Two halves:

- ``SimCac`` is pure: given ``now`` (seconds since the epoch) and its own ``random.Random``,
  ``step`` says what the agent publishes next and ``on_ack`` takes the hub's acks. Fees come
  from ``agent.tariff.compute_fee`` with ``DEFAULT_TARIFF`` (CONTRACT §3).
- ``Simulator`` drives every paho client from ONE asyncio loop through paho's external-loop
  API (``socket``, ``loop_read``, ``loop_write``, ``want_write``, ``loop_misc``; the socket is
  registered with ``add_reader``/``add_writer`` as aiomqtt does). There is no thread per
  client; blocking TCP connects run on ``CONNECT_WORKERS`` executor threads, at most
  ``--ramp`` new connections per second so the broker is not flooded.

``--no-will-kill K``: K CACs, chosen at start, connect with keepalive ``SILENT_KEEPALIVE``
(the protocol's maximum, ~18 h: the broker gives up on a silent client only after 1.5 times
that), and ``--kill-after`` seconds after the connection ramp they stop servicing their socket. The
TCP connection stays open and silent, so the broker never delivers their will and the hub
must mark them offline after its ``offline_after_seconds``. At exit they drain their socket
and send a DISCONNECT, so the will is not delivered then either (their retained status stays
``online``, as for a site that vanished without a last will).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import functools
import logging
import math
import random
import resource
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Literal, NoReturn
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from agent.config import Band, Tariff
from agent.tariff import compute_fee
from hub import __version__
from wire.messages import (
    MAX_BATCH,
    MAX_PAYLOAD_BYTES,
    Ack,
    Command,
    CommandAck,
    Health,
    Record,
    SessionRecord,
    StationHealth,
    Status,
    Usage,
    VoidRecord,
    VoucherSaleRecord,
    WireError,
    decode,
    encode,
)
from wire.topics import Kind, TopicError, agent_subscriptions, cac_topic, parse_cac_topic

log = logging.getLogger(__name__)

PROG = "cac-simulate"
SIM_VERSION = "sim-0.1"  # the software version the simulated agents report

HEALTH_INTERVAL = 30.0  # seconds, as the real agent
USAGE_RATE = 4.0  # usage records per CAC per hour (a busy CAC: ~40 a day over 10 hours)
ACK_TIMEOUT = 20.0  # no ack progress for this long: publish again from acked_seq + 1
ACK_TIMEOUT_MAX = 300.0
MAX_IN_FLIGHT = 4  # usage batches published and not yet acknowledged
KEEPALIVE = 30
SILENT_KEEPALIVE = 65535  # --no-will-kill CACs: the broker waits 1.5x this before the will
RAMP_PER_SECOND = 200.0  # new connections per second
KILL_AFTER = 2.0  # seconds after the connection ramp before the --no-will-kill CACs go silent
TICK_SECONDS = 0.05  # how often every CAC is asked whether something is due
MISC_SECONDS = 1.0  # paho's loop_misc (keepalive pings), connect timeouts
PROGRESS_SECONDS = 10.0  # an INFO line with the totals
CONNECT_WORKERS = 4  # executor threads for blocking TCP connects
MAX_PENDING_CONNECTS = 64  # connects started and not yet answered by a CONNACK
CONNECT_TIMEOUT = 10.0
RECONNECT_MIN = 1.0
RECONNECT_MAX = 60.0
RECONNECT_JITTER = 0.5
STOP_TIMEOUT = 5.0  # how long a clean stop waits for the broker to take the `offline`s

DEFAULT_TIMEZONE = "Africa/Casablanca"
DEFAULT_TARIFF = Tariff(  # the example tariff of CONTRACT §2
    currency="MAD", block_minutes=15, block_price=200, minimum_blocks=1, grace_seconds=60,
    bands=(Band(dtime(20, 0), dtime(8, 0), 100),), concessions={"student": 50},
)

# shares of the usage records (the rest are sessions)
VOUCHER_SALE_SHARE = 0.15
VOID_SHARE = 0.03
VOUCHER_SESSION_SHARE = 0.25  # sessions started from a voucher (fee 0: paid at the sale)
STUDENT_SHARE = 0.2
SHORT_SESSION_SHARE = 0.05  # sessions inside the grace period (free)
SESSION_MEDIAN_S = 25 * 60
SESSION_MAX_S = 4 * 3600
VOUCHER_MINUTES = (30, 60, 120, 300)
PREPAID_MINUTES = (15, 30, 60, None)  # None: open-ended, paid at the end
VOUCHER_VALID_DAYS = 30
KEEP_SALES = 50  # recent voucher sales a void may refer to

GB = 10**9
MB = 10**6
GIB = 2**30


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def cac_ids(count: int, prefix: str = "sim", regions: Sequence[str] = ()) -> list[str]:
    """``sim-0001`` ... (zero-padded to at least 4 digits); with ``regions``, CAC i is
    ``{prefix}-{regions[i % len]}-{i}`` (the hub groups by that second part). Raises
    TopicError for a bad id."""
    width = max(4, len(str(count)))
    if regions:
        ids = [f"{prefix}-{regions[(i - 1) % len(regions)]}-{i:0{width}d}"
               for i in range(1, count + 1)]
        for cid in ids[:len(regions)]:
            cac_topic(cid, Kind.STATUS)
    else:
        ids = [f"{prefix}-{i:0{width}d}" for i in range(1, count + 1)]
    for cid in ids[:1] + ids[-1:]:
        cac_topic(cid, Kind.STATUS)  # the contract's id rule
    return ids


# ================================================================ the pure simulation


@dataclass(frozen=True)
class SimSettings:
    """How every simulated CAC behaves (all intervals in seconds)."""

    stations: int = 4
    health_interval: float = HEALTH_INTERVAL
    usage_rate: float = USAGE_RATE  # records per CAC per hour
    ack_timeout: float = ACK_TIMEOUT
    ack_timeout_max: float = ACK_TIMEOUT_MAX
    max_in_flight: int = MAX_IN_FLIGHT
    tariff: Tariff = field(default_factory=lambda: DEFAULT_TARIFF)
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        if not 1 <= self.stations <= 64:
            raise ValueError(f"stations must be between 1 and 64, got {self.stations}")
        if not 0 < self.health_interval <= 86400:
            raise ValueError(f"health interval must be in (0, 86400] s, got "
                             f"{self.health_interval}")
        if not 0 <= self.usage_rate <= 360_000:
            raise ValueError(f"usage rate must be in [0, 360000] per hour, got "
                             f"{self.usage_rate}")
        if not 0 < self.ack_timeout <= self.ack_timeout_max:
            raise ValueError("ack timeout must be positive and at most ack_timeout_max")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")


@dataclass(frozen=True, slots=True)
class Publish:
    """One message a simulated CAC sends."""

    kind: Kind
    payload: bytes
    qos: int
    retain: bool = False


@dataclass
class SimStats:
    health: int = 0
    records: int = 0  # usage records created
    batches: int = 0  # usage messages published (first sends and re-sends)
    records_published: int = 0
    republishes: int = 0  # ack timeouts that sent everything after acked_seq again
    acks: int = 0  # acks that moved records out of the outbox
    refused_acks: int = 0  # acks beyond the last record (e.g. a hub that knew an earlier run)
    commands: int = 0


@dataclass
class _Station:
    id: str
    online: bool
    since: float
    in_session: bool = False
    locked: bool = False


class SimCac:
    """One simulated agent without sockets: ``connected``, ``step``, ``accrue``, ``on_ack``.

    ``next_due`` is the earliest time ``step`` has something to do (a caller may skip it
    until then). ``now`` is wall-clock seconds since the epoch everywhere.
    """

    def __init__(self, cac_id: str, settings: SimSettings, rng: random.Random,
                 now: float) -> None:
        self.cac_id = cac_id
        self.settings = settings
        self.rng = rng
        self.tz = ZoneInfo(settings.timezone)
        self.stats = SimStats()
        self.boot_id = _id(rng)
        self.booted_at = now - rng.uniform(60, 10 * 86400)
        # the host: fixed at boot, then drifting
        self._cores = rng.choice((2, 4))
        self._mem_total = rng.choice((2, 4, 8)) * GIB
        self._mem = rng.uniform(25, 60)
        self._disk_total = rng.choice((64, 128, 256)) * GB
        self._disk_used = self._disk_total * rng.uniform(0.2, 0.7)
        self._disk_fill = rng.uniform(20, 300) * MB / 86400  # bytes per second
        self._cpu_base = rng.uniform(3, 25)
        self._temp = rng.uniform(38, 55) if rng.random() < 0.6 else None
        self._net_sent = rng.randrange(MB, GB)
        self._net_recv = rng.randrange(MB, 10 * GB)
        self._rss = rng.uniform(38, 55) * MB
        self._stations = [_Station(f"s{i}", rng.random() < 0.9, now - rng.uniform(0, 3600))
                          for i in range(1, settings.stations + 1)]
        self._last_sample = now
        # what commands change (answered like agent/commands.py, repeated ids not re-run)
        self.tariff_version = 0
        self.message: str = ""
        self.answers: dict[str, CommandAck] = {}
        self.content_synced_at = now - rng.uniform(0, 6 * 3600)
        self.content_installed = rng.randint(2, 12)
        # usage and the outbox: records acked_seq+1 .. last_seq, in order
        self.last_seq = 0
        self.acked_seq = 0
        self.sent_seq = 0
        self.outbox: list[Record] = []
        self._sales: deque[VoucherSaleRecord] = deque(maxlen=KEEP_SALES)
        self._in_flight: deque[tuple[int, float]] = deque()  # (last seq, sent at)
        self._last_progress = now
        self._ack_timeout = settings.ack_timeout
        self.next_health = now
        self.next_usage = now + self._usage_gap()
        self.next_due = now

    # ------------------------------------------------------------ the agent's life

    def status(self, state: Literal["online", "offline"], now: float) -> bytes:
        return encode(Status(state=state, boot_id=self.boot_id, version=SIM_VERSION,
                             at=_iso(now)))

    def connected(self, now: float) -> list[Publish]:
        """A new connection: the retained birth, a health report, usage from acked_seq + 1."""
        self.sent_seq = self.acked_seq
        self._in_flight.clear()
        self._last_progress = now
        self._ack_timeout = self.settings.ack_timeout
        out = [Publish(Kind.STATUS, self.status("online", now), qos=1, retain=True)]
        self.accrue(now)
        out.append(self._health(now))
        # the next report at a random phase: a fleet that connected together spreads out
        self.next_health = now + self.rng.uniform(0, self.settings.health_interval)
        self._fill_window(now, out)
        self._plan()
        return out

    def step(self, now: float) -> list[Publish]:
        """What to publish at ``now`` while connected: health if due, new and re-sent usage."""
        self.accrue(now)
        out: list[Publish] = []
        if now >= self.next_health:
            out.append(self._health(now))
            self.next_health += self.settings.health_interval
            if self.next_health <= now:  # we were not asked for a while: no burst of reports
                self.next_health = now + self.settings.health_interval
        self._check_ack_timeout(now)
        self._fill_window(now, out)
        self._plan()
        return out

    def accrue(self, now: float) -> None:
        """Record the usage that happened up to ``now`` (also while offline: the outbox fills)."""
        while self.next_usage <= now:
            self.outbox.append(self._new_record(self.next_usage))
            self.next_usage += self._usage_gap()
        self.next_due = min(self.next_due, self.next_usage)

    def on_ack(self, seq: int, now: float) -> bool:
        """The hub stored everything up to ``seq``; False if it changed nothing."""
        if seq <= self.acked_seq:
            return False
        if seq > self.last_seq:
            self.stats.refused_acks += 1
            return False
        del self.outbox[:seq - self.acked_seq]
        self.acked_seq = seq
        self.sent_seq = max(self.sent_seq, seq)
        self._last_progress = now
        self._ack_timeout = self.settings.ack_timeout
        while self._in_flight and self._in_flight[0][0] <= seq:
            self._in_flight.popleft()
        self.stats.acks += 1
        self.next_due = now  # the window has room: the next step sends more
        return True

    @property
    def backlog(self) -> int:
        return len(self.outbox)

    # ------------------------------------------------------------ usage out

    def _check_ack_timeout(self, now: float) -> None:
        if not self._in_flight:
            return
        since = max(self._in_flight[0][1], self._last_progress)
        if now - since < self._ack_timeout:
            return
        self._ack_timeout = min(self._ack_timeout * 2, self.settings.ack_timeout_max)
        self.stats.republishes += 1
        self._in_flight.clear()
        self.sent_seq = self.acked_seq
        self._last_progress = now

    def _fill_window(self, now: float, out: list[Publish]) -> None:
        while len(self._in_flight) < self.settings.max_in_flight:
            start = self.sent_seq - self.acked_seq
            batch = self.outbox[start:start + MAX_BATCH]
            if not batch:
                return
            payload = encode(Usage(records=batch))
            while len(payload) > MAX_PAYLOAD_BYTES and len(batch) > 1:
                batch = batch[:len(batch) // 2]
                payload = encode(Usage(records=batch))
            out.append(Publish(Kind.USAGE, payload, qos=1))
            self.sent_seq = batch[-1].seq
            self._in_flight.append((self.sent_seq, now))
            self.stats.batches += 1
            self.stats.records_published += len(batch)

    def _plan(self) -> None:
        due = min(self.next_health, self.next_usage)
        if self._in_flight:
            due = min(due, max(self._in_flight[0][1], self._last_progress) + self._ack_timeout)
        self.next_due = due

    # ------------------------------------------------------------ usage in

    def _usage_gap(self) -> float:
        rate = self.settings.usage_rate / 3600
        return self.rng.expovariate(rate) if rate > 0 else math.inf

    def _new_record(self, at: float) -> Record:
        self.last_seq += 1
        self.stats.records += 1
        r = self.rng.random()
        if r < VOID_SHARE and self._sales:
            return self._void(at)
        if r < VOID_SHARE + VOUCHER_SALE_SHARE:
            return self._voucher_sale(at)
        return self._session(at)

    def _category(self) -> str | None:
        if "student" in self.settings.tariff.concessions and self.rng.random() < STUDENT_SHARE:
            return "student"
        return None

    def _session(self, at: float) -> SessionRecord:
        """A session that ended at ``at``: its fee is what the agent's tariff says."""
        rng, tariff = self.rng, self.settings.tariff
        if rng.random() < SHORT_SESSION_SHARE:
            billed = rng.randint(5, max(5, tariff.grace_seconds - 1))
        else:
            billed = int(min(SESSION_MAX_S, max(60, rng.lognormvariate(
                math.log(SESSION_MEDIAN_S), 0.7))))
        category = self._category()
        voucher_id = _id(rng) if rng.random() < VOUCHER_SESSION_SHARE else None
        minutes = rng.choice(VOUCHER_MINUTES) if voucher_id else rng.choice(PREPAID_MINUTES)
        if minutes is not None:
            billed = min(billed, minutes * 60)
        if minutes is not None and billed == minutes * 60:
            end_reason = "time_exhausted"
        else:
            end_reason = rng.choices(("citizen", "operator", "idle"), weights=(80, 15, 5))[0]
        ended = datetime.fromtimestamp(at, UTC)
        started = ended - timedelta(seconds=billed)
        fee = 0 if voucher_id else compute_fee(tariff, started, billed, self.tz, category)
        return SessionRecord(
            id=_id(rng), seq=self.last_seq, cac_id=self.cac_id, at=ended.isoformat(),
            station=rng.choice(self._stations).id, started_at=started.isoformat(),
            ended_at=ended.isoformat(), billed_seconds=billed, fee=fee,
            currency=tariff.currency, category=category, voucher_id=voucher_id,
            operator=None if voucher_id else "counter", minutes=minutes,
            end_reason=end_reason, paid_by="voucher" if voucher_id else "cash")

    def _voucher_sale(self, at: float) -> VoucherSaleRecord:
        tariff = self.settings.tariff
        minutes = self.rng.choice(VOUCHER_MINUTES)
        category = self._category()
        sold = datetime.fromtimestamp(at, UTC)
        rec = VoucherSaleRecord(
            id=_id(self.rng), seq=self.last_seq, cac_id=self.cac_id, at=sold.isoformat(),
            minutes=minutes, price=compute_fee(tariff, sold, minutes * 60, self.tz, category),
            currency=tariff.currency, category=category,
            expires_at=(sold + timedelta(days=VOUCHER_VALID_DAYS)).isoformat(),
            operator="counter")
        self._sales.append(rec)
        return rec

    def _void(self, at: float) -> VoidRecord:
        """An unused voucher sold earlier, taken back in full (as ``void_voucher`` does)."""
        sale = self._sales.popleft()
        return VoidRecord(
            id=_id(self.rng), seq=self.last_seq, cac_id=self.cac_id, at=_iso(at), ref=sale.id,
            amount=sale.price, currency=sale.currency, minutes_voided=sale.minutes,
            reason=self.rng.choice(("sold by mistake", "refund")), operator="manager")

    # ------------------------------------------------------------ commands

    def command(self, cmd: Command, now: float) -> CommandAck:
        """Carry out a hub command as the agent would (a repeated id is not run again)."""
        known = self.answers.get(cmd.id)
        if known is not None:
            return known
        stations = [st for st in self._stations if cmd.station in (None, st.id)]
        status: Literal["done", "failed"] = "done"
        if not stations:
            status, text = "failed", f"no station {cmd.station!r} at this CAC"
        elif cmd.name in ("lock", "unlock"):
            for st in stations:
                st.locked = cmd.name == "lock"
                st.in_session = st.in_session and not st.locked
            text = f"{cmd.name}ed {', '.join(st.id for st in stations)}"
        elif cmd.name == "message":
            self.message = str(cmd.args.get("text", ""))
            text = "message shown"
        elif cmd.name == "set_tariff" and isinstance(cmd.args.get("tariff"), dict):
            self.tariff_version += 1
            text = f"tariff version {self.tariff_version} in force for new sessions"
        elif cmd.name == "resync_content":
            self.content_synced_at = now
            text = "content sync started"
        elif cmd.name == "restart":
            text = "a simulated agent does not restart"
        else:
            status, text = "failed", f"unknown or malformed command {cmd.name!r}"
        ack = CommandAck(id=cmd.id, status=status, message=text)
        self.answers[cmd.id] = ack
        if len(self.answers) > 200:
            del self.answers[next(iter(self.answers))]
        return ack

    # ------------------------------------------------------------ health

    def _health(self, now: float) -> Publish:
        rng = self.rng
        dt = max(0.0, now - self._last_sample)
        self._last_sample = now
        for st in self._stations:
            if st.online and rng.random() < 0.01:
                st.online, st.since, st.in_session = False, now, False
            elif not st.online and rng.random() < 0.3:
                st.online, st.since = True, now
            if st.online and rng.random() < 0.2:
                st.in_session = not st.in_session
        busy = sum(st.in_session for st in self._stations)
        cpu = min(100.0, max(0.5, self._cpu_base + 6 * busy + rng.gauss(0, 6)))
        self._mem = min(95.0, max(15.0, self._mem + rng.gauss(0, 1.5)))
        self._disk_used += self._disk_fill * dt * rng.uniform(0.5, 1.5)
        if self._disk_used > 0.97 * self._disk_total:  # the operator cleaned up
            self._disk_used = 0.6 * self._disk_total
        self._net_sent += int(dt * (2_000 + 20_000 * busy) * rng.uniform(0.5, 1.5))
        self._net_recv += int(dt * (10_000 + 200_000 * busy) * rng.uniform(0.5, 1.5))
        self._rss = min(120 * MB, max(30 * MB, self._rss + rng.gauss(0, 0.2 * MB)))
        temps: dict[str, float] = {}
        if self._temp is not None:
            core = self._temp + cpu * 0.25 + rng.gauss(0, 1.0)
            temps = {"coretemp": round(core, 1), "acpitz": round(core - 8, 1)}
        load = round(cpu / 100 * self._cores, 2)
        health = Health(
            at=_iso(now), boot_id=self.boot_id, version=SIM_VERSION,
            uptime_s=round(now - self.booted_at, 1), cpu_percent=round(cpu, 1),
            load=[load, round(load * 0.9, 2), round(load * 0.8, 2)],
            mem_percent=round(self._mem, 1), mem_total=self._mem_total,
            disk_percent=round(100 * self._disk_used / self._disk_total, 1),
            disk_free=int(self._disk_total - self._disk_used), disk_total=self._disk_total,
            temps=temps, net_sent=self._net_sent, net_recv=self._net_recv,
            agent_rss=int(self._rss), backlog=self.backlog,
            stations=[StationHealth(
                id=st.id, online=st.online, in_session=st.in_session,
                last_seen_s=round(rng.uniform(0.2, 5.0) if st.online else now - st.since, 1),
                locked=st.locked)
                for st in self._stations],
            content={"catalogue_etag": f"sim-{self.content_installed}",
                     "last_check_at": _iso(now), "last_success_at": _iso(self.content_synced_at),
                     "installed": self.content_installed, "queued": 0, "bytes_queued": 0,
                     "used_bytes": self.content_installed * 40 * MB, "quota_bytes": 20 * GB,
                     "error": None, "disk_full": False},
            tariff_version=self.tariff_version,
        )
        self.stats.health += 1
        return Publish(Kind.HEALTH, encode(health), qos=0)


# ================================================================ the network side


class _State(enum.Enum):
    WAITING = "waiting"  # for its turn to connect (ramp, or backoff after a loss)
    OPENING = "opening"  # TCP connect running on an executor thread
    CONNECTING = "connecting"  # CONNECT sent, waiting for the CONNACK
    CONNECTED = "connected"
    SILENCED = "silenced"  # --no-will-kill: socket open, never serviced again
    STOPPED = "stopped"


def _reconnect_delays(rng: random.Random) -> Iterator[float]:
    backoff = RECONNECT_MIN
    while True:
        yield backoff * (1 + rng.uniform(0, RECONNECT_JITTER))
        backoff = min(backoff * 2, RECONNECT_MAX)


class _Agent:
    """One simulated CAC's connection: its model, its paho client, its socket registration."""

    __slots__ = ("client", "connects", "delays", "model", "opened_at", "retry_at", "sock",
                 "state", "topics", "victim", "writing")

    def __init__(self, model: SimCac, victim: bool, retry_at: float) -> None:
        self.model = model
        self.victim = victim
        self.state = _State.WAITING
        self.retry_at = retry_at
        self.client: mqtt.Client | None = None
        self.sock: Any = None
        self.writing = False
        self.opened_at = 0.0
        self.connects = 0
        self.delays = _reconnect_delays(model.rng)
        self.topics = {kind: cac_topic(model.cac_id, kind) for kind in Kind}


@dataclass
class SimSummary:
    """Totals of one run."""

    cacs: int
    connected: int  # connected at the end (before the clean stop)
    silenced: int
    connects: int
    reconnects: int
    connect_failures: int
    health: int
    records: int
    records_published: int
    batches: int
    republishes: int
    acks: int
    records_acked: int
    refused_acks: int
    commands: int
    foreign_messages: int
    offline_published: int
    wall_seconds: float
    cpu_seconds: float

    def render(self) -> str:
        cpu = 100 * self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0
        return "\n".join([
            f"{PROG}: {self.cacs} CACs for {self.wall_seconds:.1f} s, CPU {cpu:.0f}% of one core",
            f"  connections: {self.connected} connected at the end, {self.connects} connects "
            f"({self.reconnects} reconnects, {self.connect_failures} failed), "
            f"{self.silenced} silenced (no will)",
            f"  health published: {self.health}",
            f"  usage records: {self.records} created, {self.records_published} published in "
            f"{self.batches} messages ({self.republishes} re-publications after an ack timeout)",
            f"  acked: {self.records_acked} records by {self.acks} acks "
            f"({self.refused_acks} refused acks beyond the last record)",
            f"  commands answered: {self.commands}; foreign messages: {self.foreign_messages}; "
            f"offline published at stop: {self.offline_published}",
        ])


class Simulator:
    """N simulated CACs on real MQTT connections, all driven from the running asyncio loop."""

    def __init__(self, host: str, port: int, count: int, *, prefix: str = "sim",
                 settings: SimSettings | None = None, username: str | None = None,
                 password: str | None = None, no_will_kill: int = 0,
                 ramp: float = RAMP_PER_SECOND, kill_after: float = KILL_AFTER,
                 seed: int | None = None, regions: Sequence[str] = ()) -> None:
        if not 0 <= no_will_kill <= count:
            raise ValueError(f"--no-will-kill {no_will_kill} is not between 0 and {count}")
        if ramp <= 0:
            raise ValueError("the ramp must be positive")
        if username is not None:
            try:
                username.format(cac_id="x")
            except (KeyError, IndexError, ValueError):
                raise ValueError(f"the username {username!r} may only hold the placeholder "
                                 "{cac_id}") from None
        self.host, self.port = host, port
        self.settings = settings or SimSettings()
        self.username, self.password = username, password
        self.ramp = ramp
        self.kill_after = kill_after
        master = random.Random(seed)
        ids = cac_ids(count, prefix, regions)
        victims = set(master.sample(ids, no_will_kill))
        now = time.time()
        self.agents = [
            _Agent(SimCac(cid, self.settings, random.Random(master.getrandbits(64)), now),
                   cid in victims, 0.0)
            for cid in ids
        ]
        self.victims = sorted(victims)
        self.foreign_messages = 0
        self.connect_failures = 0
        self.offline_published = 0
        self.killed_at: float | None = None  # wall clock when the victims went silent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._closing = False
        self._logged: set[str] = set()

    # ------------------------------------------------------------ public

    @property
    def connected(self) -> int:
        return sum(1 for a in self.agents if a.state is _State.CONNECTED)

    async def run(self, duration: float | None = None,
                  stop: asyncio.Event | None = None) -> SimSummary:
        """Run until ``duration`` seconds have passed or ``stop`` is set; then stop cleanly."""
        loop = self._loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        self._pool = ThreadPoolExecutor(CONNECT_WORKERS, thread_name_prefix="sim-connect")
        wall0, cpu0 = time.monotonic(), _cpu_seconds()
        start = loop.time()
        for i, a in enumerate(self.agents):
            a.retry_at = start + i / self.ramp
        ramp_end = start + len(self.agents) / self.ramp
        kill_at = ramp_end + self.kill_after if self.victims else math.inf
        end = start + duration if duration is not None else math.inf
        next_misc = start
        next_progress = start + PROGRESS_SECONDS
        tokens = 0.0
        last = start
        connected_at_end = 0
        try:
            while not stop.is_set() and loop.time() < end:
                mono = loop.time()
                tokens = min(max(1.0, self.ramp * TICK_SECONDS * 2),
                             tokens + (mono - last) * self.ramp)
                last = mono
                tokens = self._tick(time.time(), mono, tokens)
                if mono >= next_misc:
                    next_misc = mono + MISC_SECONDS
                    self._misc(mono)
                if mono >= kill_at:
                    kill_at = math.inf
                    self._silence_victims()
                if mono >= next_progress:
                    next_progress = mono + PROGRESS_SECONDS
                    self._progress()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK_SECONDS):
                        await stop.wait()
            connected_at_end = self.connected
        finally:
            await self._shutdown()
        return self._summary(connected_at_end, time.monotonic() - wall0, _cpu_seconds() - cpu0)

    # ------------------------------------------------------------ the loop's work

    def _tick(self, now: float, mono: float, tokens: float) -> float:
        for a in self.agents:
            state = a.state
            if state is _State.CONNECTED:
                if now >= a.model.next_due:
                    self._send(a, a.model.step(now))
            elif state is _State.SILENCED or state is _State.STOPPED:
                continue
            else:
                a.model.accrue(now)
                if (state is _State.WAITING and mono >= a.retry_at and tokens >= 1
                        and self._pending < MAX_PENDING_CONNECTS):
                    tokens -= 1
                    self._start_connect(a)
        return tokens

    def _misc(self, mono: float) -> None:
        for a in self.agents:
            if a.state is _State.CONNECTED:
                assert a.client is not None
                a.client.loop_misc()
                self._after(a)
            elif a.state is _State.CONNECTING and mono - a.opened_at > CONNECT_TIMEOUT:
                assert a.client is not None
                self._log_once("connack", "no CONNACK within %.0f s (%s); retrying",
                               CONNECT_TIMEOUT, a.model.cac_id)
                self.connect_failures += 1
                a.client.disconnect()  # closes the socket; on_disconnect schedules a retry

    def _progress(self) -> None:
        stats = [a.model.stats for a in self.agents]
        log.info("%d/%d connected; health %d, records %d, acked %d, re-publications %d",
                 self.connected, len(self.agents), sum(s.health for s in stats),
                 sum(s.records for s in stats), sum(a.model.acked_seq for a in self.agents),
                 sum(s.republishes for s in stats))

    def _silence_victims(self) -> None:
        """--no-will-kill: stop servicing these sockets; they stay open and say nothing."""
        n = 0
        for a in self.agents:
            if not a.victim or a.state is _State.STOPPED:
                continue
            if a.client is not None and a.sock is not None:
                a.client.loop_write()  # what is queued goes to the kernel, which delivers it
                self._unregister(a)
            if a.state is _State.CONNECTED:
                n += 1
            a.state = _State.SILENCED
        self.killed_at = time.time()
        log.info("%d CACs went silent without a will (%d of them were connected): %s",
                 len(self.victims), n, ", ".join(self.victims[:10]))

    # ------------------------------------------------------------ connections

    def _make_client(self, a: _Agent) -> mqtt.Client:
        model = a.model
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cac-{model.cac_id}",
                             clean_session=False, protocol=mqtt.MQTTv311, userdata=a,
                             reconnect_on_failure=False)
        client.connect_timeout = CONNECT_TIMEOUT
        if self.username is not None:
            client.username_pw_set(self.username.format(cac_id=model.cac_id), self.password)
        client.will_set(a.topics[Kind.STATUS], model.status("offline", time.time()), qos=1,
                        retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_close = self._on_socket_close
        # no on_socket_register_write: paho then writes at once when a publish is made
        # outside a callback; what stays queued is flushed by _after
        return client

    def _start_connect(self, a: _Agent) -> None:
        assert self._loop is not None and self._pool is not None
        # a new paho client per connection (as the reporter does): what the last one held
        # in flight is not sent twice; the model re-publishes from acked_seq + 1
        a.client = self._make_client(a)
        a.state = _State.OPENING
        self._pending += 1
        keepalive = SILENT_KEEPALIVE if a.victim else KEEPALIVE
        fut = self._loop.run_in_executor(self._pool, self._open, a.client, keepalive)
        fut.add_done_callback(functools.partial(self._opened, a))

    def _open(self, client: mqtt.Client, keepalive: int) -> None:
        """On an executor thread: TCP connect and send CONNECT (blocking, bounded)."""
        client.connect(self.host, self.port, keepalive=keepalive)

    def _opened(self, a: _Agent, fut: asyncio.Future[None] | Future[None]) -> None:
        assert self._loop is not None and a.client is not None
        self._pending -= 1
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            self.connect_failures += 1
            self._log_once(f"connect:{type(exc).__name__}", "cannot connect to %s:%d: %s",
                           self.host, self.port, exc)
            if a.state is _State.OPENING:
                self._retry(a)
            return
        a.connects += 1
        if a.state is _State.SILENCED:
            return  # it connected after the kill: it stays open and silent
        if self._closing:
            a.state = _State.STOPPED
            a.client.disconnect()
            return
        sock = a.client.socket()
        if sock is None:
            self._retry(a)
            return
        a.sock = sock
        self._loop.add_reader(sock, self._readable, a)
        a.state = _State.CONNECTING
        a.opened_at = self._loop.time()
        self._after(a)

    def _retry(self, a: _Agent) -> None:
        assert self._loop is not None
        a.state = _State.WAITING
        a.retry_at = self._loop.time() + next(a.delays)

    def _unregister(self, a: _Agent) -> None:
        if a.sock is not None and self._loop is not None:
            self._loop.remove_reader(a.sock)
            if a.writing:
                self._loop.remove_writer(a.sock)
        a.sock = None
        a.writing = False

    def _readable(self, a: _Agent) -> None:
        assert a.client is not None
        try:
            a.client.loop_read()
        except Exception:  # a bug in a callback must not stop the other CACs
            log.exception("error while reading for %s", a.model.cac_id)
        self._after(a)

    def _writable(self, a: _Agent) -> None:
        assert a.client is not None and self._loop is not None
        a.client.loop_write()
        if not a.client.want_write() and a.writing and a.sock is not None:
            self._loop.remove_writer(a.sock)
            a.writing = False

    def _after(self, a: _Agent) -> None:
        """Write what paho queued (inside callbacks it only queues); wait for room if needed."""
        client = a.client
        if client is None or a.sock is None or a.state is _State.SILENCED:
            return
        if client.want_write():
            client.loop_write()
            if client.want_write() and not a.writing and a.sock is not None:
                assert self._loop is not None
                self._loop.add_writer(a.sock, self._writable, a)
                a.writing = True

    def _send(self, a: _Agent, messages: Sequence[Publish]) -> None:
        assert a.client is not None
        for m in messages:
            info = a.client.publish(a.topics[m.kind], m.payload, qos=m.qos, retain=m.retain)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self._log_once(f"publish:{info.rc}", "publish failed: %s",
                               mqtt.error_string(info.rc))
        self._after(a)

    # ------------------------------------------------------------ paho callbacks (loop thread)

    def _on_connect(self, client: mqtt.Client, a: _Agent, flags: mqtt.ConnectFlags,
                    reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.connect_failures += 1
            self._log_once(f"refused:{reason}", "the broker refused %s: %s",
                           a.model.cac_id, reason)
            return  # the broker closes the connection: on_disconnect retries
        if a.state is not _State.CONNECTING:
            return
        a.state = _State.CONNECTED
        a.delays = _reconnect_delays(a.model.rng)
        client.subscribe([(t, 1) for t in agent_subscriptions(a.model.cac_id)])
        self._send(a, a.model.connected(time.time()))

    def _on_disconnect(self, client: mqtt.Client, a: _Agent, flags: Any, reason: Any,
                       properties: Any) -> None:
        if a.state in (_State.STOPPED, _State.SILENCED):
            return
        if a.state is _State.CONNECTED:
            self._log_once("lost", "%s lost its connection (%s); reconnecting",
                           a.model.cac_id, reason)
        self._retry(a)

    def _on_socket_close(self, client: mqtt.Client, a: _Agent, sock: Any) -> None:
        if a.sock is sock:
            self._unregister(a)

    def _on_message(self, client: mqtt.Client, a: _Agent, msg: mqtt.MQTTMessage) -> None:
        try:
            parsed = parse_cac_topic(msg.topic)
        except (TopicError, UnicodeDecodeError):
            parsed = None
        if parsed is None or parsed.cac_id != a.model.cac_id:
            self.foreign_messages += 1
            return
        payload = bytes(msg.payload)
        try:
            if parsed.kind is Kind.ACK:
                a.model.on_ack(decode(payload, Ack).seq, time.time())
            elif parsed.kind is Kind.CMD:
                cmd = decode(payload, Command)
                a.model.stats.commands += 1
                answer = a.model.command(cmd, time.time())
                client.publish(a.topics[Kind.CMD_ACK], encode(answer), qos=1)
            else:
                self.foreign_messages += 1
        except WireError as exc:
            self.foreign_messages += 1
            self._log_once(f"bad:{parsed.kind}:{exc.kind}", "dropping a bad %s message: %s",
                           parsed.kind, exc)

    # ------------------------------------------------------------ stop

    async def _shutdown(self) -> None:
        """Clean stop: retained `offline` from the connected (bounded wait), the silenced
        ones drain their socket, then everyone sends DISCONNECT (so no will is delivered)."""
        assert self._loop is not None
        self._closing = True
        now = time.time()
        infos = []
        for a in self.agents:
            if a.state is _State.CONNECTED and a.client is not None:
                infos.append(a.client.publish(a.topics[Kind.STATUS],
                                              a.model.status("offline", now), qos=1,
                                              retain=True))
                self._after(a)
        for _ in range(int(STOP_TIMEOUT / 0.02)):  # bounded: the broker may be gone
            if all(i.is_published() for i in infos):
                break
            await asyncio.sleep(0.02)
        self.offline_published = sum(1 for i in infos if i.is_published())
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, wait=True)
            await asyncio.sleep(0.05)  # let the last _opened callbacks run
        for a in self.agents:
            client = a.client
            if client is None:
                continue
            if a.state is _State.SILENCED:
                _drain(client)
            a.state = _State.STOPPED
            if client.socket() is not None:
                client.disconnect()
                for _ in range(100):  # a DISCONNECT that did not fit the socket buffer
                    if client.socket() is None or not client.want_write():
                        break
                    client.loop_write()
                    await asyncio.sleep(0.01)
            self._unregister(a)
            sock = client.socket()
            if sock is not None:
                sock.close()

    def _summary(self, connected: int, wall: float, cpu: float) -> SimSummary:
        stats = [a.model.stats for a in self.agents]
        return SimSummary(
            cacs=len(self.agents), connected=connected,
            silenced=len(self.victims) if self.killed_at is not None else 0,
            connects=sum(a.connects for a in self.agents),
            reconnects=sum(max(0, a.connects - 1) for a in self.agents),
            connect_failures=self.connect_failures,
            health=sum(s.health for s in stats), records=sum(s.records for s in stats),
            records_published=sum(s.records_published for s in stats),
            batches=sum(s.batches for s in stats),
            republishes=sum(s.republishes for s in stats), acks=sum(s.acks for s in stats),
            records_acked=sum(a.model.acked_seq for a in self.agents),
            refused_acks=sum(s.refused_acks for s in stats),
            commands=sum(s.commands for s in stats), foreign_messages=self.foreign_messages,
            offline_published=self.offline_published, wall_seconds=wall, cpu_seconds=cpu,
        )

    def _log_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(msg, *args)


def _drain(client: mqtt.Client) -> None:
    """Read what the broker sent to a silenced CAC, so that closing its socket is a FIN, not a
    RST that could overtake our DISCONNECT (and make the broker deliver the will)."""
    for _ in range(10_000):
        sock = client.socket()
        if sock is None:
            return
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return
        client.loop_read()
    return


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# ================================================================ command line


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (CONTRACT §1) instead of usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run N simulated CAC agents as real MQTT clients "
                "(health, usage with acks and re-sends, birth and last will).")
    p.add_argument("--version", action="version",
                   version=f"{PROG} {__version__} (agents report {SIM_VERSION})")
    p.add_argument("--host", default="127.0.0.1", help="the broker (default %(default)s)")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--count", type=int, default=10, help="simulated CACs (default 10)")
    p.add_argument("--prefix", default="sim", help="CAC ids are PREFIX-0001... (default sim)")
    p.add_argument("--regions", default="", metavar="A,B,...",
                   help="spread the CACs over these regions: ids PREFIX-REGION-0001...")
    p.add_argument("--stations", type=int, default=4, help="stations per CAC (default 4)")
    p.add_argument("--health-interval", type=float, default=HEALTH_INTERVAL, metavar="S",
                   help="seconds between health reports (default 30)")
    p.add_argument("--usage-rate", type=float, default=USAGE_RATE, metavar="R",
                   help="usage records per CAC per hour (default 4)")
    p.add_argument("--ack-timeout", type=float, default=ACK_TIMEOUT, metavar="S",
                   help="re-publish unacknowledged usage after this (default 20)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--ramp", type=float, default=RAMP_PER_SECOND, metavar="N",
                   help="new connections per second (default 200)")
    p.add_argument("--username", help="broker user; '{cac_id}' in it is replaced per CAC")
    p.add_argument("--password", help="broker password (prefer --password-file)")
    p.add_argument("--password-file", type=Path, help="file whose first line is the password")
    p.add_argument("--no-will-kill", type=int, default=0, metavar="K",
                   help="K CACs go silent after startup without a will reaching the hub")
    p.add_argument("--kill-after", type=float, default=KILL_AFTER, metavar="S",
                   help="seconds after the connection ramp before they do (default 2)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


async def _serve(sim: Simulator, duration: float | None) -> SimSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await sim.run(duration, stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    if args.kill_after < 0:
        parser.error("--kill-after must not be negative")
    password = args.password
    if args.password_file is not None:
        if password is not None:
            parser.error("give --password or --password-file, not both")
        try:
            password = args.password_file.read_text().splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            parser.error(f"cannot read a password from {args.password_file}: {exc}")
    if password is not None and args.username is None:
        parser.error("a password needs --username")
    try:
        regions = [r.strip() for r in args.regions.split(",") if r.strip()]
        cac_ids(args.count, args.prefix, regions)
        settings = SimSettings(stations=args.stations, health_interval=args.health_interval,
                               usage_rate=args.usage_rate, ack_timeout=args.ack_timeout,
                               ack_timeout_max=max(ACK_TIMEOUT_MAX, args.ack_timeout))
        sim = Simulator(args.host, args.port, args.count, prefix=args.prefix,
                        settings=settings, username=args.username, password=password,
                        no_will_kill=args.no_will_kill, ramp=args.ramp,
                        kill_after=args.kill_after, seed=args.seed, regions=regions)
    except (ValueError, TopicError) as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ids = [a.model.cac_id for a in sim.agents]
    print(f"{PROG}: {len(ids)} CACs {ids[0]}..{ids[-1]} -> mqtt {args.host}:{args.port}",
          flush=True)
    if sim.victims:
        print(f"{PROG}: going silent without a will: {' '.join(sim.victims)}", flush=True)
    try:
        summary = asyncio.run(_serve(sim, args.duration))
    except KeyboardInterrupt:  # a second Ctrl-C during the clean stop
        return 130
    print(summary.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
