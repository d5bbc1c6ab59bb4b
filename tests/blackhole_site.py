"""A CAC whose uplink is black-holed: run INSIDE a network namespace made for it.

``ip netns exec NS python tests/blackhole_site.py WORKDIR [--baseline]`` starts a real
Mosquitto and a real ``cac-agent`` on the namespace's loopback, waits until the agent is
connected, then drops every packet to and from the broker's port with nftables (nothing is
refused, nothing answers: a dead modem), and measures how long the agent takes to notice
(its "connection lost" log line), then lifts the block and waits for it to reconnect.
With ``--baseline``, a bare paho client with paho's defaults (keepalive 30 s, publishing
every 2 s as the agent's health does) rides the same black hole, so the two figures come
from the same run. Prints one JSON line. Used by tests/agent/test_blackhole.py and
bench/blackhole.py; the namespace keeps all of it off this machine's own network.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import MosquittoBroker, Proc  # noqa: E402

BIN = Path(sys.executable).parent
CAC = "ma-oriental-blackhole-001"
TABLE = "cacblackhole"


def agent_toml(work: Path, port: int) -> Path:
    path = work / "agent.toml"
    path.write_text(f"""
cac_id = "{CAC}"
data_dir = "{work / 'agent-data'}"
timezone = "Africa/Casablanca"
health_interval_seconds = 2

[mqtt]
host = "127.0.0.1"
port = {port}

[http]
host = "127.0.0.1"
port = 18081

[[stations]]
id = "s1"
token = "blackhole-token-s1-0000000000"

[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 0
""")
    return path


def nft(*args: str) -> None:
    subprocess.run(["nft", *args], check=True, capture_output=True, text=True)


def block(port: int) -> None:
    nft("add", "table", "inet", TABLE)
    for hook in ("input", "output"):
        nft("add", "chain", "inet", TABLE, hook,
            f"{{ type filter hook {hook} priority 0; policy accept; }}")
        nft("add", "rule", "inet", TABLE, hook, "tcp", "dport", str(port), "drop")
        nft("add", "rule", "inet", TABLE, hook, "tcp", "sport", str(port), "drop")


def unblock() -> None:
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True)


def wait_for(cond: object, what: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


class BarePaho:
    """The baseline: paho as most MQTT programs use it, nothing tuned."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.lost_at: float | None = None
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-paho")
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_disconnect = self._lost
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self._stop = threading.Event()
        threading.Thread(target=self._publish, daemon=True).start()

    def _lost(self, *args: object) -> None:
        if self.connected.is_set() and self.lost_at is None:
            self.lost_at = time.monotonic()

    def _publish(self) -> None:
        while not self._stop.wait(2.0):
            self.client.publish("bare/health", b"x" * 300, qos=1)

    def close(self) -> None:
        self._stop.set()
        self.client.loop_stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=Path)
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--baseline-timeout", type=float, default=150.0)
    args = ap.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    unblock()
    broker = MosquittoBroker(work / "broker")
    broker.start()
    log = work / "agent.log"
    agent = Proc("agent", [str(BIN / "cac-agent"), "--config",
                           str(agent_toml(work, broker.port))], log)
    lost_re = re.compile(rf"mqtt 127\.0\.0\.1:{broker.port}: (connection lost[^;]*);")
    bare = None
    try:
        agent.start()
        text = lambda: log.read_text(errors="replace") if log.exists() else ""  # noqa: E731
        wait_for(lambda: "mqtt connected" in text(), "the agent to connect", 30)
        if args.baseline:
            bare = BarePaho(broker.port)
            wait_for(bare.connected.is_set, "the bare paho client to connect", 10)
        time.sleep(3)  # a few health reports in flight, as on a live site
        before = len(lost_re.findall(text()))
        t0 = time.monotonic()
        block(broker.port)
        t1 = wait_for(lambda: len(lost_re.findall(text())) > before,
                      "the agent to notice the black hole", 120)
        reason = lost_re.findall(text())[before]
        out: dict[str, object] = {"agent_detect_s": round(t1 - t0, 1), "reason": reason}
        if bare is not None:
            wait_for(lambda: bare.lost_at is not None, "the bare paho client to notice",
                     args.baseline_timeout)
            out["bare_paho_detect_s"] = round((bare.lost_at or 0) - t0, 1)
        connects = text().count("mqtt connected")
        unblock()
        t2 = time.monotonic()
        t3 = wait_for(lambda: text().count("mqtt connected") > connects,
                      "the agent to reconnect after the block is lifted", 90)
        out["reconnect_after_unblock_s"] = round(t3 - t2, 1)
        print(json.dumps(out), flush=True)
        return 0
    finally:
        unblock()
        if bare is not None:
            bare.close()
        agent.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
