"""The site's only MQTT client: status with a last will, health, and usage out of the ledger.

The ledger is the queue. paho keeps unsent QoS 1 messages in memory only and the broker drops
messages for a slow subscriber (FIELD-NOTES), so a usage record leaves the outbox only when the
hub's end-to-end ``ack`` says it is stored:

- On each connection the reporter starts from the ledger's ``acked_seq`` and publishes outbox
  records in sequence order, in batches of at most ``MAX_BATCH`` records (and under
  ``MAX_PAYLOAD_BYTES``), QoS 1, with at most ``MAX_IN_FLIGHT`` batches not yet acknowledged.
- An ack(seq) archives and drops every record up to seq (``Ledger.ack``), frees the batches it
  covers and lets the next ones go. An ack the ledger refuses (beyond its last record) or a
  malformed one is counted, logged once and dropped.
- If the hub makes no progress for ``ACK_TIMEOUT`` (no ack since the oldest unacknowledged
  batch went out), everything after ``acked_seq`` is published again; the hub deduplicates.
  While the hub stays silent the wait doubles (up to ``ACK_TIMEOUT_MAX``), so a hub that is
  down for hours does not find its broker queue full of copies; any ack resets it.
- A connection that drops is retried with exponential backoff and jitter, for ever; the next
  connection starts again from ``acked_seq + 1``. The backoff starts again from the
  shortest delay after a connection that lasted ``STABLE_SECONDS`` or carried an ack or a
  command from the hub (a flapping uplink: see tests/system/test_bad_link*.py).

Threads: paho's network loop runs in paho's own thread (``loop_start``) and its callbacks only
hand events to the event loop (``call_soon_threadsafe``). The ledger and the service are only
touched on the agent's single service thread, ``executor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import socket
import ssl
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from agent import __version__
from agent.config import AgentConfig
from agent.health import prime_cpu_percent, sample_health
from agent.ledger import Ledger, LedgerError, StorageError
from common.logonce import LogOnce
from common.usage_window import ACK_TIMEOUT as ACK_TIMEOUT
from common.usage_window import ACK_TIMEOUT_MAX as ACK_TIMEOUT_MAX
from common.usage_window import MAX_IN_FLIGHT as MAX_IN_FLIGHT
from common.usage_window import RECONNECT_JITTER as RECONNECT_JITTER
from common.usage_window import RECONNECT_MAX as RECONNECT_MAX
from common.usage_window import RECONNECT_MIN as RECONNECT_MIN
from common.usage_window import UsageWindow
from common.usage_window import reconnect_delays as _reconnect_delays
from wire.messages import (
    MAX_BATCH,
    MAX_PAYLOAD_BYTES,
    Ack,
    Command,
    CommandAck,
    Status,
    Usage,
    WireError,
    decode,
    encode,
    record_from_dict,
)
from wire.topics import Kind, TopicError, agent_subscriptions, cac_topic, parse_cac_topic

log = logging.getLogger(__name__)

HEALTH_INTERVAL = 30.0  # default seconds between health reports (QoS 0); config may change it
POLL_INTERVAL = 1.0  # how often the outbox is looked at for new records
STABLE_SECONDS = 30.0  # a connection that lasted this long resets the backoff
CONNECT_TIMEOUT = 10.0  # TCP (and TLS) connect, then CONNACK
KEEPALIVE = 30  # seconds; paho drops a silent connection after 1.5x this
# A black-holed link (a dead 3G modem, a router that drops everything) shows no error: paho
# would only notice when its keepalive runs out, and publishes into the dead connection keep
# putting the PINGREQ off (about 60 s measured). The kernel notices sooner: data the other end
# has not acknowledged for TCP_USER_TIMEOUT ends the connection, and an idle one is probed.
# A slow link is not a dead one: every TCP ack (GPRS-class too) restarts the timer.
TCP_USER_TIMEOUT_MS = 20_000
TCP_KEEPIDLE_SECONDS = 20  # idle this long (rare: health and PINGREQ every 30 s), probe
TCP_KEEPINTVL_SECONDS = 5
TCP_KEEPCNT = 2
STOP_TIMEOUT = 5.0  # how long a clean shutdown waits for the broker to take `offline`
MAX_COMMANDS_KEPT = 100

BOOT_ID = uuid.uuid4().hex  # one per process start: the hub tells restarts apart by it

T = TypeVar("T")
Snapshot = Callable[[], Mapping[str, Any]]


def _tune_socket(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """Let the kernel end a connection whose other end has gone silent (see
    ``TCP_USER_TIMEOUT_MS``); a platform without these options keeps paho's keepalive."""
    opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_USER_TIMEOUT", TCP_USER_TIMEOUT_MS),
                        ("TCP_KEEPIDLE", TCP_KEEPIDLE_SECONDS),
                        ("TCP_KEEPINTVL", TCP_KEEPINTVL_SECONDS),
                        ("TCP_KEEPCNT", TCP_KEEPCNT)):
        if hasattr(socket, name):
            opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    for level, opt, value in opts:
        try:
            sock.setsockopt(level, opt, value)
        except (OSError, AttributeError):  # not a TCP socket (a test double), or refused
            return


