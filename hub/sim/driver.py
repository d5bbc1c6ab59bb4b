"""The simulator's network side: every simulated CAC (``hub.sim.cac.SimCac``) as a real paho
MQTT client, all driven from ONE asyncio loop through paho's external-loop API (``socket``,
``loop_read``, ``loop_write``, ``want_write``, ``loop_misc``; the socket is registered with
``add_reader``/``add_writer`` as aiomqtt does). There is no thread per client; blocking TCP
connects run on ``CONNECT_WORKERS`` executor threads, at most ``--ramp`` new connections per
second so the broker is not flooded.

On the wire each simulated CAC behaves like ``agent.reporter``: client id ``cac-{id}``,
persistent session, a retained ``online`` birth, a retained ``offline`` last will.
``--no-will-kill`` victims connect with keepalive ``SILENT_KEEPALIVE`` and, ``kill_after``
seconds after the connection ramp, stop servicing their socket (see ``hub.simulator``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import math
import random
import resource
import select
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from common.logonce import LogOnce
from common.usage_window import RECONNECT_JITTER as RECONNECT_JITTER
from common.usage_window import RECONNECT_MAX as RECONNECT_MAX
from common.usage_window import RECONNECT_MIN as RECONNECT_MIN
from common.usage_window import reconnect_delays
from hub.sim.cac import Publish, SimCac, SimSettings, cac_ids
from wire.messages import Ack, Command, WireError, decode, encode
from wire.topics import Kind, TopicError, agent_subscriptions, cac_topic, parse_cac_topic

log = logging.getLogger("hub.simulator")  # one logger name for the whole simulator

PROG = "cac-simulate"
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
STOP_TIMEOUT = 5.0  # how long a clean stop waits for the broker to take the `offline`s


class _State(enum.Enum):
    WAITING = "waiting"  # for its turn to connect (ramp, or backoff after a loss)
    OPENING = "opening"  # TCP connect running on an executor thread
    CONNECTING = "connecting"  # CONNECT sent, waiting for the CONNACK
    CONNECTED = "connected"
    SILENCED = "silenced"  # --no-will-kill: socket open, never serviced again
    STOPPED = "stopped"


def _reconnect_delays(rng: random.Random) -> Iterator[float]:
    return reconnect_delays(rng, first=RECONNECT_MIN, most=RECONNECT_MAX,
                            jitter=RECONNECT_JITTER)


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
        self._log_once = LogOnce(log)

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
