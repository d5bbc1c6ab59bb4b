"""Real `cac-agent` and `cac-hub` processes run with the files `cac-provision` wrote."""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port

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
from wire.messages import Status, encode
from wire.topics import Kind, cac_topic, hub_subscriptions

pytestmark = pytest.mark.system

CAC, OTHER, GHOST = "cac-real-001", "cac-other-002", "cac-ghost-003"
WAIT = 20.0


class Site:
    def __init__(self, tmp: Path, tls: bool) -> None:
        self.tmp = tmp
        self.root = tmp / "hub"
        self.http_port = free_port()
        init_hub(self.root, "--http-port", str(self.http_port), *(["--tls"] if tls else []))
        self.agent_port = free_port()
        provision("add-cac", "--dir", self.root, "--cac-id", CAC, "--stations", "2",
                  "--agent-data-dir", tmp / "agent-data", "--agent-bind", "127.0.0.1",
                  "--agent-port", str(self.agent_port))
        self.broker = ProvisionedBroker(self.root)
        self.broker.start()
        self.tls = tls
        self.procs: list[Proc] = []
        self.clients: list[Client] = []

    def ca(self) -> Path | None:
        return self.root / "tls" / "ca.crt" if self.tls else None

    def hub_subscriber(self) -> Client:
        m = read_toml(self.root / "hub.toml")["mqtt"]
        c = Client(self.broker.port, m["username"], m["password"], ca_file=self.ca(),
                   client_id="test-hub-listener")
        self.clients.append(c)
        assert c.connect()
        c.subscribe(*hub_subscriptions(shared=True))
        return c

    def agent(self) -> Proc:
        p = Proc(self.tmp / "agent.log", BIN / "cac-agent", "--config",
                 self.root / "cacs" / CAC / "agent.toml")
        self.procs.append(p)
        return p

    def hub(self) -> Proc:
        p = Proc(self.tmp / "hub.log", BIN / "cac-hub", "--config", self.root / "hub.toml")
        self.procs.append(p)
        return p

    def secrets(self) -> list[str]:
        out = [read_toml(self.root / "hub.toml")["mqtt"]["password"]]
        for toml in self.root.glob("cacs/*/agent.toml"):
            doc = read_toml(toml)
            out += [doc["mqtt"]["password"], *(s["token"] for s in doc["stations"])]
        return out

    def close(self) -> None:
        for p in self.procs:
            p.stop()
        for c in self.clients:
            c.close()
        self.broker.stop()


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[Any]:
    sites: list[Site] = []

    def make(tls: bool) -> Site:
        sites.append(Site(tmp_path / f"site{len(sites)}", tls))
        return sites[-1]

    try:
        yield make
    finally:
        for s in sites:
            s.close()


def statuses(c: Client, cac: str) -> list[str]:
    return [json.loads(p)["state"] for t, p, _ in c.messages if t == cac_topic(cac, Kind.STATUS)]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_enrolled_agent_reaches_the_hub(site_factory: Any, tls: bool) -> None:
    site: Site = site_factory(tls)
    seen = site.hub_subscriber()
    agent = site.agent()
    try:
        wait_for(lambda: "online" in statuses(seen, CAC), "the agent's online status", WAIT)
    except AssertionError:
        pytest.fail(f"agent did not reach the hub:\n{agent.text()[-3000:]}")
    agent.stop()
    wait_for(lambda: statuses(seen, CAC)[-1:] == ["offline"], "the agent's offline status")
    log = agent.text()
    assert not any(s in log for s in site.secrets()), "a secret in the agent's log"


def test_real_hub_over_tls_never_sees_a_forged_cac(site_factory: Any) -> None:
    site: Site = site_factory(True)
    provision("add-cac", "--dir", site.root, "--cac-id", OTHER, "--stations", "1")
    site.broker.hup()
    hub, agent = site.hub(), site.agent()
    m = read_toml(site.root / "cacs" / OTHER / "agent.toml")["mqtt"]
    forger = Client(site.broker.port, m["username"], m["password"], ca_file=site.ca())
    site.clients.append(forger)
    assert forger.connect()

    token = add_token_cli(site.root / "hub.toml")
    tls = ssl.create_default_context(cafile=str(site.ca()))  # the hub serves HTTPS now

    def online() -> set[str]:
        req = urllib.request.Request(f"https://127.0.0.1:{site.http_port}/api/v1/cacs",
                                     headers=auth(token))
        with urllib.request.urlopen(req, timeout=5, context=tls) as r:  # noqa: S310
            return {c["cac_id"] for c in json.load(r) if c["online"]}

    def hub_sees(want: set[str]) -> bool:
        try:
            return want <= online()
        except OSError:
            return False

    try:
        wait_for(lambda: hub_sees({CAC}), "the real agent online at the real hub", WAIT)
    except AssertionError:
        pytest.fail(f"hub:\n{hub.text()[-2000:]}\nagent:\n{agent.text()[-2000:]}")
    at = "2026-01-01T00:00:00+00:00"
    status = encode(Status(state="online", boot_id="f" * 32, version="9.9", at=at))
    forger.publish(cac_topic(GHOST, Kind.STATUS), status, retain=True)  # a CAC that isn't
    forger.publish(cac_topic(CAC, Kind.STATUS),
                   encode(Status(state="offline", boot_id="f" * 32, version="9.9", at=at)),
                   retain=True)
    forger.publish(cac_topic(OTHER, Kind.STATUS), status, retain=True)  # control: its own
    wait_for(lambda: hub_sees({OTHER}), "the forger's own status at the hub", WAIT)
    assert online() == {CAC, OTHER}, "the hub believed a forged status"
    for p in (hub, agent):
        assert not any(s in p.text() for s in site.secrets()), "a secret in a log"


def test_agent_that_does_not_trust_the_broker_does_not_connect(
        site_factory: Any, tmp_path: Path) -> None:
    site: Site = site_factory(True)
    other = tmp_path / "other-hub"
    init_hub(other, "--tls")
    shutil.copy(other / "tls" / "ca.crt", site.root / "cacs" / CAC / "ca.crt")
    seen = site.hub_subscriber()
    agent = site.agent()
    wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in agent.text(), "the agent's TLS refusal",
             WAIT)
    assert statuses(seen, CAC) == []
    assert f"u'{CAC}'" not in site.broker.log_text()  # the broker never let it in