class ReporterError(Exception):
    """The MQTT connection failed or was lost (the message says why)."""


@dataclass
class ReporterStats:
    """Counters for tests, logs and health."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0  # connections after the first one
    published_batches: int = 0
    published_records: int = 0
    republishes: int = 0  # ack timeouts that sent everything after acked_seq again
    acks: int = 0  # acks that moved records out of the outbox
    acked_seq: int = 0
    sent_seq: int = 0
    bad_acks: int = 0  # malformed ack payloads
    refused_acks: int = 0  # acks beyond the ledger's last record
    bad_commands: int = 0
    commands: int = 0
    foreign_messages: int = 0
    health_published: int = 0
    pumps: int = 0  # passes of the outbox pump (acks applied, timeouts checked, window filled)
    retries: int = 0  # connection attempts that failed or connections lost, each a retry
    last_error: str | None = None


Event = tuple[Literal["connack", "disconnect", "message"], Any, Any]


def reconnect_delays(rng: random.Random | None = None) -> Iterator[float]:
    """Delays before successive reconnection attempts: doubling from RECONNECT_MIN to
    RECONNECT_MAX, each stretched by a random 0..RECONNECT_JITTER so that a fleet that lost
    its broker at the same moment does not come back at the same moment."""
    return _reconnect_delays(rng, first=RECONNECT_MIN, most=RECONNECT_MAX,
                             jitter=RECONNECT_JITTER)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _reason(rc: object) -> str:
    return mqtt.error_string(rc) if isinstance(rc, int) else str(rc)


class Reporter:
    """Connects the site to the hub's broker and keeps it connected until ``stop()``."""

    def __init__(self, config: AgentConfig, ledger: Ledger, executor: Executor,
                 health_snapshot: Snapshot | None = None, *, version: str = __version__,
                 boot_id: str = BOOT_ID,
                 command_handler: Callable[[Command], Awaitable[CommandAck]] | None = None,
                 ) -> None:
        self.config = config
        self.cac_id = config.cac_id
        self.ledger = ledger
        self.executor = executor
        self.health_snapshot = health_snapshot
        self.version = version
        self.boot_id = boot_id
        self.stats = ReporterStats()
        self.commands: deque[Command] = deque(maxlen=MAX_COMMANDS_KEPT)  # received, newest last
        self.command_handler = command_handler
        self._command_tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self._client: mqtt.Client | None = None  # a fresh one per connection
        self._client_lock = threading.Lock()  # connect and teardown never overlap
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._logged = LogOnce(log)
        self.health_interval = float(config.health_interval_seconds)
        # usage state of the current connection
        self._ack_target = 0  # highest valid-looking ack received, not yet applied
        self._window = UsageWindow(0, 0.0)  # event-loop time

    # ---------------------------------------------------------------- public

    def start(self) -> None:
        """Start connecting in the background (call from the event loop)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        prime_cpu_percent()
        self._task = asyncio.create_task(self._run(), name="mqtt-reporter")

    async def stop(self) -> None:
        """Stop reporting: publish the retained ``offline`` (bounded wait), then disconnect."""
        was_connected = self.connected.is_set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if was_connected and self._client is not None:
            info = self._client.publish(self._topic(Kind.STATUS), self._status("offline"),
                                        qos=1, retain=True)
            try:
                await asyncio.to_thread(info.wait_for_publish, STOP_TIMEOUT)
            except (ValueError, RuntimeError) as exc:
                log.warning("could not publish the offline status: %s", exc)
            else:
                if not info.is_published():
                    log.warning("the broker did not confirm the offline status within %s s",
                                STOP_TIMEOUT)
        await asyncio.to_thread(self._teardown)
        self._mark_disconnected()
        log.info("mqtt reporter stopped (%d batches published, %d acks)",
                 self.stats.published_batches, self.stats.acks)

    def counters(self) -> dict[str, Any]:
        return asdict(self.stats)

    # ---------------------------------------------------------------- paho side (its thread)

    def _make_client(self) -> mqtt.Client:
        """A new paho client for one connection.

        The broker keeps the session (clean_session false) across clients; what this paho
        object kept in memory is not needed by the next connection: the ledger is the queue.
        A new object per connection also avoids paho leaking its wake-up socket pair when
        one object's loop is started again.
        """
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cac-{self.cac_id}",
                             clean_session=False, protocol=mqtt.MQTTv311,
                             reconnect_on_failure=False)  # the reconnect loop is ours
        client.connect_timeout = CONNECT_TIMEOUT
        cfg = self.config.mqtt
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            # verified against the hub's own CA (mqtt.ca_file), else the system's CAs
            cafile = str(cfg.ca_file) if cfg.ca_file is not None else None
            client.tls_set_context(ssl.create_default_context(cafile=cafile))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = _tune_socket
        return client

    def _post(self, event: Event) -> None:
        loop, queue = self._loop, self._events
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            loop.call_soon_threadsafe(queue.put_nowait, event)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: Any, properties: Any) -> None:
        self._post(("connack", reason_code, flags.session_present))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                       reason_code: Any, properties: Any) -> None:
        self._post(("disconnect", reason_code, None))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._post(("message", msg.topic, msg.payload))

    def _connect_blocking(self) -> None:
        with self._client_lock:
            client = self._client = self._make_client()
            client.will_set(self._topic(Kind.STATUS), self._status("offline"), qos=1,
                            retain=True)
            client.connect(self.config.mqtt.host, self.config.mqtt.port, keepalive=KEEPALIVE)
            client.loop_start()

    def _teardown(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
            if client is None:
                return
            client.disconnect()
            # paho's loop_stop() can race its thread clearing itself after a dropped
            # connection (AttributeError on None.join): the thread is then finished anyway
            with contextlib.suppress(AttributeError):
                client.loop_stop()

    # ---------------------------------------------------------------- connection loop

    async def _run(self) -> None:
        """Connect, report until the connection drops, wait, and again; never gives up."""
        loop = asyncio.get_running_loop()
        delays = reconnect_delays()
        while True:
            connected_at: float | None = None
            error = ""
            heard = self.stats.acks + self.stats.commands
            try:
                connected_at = await self._connect()
                await self._serve()
            except ReporterError as exc:
                error = str(exc)
            except Exception as exc:  # a bug must not end reporting for good
                log.exception("mqtt reporter failed; reconnecting")
                error = repr(exc)
            self._mark_disconnected()
            await asyncio.to_thread(self._teardown)
            # The backoff starts again after a connection that lasted, or that carried the
            # hub's acks or commands: the link works, it only drops (a flapping uplink up
            # for seconds at a time must not leave the CAC waiting a minute between tries).
            if connected_at is not None and (
                    loop.time() - connected_at >= STABLE_SECONDS
                    or self.stats.acks + self.stats.commands > heard):
                delays = reconnect_delays()
            delay = next(delays)
            # a new reason is a warning; the same one again, every minute for days, is not
            level = logging.WARNING if error != self.stats.last_error else logging.DEBUG
            self.stats.last_error = error
            self.stats.retries += 1
            log.log(level, "mqtt %s:%d: %s; retrying in %.1f s", self.config.mqtt.host,
                    self.config.mqtt.port, error, delay)
            await asyncio.sleep(delay)

    def _mark_disconnected(self) -> None:
        self.connected.clear()
        self.stats.connected = False

    async def _connect(self) -> float:
        """Connect and wait for the broker's CONNACK; returns the loop time it came."""
        self._events = asyncio.Queue()
        try:
            await asyncio.to_thread(self._connect_blocking)
        except (OSError, ValueError) as exc:  # refused, unreachable, TLS failure, bad host
            raise ReporterError(f"cannot connect: {exc}") from None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                kind, reason, session_present = await self._events.get()
        except TimeoutError:
            raise ReporterError(f"no CONNACK within {CONNECT_TIMEOUT} s") from None
        if kind != "connack":
            raise ReporterError(f"connection closed before CONNACK: {_reason(reason)}")
        if getattr(reason, "is_failure", False):
            raise ReporterError(f"broker refused the connection: {reason}")
        loop = asyncio.get_running_loop()
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        log.info("mqtt connected to %s:%d as cac-%s (session present: %s)",
                 self.config.mqtt.host, self.config.mqtt.port, self.cac_id, session_present)
        # subscriptions survive in a present session; asking again is harmless
        rc, _mid = self._mqtt().subscribe([(t, 1) for t in agent_subscriptions(self.cac_id)])
        self._check_rc(rc, "subscribe")
        self._publish(Kind.STATUS, self._status("online"), qos=1, retain=True)
        acked = await self._call(lambda: self.ledger.acked_seq)
        self._ack_target = acked
        self._window = UsageWindow(acked, loop.time(), ack_timeout=ACK_TIMEOUT,
                                   ack_timeout_max=ACK_TIMEOUT_MAX, max_in_flight=MAX_IN_FLIGHT)
        self.stats.acked_seq = self.stats.sent_seq = acked
        self.connected.set()
        self.stats.connected = True
        return loop.time()

    async def _serve(self) -> None:
        """Run the connection's tasks until one fails (the connection dropped)."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch())
                tg.create_task(self._pump())
                tg.create_task(self._health_loop())
        except ExceptionGroup as eg:
            first = eg.exceptions[0]
            if isinstance(first, ReporterError):
                raise first from None
            raise

    async def _watch(self) -> None:
        while True:
            kind, a, b = await self._events.get()
            if kind == "disconnect":
                raise ReporterError(f"connection lost: {_reason(a)}")
            if kind == "message":
                self._handle_message(a, b)

    # ---------------------------------------------------------------- incoming

    def _handle_message(self, topic: str, payload: bytes) -> None:
        try:
            parsed = parse_cac_topic(topic)
        except TopicError:
            parsed = None
        if parsed is None or parsed.cac_id != self.cac_id:
            self.stats.foreign_messages += 1
            self._log_once("foreign", "ignoring a message on a foreign topic %r", topic[:80])
            return
        if parsed.kind is Kind.ACK:
            self._handle_ack(payload)
        elif parsed.kind is Kind.CMD:
            self._handle_command(payload)
        else:
            self.stats.foreign_messages += 1
            self._log_once(f"kind:{parsed.kind}", "ignoring a message on %s", topic)

    def _handle_ack(self, payload: bytes) -> None:
        try:
            ack = decode(payload, Ack)
        except WireError as exc:
            self.stats.bad_acks += 1
            self._log_once(f"ack:{exc.kind}", "dropping a malformed ack (%s): %s", exc.kind, exc)
            return
        if ack.seq > self._ack_target:
            self._ack_target = ack.seq
            self._wake.set()

    def _handle_command(self, payload: bytes) -> None:
        try:
            cmd = decode(payload, Command)
        except WireError as exc:
            self.stats.bad_commands += 1
            self._log_once(f"cmd:{exc.kind}", "dropping a malformed command (%s): %s",
                           exc.kind, exc)
            return
        self.stats.commands += 1
        self.commands.append(cmd)
        if self.command_handler is None:
            log.info("command %s (%s) received; no command runner", cmd.id, cmd.name)
            self._answer(CommandAck(id=cmd.id, status="failed", message="not supported"))
            return
        task = asyncio.create_task(self._run_command(self.command_handler, cmd))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def _run_command(self, handler: Callable[[Command], Awaitable[CommandAck]],
                           cmd: Command) -> None:
        log.info("command %s (%s) received", cmd.id, cmd.name)
        try:
            answer = await handler(cmd)
        except Exception as exc:
            log.exception("command %s (%s) failed", cmd.id, cmd.name)
            answer = CommandAck(id=cmd.id, status="failed",
                                message=f"internal error: {type(exc).__name__}")
        self._answer(answer)

    def _answer(self, answer: CommandAck) -> None:
        try:
            self._publish(Kind.CMD_ACK, encode(answer), qos=1)
        except ReporterError as exc:  # not connected: the hub re-sends, the answer is kept
            log.warning("could not answer command %s now (%s)", answer.id, exc)

    # ---------------------------------------------------------------- usage

    async def _pump(self) -> None:
        """Apply acks, re-publish on ack timeout, keep the in-flight window full."""
        while True:
            self._wake.clear()
            await self._apply_ack()
            self._check_ack_timeout()
            await self._fill_window()
            self.stats.pumps += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_INTERVAL):
                    await self._wake.wait()

    async def _apply_ack(self) -> None:
        target = self._ack_target
        if target <= self._window.acked_seq:
            return
        try:
            moved = await self._call(self.ledger.ack, target)
        except LedgerError as exc:
            self.stats.refused_acks += 1
            self._log_once("ack:refused", "dropping ack %d: %s", target, exc)
            if self._ack_target == target:
                self._ack_target = self._window.acked_seq
            return
        except (StorageError, OSError) as exc:  # e.g. a full disk: keep the ack, retry later
            self.stats.last_error = f"cannot archive acknowledged records: {exc}"
            self._log_once("ack:storage", "cannot archive records up to %d (will retry): %s",
                           target, exc, level=logging.ERROR)
            return
        self._window.on_ack(target, asyncio.get_running_loop().time())
        self.stats.acks += 1
        self.stats.acked_seq = target
        self.stats.sent_seq = self._window.sent_seq
        log.debug("ack %d: %d records archived", target, moved)

    def _check_ack_timeout(self) -> None:
        window = self._window
        sent_seq, waited = window.sent_seq, window.backoff
        if not window.due(asyncio.get_running_loop().time()):
            return
        log.warning("no ack for records %d..%d within %.0f s; publishing them again",
                    window.acked_seq + 1, sent_seq, waited)
        self.stats.republishes += 1

    async def _fill_window(self) -> None:
        loop = asyncio.get_running_loop()
        window = self._window
        while (after := window.next_batch()) is not None:
            records = await self._call(self.ledger.outbox, after, MAX_BATCH)
            batches = list(self._batches(records))
            if not batches:
                return
            for payload, last_seq, count in batches:
                self._publish(Kind.USAGE, payload, qos=1)
                window.sent(last_seq, loop.time())
                self.stats.published_batches += 1
                self.stats.published_records += count
            self.stats.sent_seq = window.sent_seq

    def _batches(self, records: list[dict[str, Any]]) -> Iterator[tuple[bytes, int, int]]:
        """(payload, last seq, count) of wire Usage messages for ``records``, in order.

        A record that does not fit the wire schema stops the batch before it: it cannot be
        skipped (the hub acks only contiguous sequence numbers), so it is logged for a human.
        """
        good = []
        for rec in records:
            try:
                good.append(record_from_dict(rec))
            except msgspec.ValidationError as exc:
                self._log_once(f"record:{rec.get('seq')}",
                               "ledger record seq %s does not fit the wire schema and holds "
                               "up reporting: %s", rec.get("seq"), exc, level=logging.ERROR)
                self.stats.last_error = f"record seq {rec.get('seq')} invalid: {exc}"
                break
        yield from self._split(good)

    def _split(self, recs: list[Any]) -> Iterator[tuple[bytes, int, int]]:
        if not recs:
            return
        payload = encode(Usage(records=recs))
        if len(payload) <= MAX_PAYLOAD_BYTES or len(recs) == 1:
            yield payload, recs[-1].seq, len(recs)
            return
        half = len(recs) // 2
        yield from self._split(recs[:half])
        yield from self._split(recs[half:])

    # ---------------------------------------------------------------- health

    async def _health_loop(self) -> None:
        while True:
            try:
                await self.publish_health()
            except ReporterError:
                raise
            except Exception as exc:  # psutil or the snapshot: skip this report only
                self._log_once(f"health:{type(exc).__name__}", "health sample failed: %r", exc)
            await asyncio.sleep(self.health_interval)

    async def publish_health(self) -> None:
        """Sample and publish one health report (QoS 0)."""
        if self.health_snapshot is not None:
            snap: Mapping[str, Any] = await self._call(self.health_snapshot)
        else:
            snap = {"backlog": await self._call(self.ledger.backlog), "stations": []}
        health = await asyncio.to_thread(sample_health, self.config.data_dir, snap,
                                         boot_id=self.boot_id, version=self.version)
        self._publish(Kind.HEALTH, encode(health), qos=0)
        self.stats.health_published += 1

    # ---------------------------------------------------------------- helpers

    def _topic(self, kind: Kind) -> str:
        return cac_topic(self.cac_id, kind)

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        return encode(Status(state=state, boot_id=self.boot_id, version=self.version,
                             at=_now_iso()))

    def _publish(self, kind: Kind, payload: bytes, *, qos: int,
                 retain: bool = False) -> mqtt.MQTTMessageInfo:
        info = self._mqtt().publish(self._topic(kind), payload, qos=qos, retain=retain)
        self._check_rc(info.rc, f"publish on {kind}")
        return info

    def _mqtt(self) -> mqtt.Client:
        if self._client is None:
            raise ReporterError("not connected")
        return self._client

    @staticmethod
    def _check_rc(rc: MQTTErrorCode | int, what: str) -> None:
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ReporterError(f"{what} failed: {mqtt.error_string(rc)}")

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the service thread (the ledger is confined to it)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    def _log_once(self, key: str, msg: str, *args: object, level: int = logging.WARNING) -> None:
        self._logged(key, msg, *args, level=level)
