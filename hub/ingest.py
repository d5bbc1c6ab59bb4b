"""Hub ingest: MQTT messages in, validated, stored, fleet state updated, acks out.

No network here: ``Ingest.handle_batch`` takes (topic, payload) pairs and returns the acks
to publish, so tests and fuzzers call it directly; ``hub.mqtt`` feeds it from paho.

For every message: the topic must be a CAC topic of ours (else rejected as ``topic``); the
payload must decode as that kind (``malformed``, ``oversized``, ``wrong_version``,
``invalid`` from wire.messages); every usage record must carry the topic's cac_id
(``foreign``), a seq of at least 1, and a batch at most ``MAX_BATCH`` long. A refused
message changes nothing, is counted by reason, and is logged once per (reason, CAC).

Usage from all messages of a batch is written in one store transaction (one fsync); only
after it commits does the hub answer each CAC of the batch with one ``Ack`` carrying its
current watermark, also when everything was a duplicate, so a re-sending agent converges.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common.logonce import LogOnce
from hub import commands, history
from hub.fleet import CacView, FleetState, Transition
from hub.metrics import Counters
from hub.store import StoreError, UsageStore
from wire.messages import (
    MAX_BATCH,
    Ack,
    CommandAck,
    Health,
    Record,
    Status,
    Usage,
    WireError,
    decode,
    encode,
)
from wire.topics import FROM_CAC, CacTopic, Kind, TopicError, cac_topic, parse_cac_topic

log = logging.getLogger(__name__)

MAX_SEQ = 2**53  # seqs are JSON numbers; beyond this they are not exact everywhere
MAX_LOGGED_KEYS = 10_000  # bound the log-once memory against a flood of distinct CAC ids
MAX_CACHED_TOPICS = 100_000  # parsed topics remembered (4 kinds x thousands of CACs)
PRUNE_SECONDS = 600.0  # how often old health history is deleted

_Update = Callable[[], Transition | None]  # a fleet mutation, run under the lock


@dataclass(frozen=True)
class Incoming:
    """One MQTT message as received (``retained``: re-delivered on subscribe)."""

    topic: str
    payload: bytes
    retained: bool = False


@dataclass(frozen=True)
class Outgoing:
    """A message to publish with QoS 1, not retained (acks)."""

    topic: str
    payload: bytes


class Ingest:
    """Validates and applies messages; owns the writing store; guards fleet with ``lock``.

    ``handle_batch`` and ``flush`` run in one thread (the ingest worker); the fleet may be
    read from others through ``views``/``view``/``evaluate``, which take ``lock``.
    """

    def __init__(self, store: UsageStore, fleet: FleetState, counters: Counters | None = None
                 ) -> None:
        self.store = store
        self.fleet = fleet
        self.counters = counters if counters is not None else Counters()
        self.lock = threading.Lock()
        self._logged = LogOnce(log, MAX_LOGGED_KEYS, "too many distinct refusals: from now on "
                                                     "they are only counted")
        self._topics: dict[str, CacTopic] = {}
        self.history = history.HistoryBuffer()  # health samples, written by ``flush``
        self.came_online: list[str] = []  # CACs that came online (their commands re-sent)
        self._cmd_acks: list[tuple[str, CommandAck]] = []
        self._next_prune = 0.0
        self.store_down_since: float | None = None  # usage could not be stored since then

    # ------------------------------------------------------------------ messages

    def handle(self, topic: str, payload: bytes, now: float, *,
               retained: bool = False) -> list[Outgoing]:
        """One message (see ``handle_batch``)."""
        return self.handle_batch([Incoming(topic, payload, retained)], now)

    def handle_batch(self, messages: Sequence[Incoming], now: float) -> list[Outgoing]:
        """Apply messages in order; store their usage in one transaction; return the acks.

        Raises StoreError if the usage could not be stored (nothing of it was, nothing is
        acknowledged: the agents will send it again).
        """
        usage: list[tuple[str, list[Record]]] = []
        for m in messages:
            self._one(m, now, usage)
        if self._cmd_acks:
            self._store_command_acks(now)
        if not usage:
            return []
        watermarks: dict[str, int] = {}
        conflicts: dict[str, int] = {}
        stored = duplicates = 0
        try:
            # one transaction, the CACs in cac_id order (see store_usage_many)
            for cac_id, result in self.store.store_usage_many(usage, now):
                watermarks[cac_id] = result.watermark
                stored += result.stored
                duplicates += result.duplicates
                if result.conflicts:
                    conflicts[cac_id] = conflicts.get(cac_id, 0) + result.conflicts
        except StoreError as exc:
            self.counters.add("store_errors")
            log.error("usage from %d CAC(s) not stored, not acknowledged: %s",  # noqa: TRY400
                      len({c for c, _ in usage}), exc)
            if self.store_down_since is None:
                self.store_down_since = now
            raise
        self.store_down_since = None
        self.counters.add("store_commits")
        self.counters.add("records_stored", stored)
        self.counters.add("records_duplicate", duplicates)
        for cac_id, n in conflicts.items():
            self.counters.add("records_conflict", n)
            self._log_once("conflicting usage records", cac_id,
                           f"{n} record(s) clash with stored ones (an id known under another "
                           "CAC or seq, or a seq reused by a new id); the first stored copy "
                           "of an id is kept, every new id is stored")
        return [Outgoing(cac_topic(cac_id, Kind.ACK), encode(Ack(seq=wm)))
                for cac_id, wm in watermarks.items()]

    def _topic(self, topic: str) -> CacTopic:
        """parse_cac_topic, remembered: a hub sees the same few topics per CAC all day."""
        parsed = self._topics.get(topic)
        if parsed is None:
            parsed = parse_cac_topic(topic)
            if len(self._topics) >= MAX_CACHED_TOPICS:
                self._topics.clear()
            self._topics[topic] = parsed
        return parsed

    def _one(self, m: Incoming, now: float, usage: list[tuple[str, list[Record]]]) -> None:
        try:
            topic = self._topic(m.topic)
        except TopicError as exc:
            self._reject("topic", "", str(exc))
            return
        cac_id, kind = topic.cac_id, topic.kind
        if kind not in FROM_CAC:
            self._reject("topic", cac_id, f"the hub does not consume {kind} messages")
            return
        self.counters.message(kind)
        try:
            if kind is Kind.USAGE:
                msg = decode(m.payload, Usage)
                _check_usage(cac_id, msg)
                usage.append((cac_id, msg.records))
                self._fleet_update(lambda: self.fleet.touch(cac_id, now))
            elif kind is Kind.STATUS:
                status = decode(m.payload, Status)
                self._fleet_update(
                    lambda: self.fleet.apply_status(cac_id, status, now, retained=m.retained))
            elif kind is Kind.HEALTH:
                health = decode(m.payload, Health)
                self._fleet_update(lambda: self.fleet.apply_health(cac_id, health, now))
                self.history.add(cac_id, now, history.sample(health))
            else:  # Kind.CMD_ACK: the answer to a command (hub/commands.py)
                cmd_ack = decode(m.payload, CommandAck)
                log.debug("cac %s: command %s %s", cac_id, cmd_ack.id, cmd_ack.status)
                self._cmd_acks.append((cac_id, cmd_ack))
                self._fleet_update(lambda: self.fleet.touch(cac_id, now))
        except WireError as exc:
            self._reject(exc.kind, cac_id, str(exc))

    def _fleet_update(self, update: _Update) -> None:
        with self.lock:
            t = update()
        if t is not None:
            _log_transition(t)
            if t.online:
                self.came_online.append(t.cac_id)

    def _store_command_acks(self, now: float) -> None:
        acks, self._cmd_acks = self._cmd_acks, []
        aux = self.store.aux  # commands live in the SQLite store (hub/pgstore.py)
        try:
            with aux.transaction():
                for cac_id, ack in acks:
                    if not commands.record_ack(aux.db, cac_id, ack, now):
                        self._log_once("answer to an unknown command", cac_id,
                                       f"command id {ack.id[:64]!r}")
        except StoreError as exc:
            self.counters.add("store_errors")
            log.error("command answers not stored: %s", exc)  # noqa: TRY400

    def take_came_online(self) -> list[str]:
        out, self.came_online = self.came_online, []
        return out

    def _reject(self, reason: str, cac_id: str, message: str) -> None:
        self.counters.reject(reason)
        self._log_once(f"refused {reason} message", cac_id, message)

    def _log_once(self, reason: str, cac_id: str, message: str) -> None:
        self._logged((reason, cac_id), "%s%s: %s (further ones are only counted)", reason,
                     f" from {cac_id}" if cac_id else "", message)

    # ------------------------------------------------------------------ fleet

    def evaluate(self, now: float) -> list[Transition]:
        """Apply the silence rule (called every second); logs and returns transitions."""
        with self.lock:
            changes = self.fleet.evaluate(now)
        for t in changes:
            _log_transition(t)
        return changes

    def views(self) -> list[CacView]:
        with self.lock:
            return self.fleet.snapshot()

    def view(self, cac_id: str) -> CacView | None:
        with self.lock:
            return self.fleet.get(cac_id)

    def flush(self, now: float | None = None) -> int:
        """Write changed fleet rows (and, given ``now``, finished health-history minutes)
        to the store; returns how many fleet rows."""
        if now is not None:
            self.flush_history(now)
        with self.lock:
            rows = self.fleet.take_dirty()
        if not rows:
            return 0
        try:
            self.store.save_cacs(rows)
        except StoreError as exc:
            self.counters.add("store_errors")
            log.error("fleet state not saved (kept in memory): %s", exc)  # noqa: TRY400
            return 0
        self.counters.add("store_commits")
        return len(rows)

    def flush_history(self, now: float, *, everything: bool = False) -> int:
        """Write the health-history buckets whose minute is over; prune now and then."""
        buckets = self.history.take_closed(now, everything=everything)
        prune = now >= self._next_prune
        if not buckets and not prune:
            return 0
        aux = self.store.aux
        try:
            with aux.transaction():
                n = history.write(aux.db, buckets)
                if prune:
                    history.prune(aux.db, now)
                    self._next_prune = now + PRUNE_SECONDS
        except StoreError as exc:
            self.counters.add("store_errors")
            log.error("health history not saved: %s", exc)  # noqa: TRY400
            return 0
        return n

    def merge_from_store(self, now: float) -> None:
        """Take what other hub workers saved (shared subscriptions split health among us)."""
        try:
            rows = self.store.load_cacs()
        except StoreError as exc:
            log.error("cannot read fleet rows of other workers: %s", exc)  # noqa: TRY400
            return
        with self.lock:
            changes = [t for t in (self.fleet.merge(r, now) for r in rows) if t is not None]
        for t in changes:
            _log_transition(t)


def _check_usage(cac_id: str, msg: Usage) -> None:
    if len(msg.records) > MAX_BATCH:
        raise WireError("oversized", f"{len(msg.records)} records in one message, the "
                                     f"limit is {MAX_BATCH}")
    for rec in msg.records:
        if rec.cac_id != cac_id:
            raise WireError("foreign", f"record {rec.id[:64]!r} carries cac_id "
                                       f"{rec.cac_id[:64]!r}, not the topic's")
        if not 1 <= rec.seq <= MAX_SEQ:
            raise WireError("invalid", f"record {rec.id[:64]!r} has seq {rec.seq}, "
                                       f"not in 1..{MAX_SEQ}")
        if not rec.id:
            raise WireError("invalid", "a record has an empty id")


def _log_transition(t: Transition) -> None:
    log.info("cac %s %s (%s)", t.cac_id, "online" if t.online else "offline", t.reason)
