"""One simulated CAC agent, pure: given ``now`` (seconds since the epoch) and its own
``random.Random``, ``SimCac.step`` says what the agent publishes next and ``on_ack`` takes the
hub's acks. No sockets, no clock reads; ``hub.sim.driver`` puts it on the network.

Usage goes out through ``common.usage_window.UsageWindow``, as the agent's reporter does; fees
come from ``hub.sim.pricing`` with ``DEFAULT_TARIFF`` (CONTRACT §3).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from common.usage_window import ACK_TIMEOUT, ACK_TIMEOUT_MAX, MAX_IN_FLIGHT, UsageWindow
from hub.sim.pricing import DEFAULT_TARIFF, SimTariff, fee
from wire.messages import (
    MAX_BATCH,
    MAX_PAYLOAD_BYTES,
    Command,
    CommandAck,
    ContentUseRecord,
    Health,
    Profile,
    Record,
    SessionRecord,
    StationHealth,
    Status,
    Usage,
    VoidRecord,
    VoucherSaleRecord,
    encode,
)
from wire.topics import Kind, cac_topic

__all__ = ["ACK_TIMEOUT", "ACK_TIMEOUT_MAX", "DEFAULT_TARIFF", "MAX_IN_FLIGHT", "SIM_VERSION",
           "Publish", "SimCac", "SimSettings", "SimStats", "cac_ids"]

SIM_VERSION = "sim-0.1"  # the software version the simulated agents report

HEALTH_INTERVAL = 30.0  # seconds, as the real agent
USAGE_RATE = 4.0  # usage records per CAC per hour (a busy CAC: ~40 a day over 10 hours)
DEFAULT_TIMEZONE = "Africa/Casablanca"

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
# the impact data (CONTRACT §9b, issue 18): profiles on sessions, content use aggregates
CONTENT_USE_SHARE = 0.05  # usage records that are a content_use increment
PROFILE_SHARE = 0.75  # sessions whose citizen answered the "help us count" question
PROFILE_PART_SHARE = 0.9  # each answered part (purpose, age band, gender)
REUSED_VOUCHER_SHARE = 0.4  # voucher sessions on a voucher already used (a return visit)
PURPOSES = (("egov", 30), ("job", 20), ("school", 25), ("business", 8), ("training", 10),
            ("other", 7))
AGE_BANDS = (("<18", 15), ("18-24", 35), ("25-34", 25), ("35-54", 18), ("55+", 7))
GENDERS = (("f", 46), ("m", 52), ("x", 2))
PACKAGES = ("wikipedia-fr", "wikipedia-ar", "khan-academy-fr", "gov-services", "jobs-guide")

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
    tariff: SimTariff = field(default_factory=lambda: DEFAULT_TARIFF)
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
        self.outbox: list[Record] = []
        self._sales: deque[VoucherSaleRecord] = deque(maxlen=KEEP_SALES)
        self._vouchers: deque[str] = deque(maxlen=KEEP_SALES)  # voucher ids used lately
        # the impact data draws from a stream of its own: ``rng`` gives the same records as
        # before it existed (tests and benchmarks replay seeds)
        self.impact_rng = random.Random(f"{cac_id}-impact-{self.boot_id}")
        self.window = UsageWindow(0, now, ack_timeout=settings.ack_timeout,
                                  ack_timeout_max=settings.ack_timeout_max,
                                  max_in_flight=settings.max_in_flight)
        self.next_health = now
        self.next_usage = now + self._usage_gap()
        self.next_due = now

    @property
    def acked_seq(self) -> int:
        return self.window.acked_seq

    @property
    def sent_seq(self) -> int:
        return self.window.sent_seq

    # ------------------------------------------------------------ the agent's life

    def status(self, state: Literal["online", "offline"], now: float) -> bytes:
        return encode(Status(state=state, boot_id=self.boot_id, version=SIM_VERSION,
                             at=_iso(now)))

    def connected(self, now: float) -> list[Publish]:
        """A new connection: the retained birth, a health report, usage from acked_seq + 1."""
        self.window.restart(now)
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
        self.window.on_ack(seq, now)
        self.stats.acks += 1
        self.next_due = now  # the window has room: the next step sends more
        return True

    @property
    def backlog(self) -> int:
        return len(self.outbox)

    # ------------------------------------------------------------ usage out

    def _check_ack_timeout(self, now: float) -> None:
        if self.window.due(now):
            self.stats.republishes += 1

    def _fill_window(self, now: float, out: list[Publish]) -> None:
        while (after := self.window.next_batch()) is not None:
            start = after - self.acked_seq
            batch = self.outbox[start:start + MAX_BATCH]
            if not batch:
                return
            payload = encode(Usage(records=batch))
            while len(payload) > MAX_PAYLOAD_BYTES and len(batch) > 1:
                batch = batch[:len(batch) // 2]
                payload = encode(Usage(records=batch))
            out.append(Publish(Kind.USAGE, payload, qos=1))
            self.window.sent(batch[-1].seq, now)
            self.stats.batches += 1
            self.stats.records_published += len(batch)

    def _plan(self) -> None:
        due = min(self.next_health, self.next_usage)
        deadline = self.window.deadline()
        if deadline is not None:
            due = min(due, deadline)
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
        rec = self._session(at)
        if self.impact_rng.random() < CONTENT_USE_SHARE:
            return self._content_use(at)
        return rec

    def _pick(self, weighted: Sequence[tuple[str, int]]) -> str | None:
        rng = self.impact_rng
        if rng.random() >= PROFILE_PART_SHARE:
            return None
        return rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]

    def _profile(self) -> Profile | msgspec.UnsetType:
        if self.impact_rng.random() >= PROFILE_SHARE:
            return msgspec.UNSET  # skipped
        return Profile(purpose=self._pick(PURPOSES), age_band=self._pick(AGE_BANDS),
                       gender=self._pick(GENDERS))

    def _voucher_id(self) -> str | None:
        vid = _id(self.rng) if self.rng.random() < VOUCHER_SESSION_SHARE else None
        if vid is None:
            return None
        if self._vouchers and self.impact_rng.random() < REUSED_VOUCHER_SHARE:
            return self.impact_rng.choice(self._vouchers)
        self._vouchers.append(vid)
        return vid

    def _content_use(self, at: float) -> ContentUseRecord:
        """Content opened at the kiosks since the last such record (increments)."""
        rng = self.impact_rng
        day = datetime.fromtimestamp(at, UTC).astimezone(self.tz).date().isoformat()
        opens = {p: rng.randint(1, 12) for p in rng.sample(PACKAGES, rng.randint(1, 3))}
        return ContentUseRecord(id=_id(rng), seq=self.last_seq, cac_id=self.cac_id,
                                at=_iso(at), tz=self.settings.timezone, day=day,
                                opens=opens)

    def _category(self) -> str | None:
        if "student" in self.settings.tariff.concessions and self.rng.random() < STUDENT_SHARE:
            return "student"
        return None

    def _session(self, at: float) -> SessionRecord:
        """A session that ended at ``at``: its fee is what the CAC's tariff says."""
        rng, tariff = self.rng, self.settings.tariff
        if rng.random() < SHORT_SESSION_SHARE:
            billed = rng.randint(5, max(5, tariff.grace_seconds - 1))
        else:
            billed = int(min(SESSION_MAX_S, max(60, rng.lognormvariate(
                math.log(SESSION_MEDIAN_S), 0.7))))
        category = self._category()
        voucher_id = self._voucher_id()
        minutes = rng.choice(VOUCHER_MINUTES) if voucher_id else rng.choice(PREPAID_MINUTES)
        if minutes is not None:
            billed = min(billed, minutes * 60)
        if minutes is not None and billed == minutes * 60:
            end_reason = "time_exhausted"
        else:
            end_reason = rng.choices(("citizen", "operator", "idle"), weights=(80, 15, 5))[0]
        ended = datetime.fromtimestamp(at, UTC)
        started = ended - timedelta(seconds=billed)
        charged = 0 if voucher_id else fee(tariff, started, billed, self.tz, category)
        return SessionRecord(
            id=_id(rng), seq=self.last_seq, cac_id=self.cac_id, at=ended.isoformat(),
            station=rng.choice(self._stations).id, started_at=started.isoformat(),
            ended_at=ended.isoformat(), billed_seconds=billed, fee=charged,
            currency=tariff.currency, category=category, voucher_id=voucher_id,
            operator=None if voucher_id else "counter", minutes=minutes,
            end_reason=end_reason, paid_by="voucher" if voucher_id else "cash",
            profile=self._profile())

    def _voucher_sale(self, at: float) -> VoucherSaleRecord:
        tariff = self.settings.tariff
        minutes = self.rng.choice(VOUCHER_MINUTES)
        category = self._category()
        sold = datetime.fromtimestamp(at, UTC)
        rec = VoucherSaleRecord(
            id=_id(self.rng), seq=self.last_seq, cac_id=self.cac_id, at=sold.isoformat(),
            minutes=minutes, price=fee(tariff, sold, minutes * 60, self.tz, category),
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
