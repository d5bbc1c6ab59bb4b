"""Issue 16 findings on the provisioned broker: hub workers each have a broker identity of
their own (`cac-provision add-hub-worker`), so two of them never knock each other off (the
broker makes the client id the user name); and no message is larger than the wire allows
(`message_size_limit`)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.hub.apitoken import add_token_cli, auth
from tests.provisioning.support import (
    BIN,
    Client,
    Proc,
    ProvisionedBroker,
    init_hub,
    provision,
    read_toml,
    wait_for,
)
from wire.messages import MAX_PAYLOAD_BYTES
from wire.topics import Kind, cac_topic, hub_status_topic

CAC = "cac-workers-001"
WAIT = 20.0


def creds(toml: Path) -> tuple[str, str]:
    m = read_toml(toml)["mqtt"]
    return m["username"], m["password"]


def test_two_hub_workers_keep_their_own_sessions(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    init_hub(root)
    r = provision("add-hub-worker", "--dir", root, "--name", "w1")
    assert str(root.resolve() / "w1.toml") in r.stdout
    provision("add-hub-worker", "--dir", root, "--name", "w2")  # the test's observer
    w1 = read_toml(root / "w1.toml")
    hub = read_toml(root / "hub.toml")
    assert w1["worker_id"] == "w1" and w1["shared_subscription"] is True
    assert w1["mqtt"]["username"] == "hub.w1" != hub["mqtt"]["username"]
    assert w1["http"]["port"] != hub["http"]["port"]
    broker = ProvisionedBroker(root)
    broker.start()
    clients: list[Client] = []
    procs: list[Proc] = []
    try:
        first = Client(broker.port, *creds(root / "hub.toml"))
        worker = Client(broker.port, *creds(root / "w1.toml"))
        clients += [first, worker]
        assert first.connect()
        first.subscribe(hub_status_topic("probe"))
        assert worker.connect()
        worker.publish(hub_status_topic("probe"), b"after the worker connected")
        wait_for(lambda: first.messages, "the first hub client still receiving", WAIT)
        assert first.disconnects == [], "the worker's connection knocked the hub off"
        # the control: a second client with the hub's own credentials does knock it off
        twin = Client(broker.port, *creds(root / "hub.toml"))
        clients.append(twin)
        assert twin.connect()
        wait_for(lambda: first.disconnects, "the twin taking over the hub's identity", WAIT)
        for c in clients:
            c.close()
        clients.clear()

        # the hub and its worker as real processes, side by side on the same broker
        log_from = len(broker.log_text())
        procs += [Proc(tmp_path / "hub.log", BIN / "cac-hub", "--config", root / "hub.toml"),
                  Proc(tmp_path / "w1.log", BIN / "cac-hub", "--config", root / "w1.toml")]
        seen = Client(broker.port, *creds(root / "w2.toml"))
        clients.append(seen)
        assert seen.connect()
        status_ids = {hub["hub_id"], f"{hub['hub_id']}-w1"}
        seen.subscribe(*(hub_status_topic(s) for s in status_ids))

        def online() -> set[str]:
            return {sid for topic, payload, _ in list(seen.messages) for sid in status_ids
                    if topic == hub_status_topic(sid)
                    and json.loads(payload)["state"] == "online"}

        try:
            wait_for(lambda: online() == status_ids, "both workers online", WAIT)
        except AssertionError:
            raise AssertionError("\n".join(p.text()[-1500:] for p in procs)
                                 + broker.log_text()[-1500:]) from None
        token = add_token_cli(root / "w1.toml", "probe", "viewer")
        req = urllib.request.Request(f"http://127.0.0.1:{w1['http']['port']}/metrics",
                                     headers=auth(token))
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback
            assert "cac_hub_mqtt_connected 1" in resp.read().decode()
        log = broker.log_text()[log_from:]
        assert "already connected, closing old connection" not in log, log[-2000:]
    finally:
        for p in procs:
            p.stop()
        for c in clients:
            c.close()
        broker.stop()


def test_the_broker_refuses_a_message_larger_than_the_wire_allows(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    init_hub(root)
    provision("add-cac", "--dir", root, "--cac-id", CAC, "--stations", "1")
    assert f"message_size_limit {MAX_PAYLOAD_BYTES}" in (root / "mosquitto.conf").read_text()
    broker = ProvisionedBroker(root)
    broker.start()
    hub = Client(broker.port, *creds(root / "hub.toml"))
    cac = Client(broker.port, *creds(root / "cacs" / CAC / "agent.toml"))
    try:
        assert hub.connect() and cac.connect()
        topic = cac_topic(CAC, Kind.HEALTH)
        hub.subscribe(topic)
        cac.c.publish(topic, b"x" * (5 * 1024 * 1024), qos=0)  # 5 MB: dropped by the broker
        cac.publish(topic, b"y" * (MAX_PAYLOAD_BYTES - 1024))  # within the limit: delivered
        wait_for(lambda: hub.messages, "the allowed message", WAIT)
        assert [len(p) for _, p, _ in hub.messages] == [MAX_PAYLOAD_BYTES - 1024]
    finally:
        hub.close()
        cac.close()
        broker.stop()
