"""The broker fixtures give a real Mosquitto: QoS 1 retained delivery, stop/start on one port."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from helpers import MosquittoBroker, port_accepts
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = pytest.mark.system

TIMEOUT = 5.0


def _connected_client(broker: MosquittoBroker, name: str) -> mqtt.Client:
    """A paho 2 client connected to the broker (CONNACK received) with its loop running."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}")
    connected = threading.Event()
    codes: list[object] = []

    def on_connect(c, userdata, flags, reason_code, properties):
        codes.append(reason_code)
        connected.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    if not connected.wait(TIMEOUT):
        client.loop_stop()
        pytest.fail(f"no CONNACK from {broker} within {TIMEOUT} s")
    assert not codes[0].is_failure, f"connection refused: {codes[0]}"
    return client


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_retained_qos1_message_reaches_a_later_subscriber(mosquitto: MosquittoBroker) -> None:
    topic = f"test/fixture/{uuid.uuid4().hex}/status"
    payload = b'{"v": 1, "state": "online"}'

    pub = _connected_client(mosquitto, "pub")
    try:
        info = pub.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(timeout=TIMEOUT)  # PUBACK from the broker
        assert info.is_published()
    finally:
        _close(pub)

    got: list[mqtt.MQTTMessage] = []
    received = threading.Event()
    sub = _connected_client(mosquitto, "sub")
    try:
        def on_message(c, userdata, msg):
            got.append(msg)
            received.set()

        sub.on_message = on_message
        sub.subscribe(topic, qos=1)
        if not received.wait(TIMEOUT):
            log = mosquitto.log_text()[-1500:]
            pytest.fail(f"retained message not received; broker log:\n{log}")
    finally:
        _close(sub)

    msg = got[0]
    assert msg.topic == topic
    assert msg.payload == payload
    assert msg.retain, "a message delivered on subscribe from the retained store has retain set"
    assert msg.qos == 1


def test_stop_and_start_keep_the_port(mosquitto_fresh: MosquittoBroker) -> None:
    broker = mosquitto_fresh
    port, first_pid = broker.port, broker.pid
    assert first_pid is not None and broker.running

    broker.stop()
    assert not broker.running and broker.pid is None
    assert not port_accepts(broker.host, port), "the port still accepts after stop()"

    broker.start()
    assert broker.port == port
    assert broker.running and broker.pid not in (None, first_pid)
    _close(_connected_client(broker, "after-restart"))

    broker.kill()  # a crash, then a restart: same port again
    broker.start()
    assert broker.port == port
    _close(_connected_client(broker, "after-kill"))


def test_a_missing_mosquitto_fails_the_test_and_does_not_skip_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The README promises it: without the broker binary the suite fails, loudly."""
    import helpers  # the broker fixtures of tests/conftest.py start brokers through it

    monkeypatch.setattr(helpers, "find_mosquitto", lambda: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install mosquitto"):
        helpers.start_broker(tmp_path / "mosquitto")
