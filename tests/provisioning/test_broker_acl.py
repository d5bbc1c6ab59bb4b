"""A real Mosquitto started from what `cac-provision` wrote: nobody speaks for another CAC.

CONTRACT §6: a CAC publishes only its own status/health/usage/cmd/ack, reads only its own
ack and cmd; the hub reads every CAC (through the same shared subscriptions as `cac-hub`)
and writes ack and cmd; anonymous and wrong-password clients are refused; a revoked CAC is
cut off on SIGHUP.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import free_port

from tests.provisioning.support import (
    Client,
    ProvisionedBroker,
    init_hub,
    provision,
    read_toml,
    wait_for,
)
from wire.topics import FROM_CAC, Kind, cac_topic, hub_status_topic, hub_subscriptions

A, B = "cac-aaa", "cac-bbb"


@dataclass
class Hub:
    root: Path
    broker: ProvisionedBroker
    clients: list[Client]

    @property
    def port(self) -> int:
        return self.broker.port

    def creds(self, cac_id: str | None = None) -> tuple[str, str]:
        path = self.root / "hub.toml" if cac_id is None else \
            self.root / "cacs" / cac_id / "agent.toml"
        m = read_toml(path)["mqtt"]
        return m["username"], m["password"]

    def client(self, cac_id: str | None = None, *, connect: bool = True,
               **kw: object) -> Client:
        user, pw = self.creds(cac_id)
        c = Client(self.port, user, pw, **kw)  # type: ignore[arg-type]
        self.clients.append(c)
        if connect:
            assert c.connect(), c.connack
        return c

    def hub_subscriber(self) -> Client:
        """The hub's credentials and the hub's own (shared) subscriptions."""
        hub = self.client(client_id="hub-cac-hub")
        hub.subscribe(*hub_subscriptions(shared=True))
        assert not [rc for rc in hub.subacks if rc.is_failure], hub.subacks
        return hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    root = tmp_path / "hub"
    init_hub(root)
    for cac in (A, B):
        provision("add-cac", "--dir", root, "--cac-id", cac, "--stations", "2")
    broker = ProvisionedBroker(root)
    broker.start()
    h = Hub(root, broker, [])
    try:
        yield h
    finally:
        for c in h.clients:
            c.close()
        broker.stop()


def test_a_cac_cannot_publish_as_another_and_the_hub_never_sees_it(hub: Hub) -> None:
    seen = hub.hub_subscriber()
    a = hub.client(A)
    for kind in FROM_CAC:  # status, health, usage, cmd/ack as B: all dropped by the broker
        a.publish(cac_topic(B, kind), b"forged by A", retain=kind is Kind.STATUS)
    a.publish("cac/v1/cac-bbb/usage/extra", b"forged by A")
    a.publish(hub_status_topic("cac-hub"), b"forged hub status", retain=True)
    a.publish(cac_topic(A, Kind.USAGE), b"A's own")  # control: this one goes through
    b = hub.client(B)
    b.publish(cac_topic(B, Kind.HEALTH), b"B's own")
    wait_for(lambda: len(seen.messages) >= 2, "the legitimate messages at the hub")
    assert sorted((t, p) for t, p, _ in seen.messages) == [
        (cac_topic(A, Kind.USAGE), b"A's own"), (cac_topic(B, Kind.HEALTH), b"B's own")]

    # a fresh subscriber finds no forged retained status either
    late = hub.client(client_id="x")
    late.subscribe("cac/v1/+/status", "hub/v1/+/status")
    b.publish(cac_topic(B, Kind.STATUS), b"B online", retain=True)
    wait_for(lambda: late.messages, "B's real status")
    assert [(t, p) for t, p, _ in late.messages] == [(cac_topic(B, Kind.STATUS), b"B online")]


def test_a_cac_cannot_forge_ack_or_cmd(hub: Hub) -> None:
    a, b = hub.client(A), hub.client(B)
    a.subscribe(*(cac_topic(A, k) for k in (Kind.ACK, Kind.CMD)))
    b.subscribe(*(cac_topic(B, k) for k in (Kind.ACK, Kind.CMD)))
    for cac in (A, B):  # neither for another CAC nor for itself
        a.publish(cac_topic(cac, Kind.ACK), b"forged ack")
        a.publish(cac_topic(cac, Kind.CMD), b"forged cmd")
    h = hub.client()  # the hub may
    h.publish(cac_topic(B, Kind.CMD), b"hub cmd for B")
    h.publish(cac_topic(A, Kind.ACK), b"hub ack for A")
    wait_for(lambda: b.messages and a.messages, "the hub's ack and cmd")
    assert [(t, p) for t, p, _ in b.messages] == [(cac_topic(B, Kind.CMD), b"hub cmd for B")]
    assert [(t, p) for t, p, _ in a.messages] == [(cac_topic(A, Kind.ACK), b"hub ack for A")]


def test_a_cac_cannot_read_another_cacs_topics(hub: Hub) -> None:
    a = hub.client(A)
    a.subscribe(f"cac/v1/{B}/#", "cac/v1/+/usage", "cac/v1/+/cmd", "#",
                f"$share/hub/cac/v1/{B}/usage")
    b, h = hub.client(B), hub.client()
    b.publish(cac_topic(B, Kind.USAGE), b"B's usage")
    b.publish(cac_topic(B, Kind.STATUS), b"B online", retain=True)
    h.publish(cac_topic(B, Kind.CMD), b"for B only")
    h.publish(cac_topic(B, Kind.ACK), b"for B only")
    h.publish(cac_topic(A, Kind.CMD), b"for A")  # control: A does get its own
    wait_for(lambda: a.messages, "A's own cmd")
    assert {(t, p) for t, p, _ in a.messages} == {(cac_topic(A, Kind.CMD), b"for A")}


@pytest.mark.parametrize("who", ["anonymous", "wrong password", "unknown user",
                                 "hub password for a CAC"])
def test_refused_clients(hub: Hub, who: str) -> None:
    hub_user, hub_pw = hub.creds()
    user, pw = {"anonymous": (None, None), "wrong password": (A, "not-the-password"),
                "unknown user": ("cac-zzz", "whatever"),
                "hub password for a CAC": (A, hub_pw)}[who]
    c = Client(hub.port, user, pw)
    hub.clients.append(c)
    assert not c.connect()
    assert c.connack is None or c.connack.is_failure


def test_a_cac_cannot_take_over_another_client_id(hub: Hub) -> None:
    b = hub.client(B, client_id=f"cac-{B}")
    b.subscribe(cac_topic(B, Kind.CMD))
    hub.client(A, client_id=f"cac-{B}")  # the same client id as B's agent
    hub.client(A, client_id=B)
    h = hub.client()
    h.publish(cac_topic(B, Kind.CMD), b"still B's")
    wait_for(lambda: b.messages, "B's cmd")
    assert b.disconnects == [], "A's connections kicked B off"


def test_a_will_on_another_cacs_topic_never_reaches_the_hub(hub: Hub) -> None:
    seen = hub.hub_subscriber()
    forger = hub.client(A, connect=False)
    forger.c.will_set(cac_topic(B, Kind.STATUS), b"B offline (forged)", qos=1, retain=True)
    own = hub.client(B, connect=False, client_id="b")
    own.c.will_set(cac_topic(B, Kind.STATUS), b"B offline", qos=1, retain=True)
    for c in (forger, own):
        if c.connect():  # Mosquitto may refuse the forged will at CONNECT already
            sock = c.c.socket()
            assert isinstance(sock, socket.socket)
            sock.shutdown(socket.SHUT_RDWR)  # die without DISCONNECT: the will goes out
    wait_for(lambda: seen.messages, "B's own will")
    assert [(t, p) for t, p, _ in seen.messages] == [(cac_topic(B, Kind.STATUS), b"B offline")]


def test_revoked_cac_is_cut_off_on_sighup_and_cannot_reconnect(hub: Hub) -> None:
    a, b = hub.client(A), hub.client(B)
    user, pw = hub.creds(A)
    r = provision("revoke-cac", "--dir", hub.root, "--cac-id", A)
    assert "SIGHUP" in r.stdout
    assert not (hub.root / "cacs" / A).exists()
    hub.broker.hup()
    wait_for(lambda: a.disconnects, "A disconnected by the reload")
    again = Client(hub.port, user, pw)
    hub.clients.append(again)
    assert not again.connect(), "a revoked CAC reconnected"
    # B is untouched and still heard
    seen = hub.hub_subscriber()
    b.publish(cac_topic(B, Kind.USAGE), b"B goes on")
    wait_for(lambda: seen.messages, "B's usage")
    assert b.disconnects == []


def test_added_cac_connects_after_sighup_without_restart(hub: Hub) -> None:
    provision("add-cac", "--dir", hub.root, "--cac-id", "cac-ccc")
    early = hub.client("cac-ccc", connect=False)
    assert not early.connect(), "credentials work before the broker reloaded?"
    hub.broker.hup()
    c = hub.client("cac-ccc")
    seen = hub.hub_subscriber()
    c.publish(cac_topic("cac-ccc", Kind.HEALTH), b"hello")
    wait_for(lambda: seen.messages, "the new CAC's health")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes Mosquitto drop privileges")
def test_as_root_the_broker_drops_to_its_user_and_still_reads_its_files() -> None:
    """The production case: no --broker-user, Mosquitto started as root becomes 'mosquitto'."""
    base = Path(tempfile.mkdtemp(prefix="cac-prov-", dir="/tmp"))  # pytest's tmp is 0700
    try:
        os.chmod(base, 0o755)
        root = base / "hub"
        provision("init-hub", "--dir", root, "--mqtt-port", str(free_port()), "--bind",
                  "127.0.0.1", "--tls")
        provision("add-cac", "--dir", root, "--cac-id", A, "--stations", "1")
        broker = ProvisionedBroker(root)
        broker.start()
        try:
            m = read_toml(root / "cacs" / A / "agent.toml")["mqtt"]
            c = Client(broker.port, m["username"], m["password"],
                       ca_file=root / "cacs" / A / "ca.crt")
            assert c.connect()
            c.close()
            assert pwd.getpwuid(_proc_uid(broker.pid)).pw_name == "mosquitto"
        finally:
            broker.stop()
    finally:
        shutil.rmtree(base)


def _proc_uid(pid: int | None) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")
