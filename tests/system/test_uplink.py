"""The uplink state end to end, as real processes: Mosquitto, `cac-hub`, `cac-agent` with an
internet probe aimed at a TCP listener of this test on 127.0.0.1 (the "internet", which the
test opens and closes). The agent's station API and the hub's fleet API both say what the
agent saw; the broker going away shows as the hub link down."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import MosquittoBroker, free_port, http, until

from hub.model import uplink_label
from wire.messages import Uplink

from .test_pipeline import CAC, Site, token

pytestmark = pytest.mark.system


class Internet:
    """A TCP listener that accepts and closes connections: up while it listens."""

    def __init__(self) -> None:
        self.port = free_port()
        self.srv: socket.socket | None = None
        self.thread: threading.Thread | None = None

    def up(self) -> None:
        srv = self.srv = socket.create_server(("127.0.0.1", self.port))
        srv.settimeout(0.2)

        def serve() -> None:
            while self.srv is srv:
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                conn.close()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def down(self) -> None:
        srv, self.srv = self.srv, None
        if srv is not None:
            srv.close()
        if self.thread is not None:
            self.thread.join(5)


@pytest.fixture
def internet() -> Iterator[Internet]:
    net = Internet()
    net.up()
    yield net
    net.down()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def site(tmp_path: Path, broker: MosquittoBroker, internet: Internet) -> Iterator[Site]:
    s = Site(tmp_path, broker, health_interval=1)
    with (tmp_path / "agent.toml").open("a") as f:
        f.write(f'\n[uplink]\nprobe = ["127.0.0.1:{internet.port}"]\ninterval_seconds = 1\n'
                "timeout_seconds = 1\n")
    yield s
    s.agent.stop()
    s.hub.stop()


def station_uplink(site: Site) -> dict[str, Any]:
    status, body = http("GET", f"{site.a}/stations/s1/uplink", tok=token("s1"))
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def hub_uplink(site: Site) -> dict[str, Any] | None:
    cac = site.hub_cac()
    return None if cac is None else cac["health"].get("uplink")


def test_uplink_state_reaches_the_kiosk_api_and_the_hub(site: Site, broker: MosquittoBroker,
                                                        internet: Internet) -> None:
    procs = (site.agent, site.hub)
    site.start_hub()
    site.start_agent()
    up = until(lambda: (u := hub_uplink(site)) and u["internet"] is True and u["hub"] and u,
               "the hub to show the internet up", procs=procs)
    assert up["up"] is True
    assert station_uplink(site)["up"] is True
    # the station API needs the station's own token
    assert http("GET", f"{site.a}/stations/s1/uplink", tok=token("s2"))[0] in (401, 403)
    assert http("GET", f"{site.a}/stations/s1/uplink")[0] == 401

    internet.down()
    until(lambda: station_uplink(site)["up"] is False, "the agent to see the internet down",
          procs=procs)
    down = until(lambda: (u := hub_uplink(site)) and u["internet"] is False and u,
                 "the hub to show the internet down", procs=procs)
    assert down["hub"] is True and down["up"] is False
    assert uplink_label(Uplink(**down)) == "internet down"
    assert http("GET", f"{site.a}/health")[1]["uplink"]["internet"] is False

    internet.up()
    back = until(lambda: (u := hub_uplink(site)) and u["up"] is True and u,
                 "the hub to show the internet back", procs=procs)
    assert back["last_outage_s"] is not None and back["last_outage_s"] > 0

    broker.stop()  # the hub's broker is gone: the hub link is down, the kiosk knows
    until(lambda: station_uplink(site)["hub"] is False, "the agent to see the hub link down",
          procs=procs)
    assert CAC in {c["cac_id"] for c in http("GET", f"{site.h}/cacs", tok=site.hub_token)[1]}
