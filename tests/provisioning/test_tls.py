"""TLS on the provisioned broker: clients that trust the generated CA connect, others don't."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_agent_config
from hub.config import load_hub_config
from tests.provisioning.support import Client, ProvisionedBroker, init_hub, provision, read_toml

CAC = "cac-tls-001"


@pytest.fixture(scope="module")
def tls_hub(open_tmp_module: Path) -> Iterator[tuple[Path, int]]:
    root = open_tmp_module / "hub"
    port = init_hub(root, "--tls")
    provision("add-cac", "--dir", root, "--cac-id", CAC, "--stations", "1")
    broker = ProvisionedBroker(root)
    broker.start()
    try:
        yield root, port
    finally:
        broker.stop()


def creds(root: Path) -> tuple[str, str]:
    m = read_toml(root / "cacs" / CAC / "agent.toml")["mqtt"]
    return m["username"], m["password"]


def test_configs_point_at_the_ca_wherever_they_are_read_from(
        tls_hub: tuple[Path, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root, port = tls_hub
    monkeypatch.chdir(tmp_path)  # relative ca_file resolves beside the config, not the cwd
    agent = load_agent_config(root / "cacs" / CAC / "agent.toml")
    hub = load_hub_config(root / "hub.toml")
    assert agent.mqtt.tls and agent.mqtt.ca_file == (root / "cacs" / CAC / "ca.crt").resolve()
    assert hub.mqtt.tls and hub.mqtt.ca_file == (root / "tls" / "ca.crt").resolve()
    assert agent.mqtt.ca_file.read_bytes() == hub.mqtt.ca_file.read_bytes()
    assert agent.mqtt.port == hub.mqtt.port == port
    conf = (root / "mosquitto.conf").read_text()
    assert "tls_version tlsv1.2" in conf and "keyfile " in conf


def test_a_client_that_trusts_the_ca_connects(tls_hub: tuple[Path, int]) -> None:
    root, port = tls_hub
    c = Client(port, *creds(root), ca_file=root / "cacs" / CAC / "ca.crt")
    try:
        assert c.connect()
    finally:
        c.close()


def test_clients_that_do_not_trust_the_ca_refuse_to_connect(
        tls_hub: tuple[Path, int], tmp_path: Path) -> None:
    root, port = tls_hub
    other = tmp_path / "other"
    init_hub(other, "--tls")  # another hub's CA: a look-alike broker
    for ca in (None, other / "tls" / "ca.crt"):  # the system's CAs, then a foreign CA
        ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
        # (a raw TLS socket: paho leaks its socket when the handshake fails)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1").close()
    ctx = ssl.create_default_context(cafile=str(root / "cacs" / CAC / "ca.crt"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_plain_tcp_gets_nothing_from_a_tls_listener(tls_hub: tuple[Path, int]) -> None:
    root, port = tls_hub
    c = Client(port, *creds(root))
    try:
        c.connect()
    except (ConnectionError, AssertionError):
        pass  # the broker hangs up on a non-TLS hello: no CONNACK
    else:
        assert c.connack is None or c.connack.is_failure
    finally:
        c.close()
