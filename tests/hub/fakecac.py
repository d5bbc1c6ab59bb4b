"""A bare paho client playing a CAC agent against a real broker, for the hub's tests."""

from __future__ import annotations

import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from wire.messages import Ack, Status, decode
from wire.topics import Kind, cac_topic, hub_status_topic

TIMEOUT = 10.0


class FakeCac:
    """Publishes like an agent; collects the hub's acks in order."""

    def __init__(self, host: str, port: int, cac_id: str, *, will: bytes | None = None) -> None:
        self.cac_id = cac_id
        self.acks: queue.Queue[int] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-{cac_id}",
                                  clean_session=True)
        if will is not None:
            self.client.will_set(cac_topic(cac_id, Kind.STATUS), will, qos=1, retain=True)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        self.client.subscribe(cac_topic(cac_id, Kind.ACK), qos=1)
        if not subscribed.wait(TIMEOUT):
            raise AssertionError("the fake CAC could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        self.acks.put(decode(bytes(msg.payload), Ack).seq)

    def publish(self, kind: Kind, payload: bytes, *, qos: int = 1,
                retain: bool = False) -> None:
        info = self.client.publish(cac_topic(self.cac_id, kind), payload, qos=qos,
                                   retain=retain)
        info.wait_for_publish(TIMEOUT)

    def next_ack(self, timeout: float = TIMEOUT) -> int:
        return self.acks.get(timeout=timeout)

    def wait_ack(self, seq: int, timeout: float = TIMEOUT) -> list[int]:
        """Acks received until one says ``seq`` (all of them, in order)."""
        got: list[int] = []
        deadline = time.monotonic() + timeout
        while not got or got[-1] != seq:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no ack {seq} within {timeout} s; got {got}")
            try:
                got.append(self.acks.get(timeout=left))
            except queue.Empty:
                raise AssertionError(f"no ack {seq} within {timeout} s; got {got}") from None
        return got

    def drain_acks(self) -> list[int]:
        out = []
        while True:
            try:
                out.append(self.acks.get_nowait())
            except queue.Empty:
                return out

    def vanish(self) -> None:
        """Drop the TCP connection without DISCONNECT (the broker sends the last will)."""
        sock = self.client.socket()
        self.client.loop_stop()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def hub_status(host: str, port: int, hub_status_id: str, timeout: float = TIMEOUT) -> Status:
    """The retained hub status, as a fresh subscriber sees it."""
    got: queue.Queue[bytes] = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    c.on_message = lambda client, userdata, msg: got.put(bytes(msg.payload))
    c.connect(host, port)
    c.loop_start()
    try:
        c.subscribe(hub_status_topic(hub_status_id), qos=1)
        return decode(got.get(timeout=timeout), Status)
    finally:
        c.disconnect()
        c.loop_stop()
