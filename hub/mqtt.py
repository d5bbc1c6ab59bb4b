"""The hub's MQTT connection (paho-mqtt 2) feeding ``Ingest``, all in one thread.

One thread, ``hub-ingest``, runs paho's network loop itself (paho's external-loop interface:
``socket()``, ``loop_read``, ``loop_write``, ``loop_misc``) and the ingest: it reads what the
broker has sent until the socket holds no more or ``MAX_BATCH_MESSAGES`` are in hand, runs
``Ingest.handle_batch`` on them (one store transaction per batch), publishes the acks, and
only then sends the MQTT PUBACKs (``manual_ack``): the broker forgets a usage message only
once it is on disk, and re-delivers it to our persistent session otherwise. Every
``flush_seconds`` it writes changed fleet rows. It is the only thread that writes the store.
It reconnects, with a delay doubling from ``RECONNECT_MIN_SECONDS`` to
``RECONNECT_MAX_SECONDS``.

Why one thread: with paho's own network thread (``loop_start``) beside an ingest thread, the
two took turns on the GIL at every socket call (each PUBACK woke paho's thread through its
socket pair): a profile put 27 % of the ingest thread in that wake-up alone, and the hub
used ~70 us of CPU per message against a bare paho subscriber's ~40. While a batch is being
stored nothing more is read: what arrives meanwhile waits in the broker (which keeps it, for
our session), not in the hub's memory.

Other threads (the HTTP API's commands) publish through ``publish``: paho queues the packet
and our thread is woken, through a socket pair of ours, to write it. The asyncio thread
(HTTP API, fleet tick) reads fleet state under ``Ingest.lock``.

The session is persistent (clean_session false, a stable client id): what CACs send while
the hub is away waits in the broker. Not so for a worker of several (``shared_subscription``):
a broker keeps dealing shared usage to a dead worker's persistent session (Mosquitto does,
eclipse-mosquitto/mosquitto#1747), where it would wait until that worker comes back; with a
clean session the others get it, and what was in flight to the dead one the agents send
again (they keep every record until it is acknowledged). The hub's own status is retained on
``hub/v1/{id}/status``, ``online`` on connect and ``offline`` as last will and at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub import __version__, commands
from hub.config import HubConfig
from hub.ingest import Incoming, Ingest
from hub.store import StoreError
from wire.messages import Status, encode
from wire.topics import hub_status_topic, hub_subscriptions

log = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS = 1
RECONNECT_MAX_SECONDS = 30
MAX_BATCH_MESSAGES = 500  # messages per store transaction
MAX_BATCH_SECONDS = 0.2  # a batch is stored at the latest this long after its first message
IDLE_SECONDS = 1.0  # the longest wait for the socket (keepalive and flush are checked after)
OUT_INFLIGHT = 100  # our unacknowledged QoS 1 publishes (acks) on the wire
STOP_TIMEOUT_SECONDS = 10.0
PUBLISH_TIMEOUT_SECONDS = 2.0
ERROR_PAUSE_SECONDS = 0.5  # after a failed batch, before the next one


@dataclass(frozen=True, slots=True)
class _Queued:
    message: Incoming
    mid: int
    qos: int
    generation: int  # which connection it came on: a PUBACK is only valid on that one


class MqttLink:
    """Connects to the broker, feeds ``ingest``; ``start()`` then ``stop()`` (blocking)."""

    def __init__(self, config: HubConfig, ingest: Ingest,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.ingest = ingest
        self.counters = ingest.counters
        self.clock = clock
        self.boot_id = uuid.uuid4().hex
        self.status_topic = hub_status_topic(config.status_id)
        self._batch: list[_Queued] = []  # read, not yet stored
        self._accepting = False
        self._stopping = threading.Event()
        self._generation = 0
        self._unreachable_logged = False
        self._connected = threading.Event()
        self._worker: threading.Thread | None = None
        self._worker_ident: int | None = None
        # wakes the worker's select() when another thread has queued a packet
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._client = self._make_client()

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def queue_depth(self) -> int:
        """Messages read from the broker and not yet stored (at most MAX_BATCH_MESSAGES)."""
        return len(self._batch)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected and subscribed."""
        return self._connected.wait(timeout)

    # ------------------------------------------------------------------ lifecycle

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        at = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        return encode(Status(state=state, boot_id=self.boot_id, version=__version__, at=at))

    def _make_client(self) -> paho.Client:
        cfg = self.config.mqtt
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.config.client_id,
                             clean_session=self.config.shared_subscription,
                             protocol=paho.MQTTv311, manual_ack=True)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
        client.will_set(self.status_topic, self._status("offline"), qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        client.max_inflight_messages_set(OUT_INFLIGHT)
        client.max_queued_messages_set(0)  # unlimited: acks are few (one per CAC per batch)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        # set, so that paho never writes from the thread that queued a packet (it would
        # otherwise, with no loop thread of its own): our worker does, in _pump
        client.on_socket_register_write = _no_op
        return client

    def start(self) -> None:
        """Start the worker thread; it connects in the background."""
        self._accepting = True
        cfg = self.config.mqtt
        self._client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
        self._worker = threading.Thread(target=self._work, name="hub-ingest", daemon=True)
        self._worker.start()
        log.info("connecting to mqtt %s:%d as %s", cfg.host, cfg.port, self.config.client_id)

    def stop(self) -> None:
        """Stop reading, store what was read, flush the store, publish retained offline,
        disconnect (blocking). Unread messages stay with the broker for next time."""
        self._accepting = False
        self._stopping.set()
        self._wake()
        if self._worker is not None:
            self._worker.join(STOP_TIMEOUT_SECONDS + PUBLISH_TIMEOUT_SECONDS)
            if self._worker.is_alive():
                log.error("ingest worker did not stop within %.0f s", STOP_TIMEOUT_SECONDS)
        self._connected.clear()
        self._wake_r.close()
        self._wake_w.close()

    # ------------------------------------------------------------------ paho callbacks

    def _on_connect(self, client: paho.Client, userdata: object, flags: paho.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        self._generation += 1
        self.counters.add("mqtt_connects")
        client.subscribe([(flt, 1) for flt in hub_subscriptions(self.config.shared_subscription)])
        client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        self._unreachable_logged = False
        log.info("connected to mqtt (session %s)",
                 "resumed" if flags.session_present else "new")

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        refused = [rc for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("the broker refused %d of our subscriptions (%s): check the hub's ACL",
                      len(refused), refused[0])
        self._connected.set()  # connected and subscribed: ready

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        if not self._unreachable_logged:  # once per outage, not every retry
            self._unreachable_logged = True
            cfg = self.config.mqtt
            log.warning("cannot reach the mqtt broker at %s:%d; retrying", cfg.host, cfg.port)

    def _on_disconnect(self, client: paho.Client, userdata: object,
                       flags: paho.DisconnectFlags, reason_code: ReasonCode,
                       properties: Properties | None) -> None:
        if self._connected.is_set():
            self.counters.add("mqtt_disconnects")
            self._connected.clear()
            if self._accepting:
                log.warning("lost the mqtt connection (%s); reconnecting", reason_code)

    def _on_message(self, client: paho.Client, userdata: object,
                    msg: paho.MQTTMessage) -> None:
        if not self._accepting:
            return  # no PUBACK: the broker keeps it in our session
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = ""  # not UTF-8: refused as a foreign topic
        self._batch.append(_Queued(Incoming(topic, bytes(msg.payload), bool(msg.retain)),
                                   msg.mid, msg.qos, self._generation))

    # ------------------------------------------------------------------ worker thread

    def _work(self) -> None:
        self._worker_ident = threading.get_ident()
        flush_every = self.config.flush_seconds
        next_flush = time.monotonic() + flush_every
        delay = RECONNECT_MIN_SECONDS
        while not self._stopping.is_set():
            if self._client.socket() is None:  # not connected (yet, or any more)
                self._store_batch()
                if self._connect():
                    delay = RECONNECT_MIN_SECONDS
                else:
                    self._stopping.wait(delay)
                    delay = min(2 * delay, RECONNECT_MAX_SECONDS)
                    continue
            idle = min(IDLE_SECONDS, self.config.mqtt.keepalive / 2)  # loop_misc pings
            self._pump(max(0.0, min(idle, next_flush - time.monotonic())))
            if time.monotonic() >= next_flush:
                self._store_batch()
                self._flush()
                next_flush = time.monotonic() + flush_every
        self._store_batch()
        self._flush()
        self._disconnect()

    def _connect(self) -> bool:
        try:
            self._client.reconnect()
        except OSError:
            self._on_connect_fail(self._client, None)
            return False
        return True

    def _pump(self, idle: float) -> None:
        """Read until the socket is empty or a batch is full, then store the batch and write
        what paho has queued; wait at most ``idle`` when there is nothing to do."""
        client = self._client
        first_at = 0.0
        while True:
            sock = client.socket()
            if sock is None:
                return  # lost: paho has called _on_disconnect; _work reconnects
            pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted
            if pending is not None and pending() > 0:
                readable = True
            else:
                want = [sock] if client.want_write() else []
                r, w, _ = select.select([sock, self._wake_r], want, [],
                                        0.0 if self._batch else idle)
                readable = sock in r
                if self._wake_r in r:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                if w or self._wake_r in r:
                    client.loop_write()
                    if client.socket() is None:
                        return
            if not readable:
                break
            had = len(self._batch)
            client.loop_read()
            if len(self._batch) > had and had == 0:
                first_at = time.monotonic()
            if len(self._batch) >= MAX_BATCH_MESSAGES or (
                    self._batch and time.monotonic() - first_at >= MAX_BATCH_SECONDS):
                break
            if self._stopping.is_set():
                break
        self._store_batch()
        if client.want_write():
            client.loop_write()
        client.loop_misc()  # keepalive

    def _store_batch(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._process(batch)

    def _disconnect(self) -> None:
        """Publish the retained offline status, send DISCONNECT, close."""
        client = self._client
        if client.socket() is not None:
            info = client.publish(self.status_topic, self._status("offline"), qos=1,
                                  retain=True)
            deadline = time.monotonic() + PUBLISH_TIMEOUT_SECONDS
            while not info.is_published() and time.monotonic() < deadline:
                sock = client.socket()
                if sock is None:
                    break
                want = [sock] if client.want_write() else []
                r, w, _ = select.select([sock], want, [], 0.1)
                if w:
                    client.loop_write()
                if r:
                    client.loop_read()
            client.disconnect()
            client.loop_write()  # sends DISCONNECT and closes the socket

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish with QoS 1 from any thread (paho queues it while disconnected)."""
        self._client.publish(topic, payload, qos=1)
        if threading.get_ident() != self._worker_ident:
            self._wake()

    def _resend_commands(self) -> None:
        """Publish again the pending commands of CACs that just came online."""
        for cac_id in self.ingest.take_came_online():
            try:
                aux = self.ingest.store.aux  # commands live in the SQLite store
                rows = commands.pending(aux.db, cac_id)
                for cmd in rows:
                    self.publish(*cmd.wire(self.config.dashboard.command_timeout_seconds))
                if rows:
                    with aux.transaction():
                        for cmd in rows:
                            commands.mark_sent(aux.db, cmd.id, self.clock())
                    log.info("cac %s back online: %d pending command(s) sent again", cac_id,
                             len(rows))
            except (StoreError, sqlite3.Error) as exc:
                log.error("pending commands of %s not re-sent: %s", cac_id, exc)  # noqa: TRY400

    def _process(self, batch: list[_Queued]) -> None:
        try:
            acks = self.ingest.handle_batch([q.message for q in batch], self.clock())
        except StoreError:
            acks = []  # logged and counted by Ingest; agents re-send what stays unacked
            time.sleep(ERROR_PAUSE_SECONDS)
        except Exception:
            log.exception("unexpected error in ingest; batch of %d dropped", len(batch))
            acks = []
        for out in acks:
            self._client.publish(out.topic, out.payload, qos=1)
        self.counters.add("acks_sent", len(acks))
        generation = self._generation
        for q in batch:
            if q.qos and q.generation == generation:
                self._client.ack(q.mid, q.qos)
        if self.ingest.came_online:
            self._resend_commands()

    def _flush(self) -> None:
        try:
            self.ingest.flush(self.clock())
            if self.config.shared_subscription:
                self.ingest.merge_from_store(self.clock())
        except Exception:
            log.exception("unexpected error while saving fleet state")


def _no_op(client: paho.Client, userdata: object, sock: object) -> None:
    """paho's on_socket_register_write: our worker writes after every select, if need be."""
