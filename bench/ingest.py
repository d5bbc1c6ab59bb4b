"""Hub ingest rate beside the raw MQTT ceiling, and how many simulated CACs one hub holds.

Run: ``python bench/ingest.py`` (about 9 minutes on 2 cores) or ``--quick`` (about 2 minutes),
PostgreSQL runs included in both.

Three measurements, one broker configuration (``broker_config()``, what a hub's broker sets:
deep per-client queues, a wide in-flight window: ``--inflight`` changes it), all in the same
run:

(a) *raw ceiling*: M pre-encoded messages (the simulator's own health and usage payloads,
    ~10 health to 1 usage, all QoS 1: see ``publish_all``) wait in the broker for a bare
    paho subscriber's persistent session; the subscriber then connects, json-decodes and
    counts them: messages per second received.
(b) *hub ingest*: the same M messages wait, in the same broker, for the real hub's
    persistent session (``cac-hub --config`` as a subprocess, stopped while they are
    published); the hub then starts and validates, stores (usage in SQLite, acks out) and
    updates fleet state: messages per second, read from its ``/metrics`` counters, until
    every message is counted and every usage record stored. Printed beside (a).
    Draining a backlog measures each consumer alone, without a publisher competing for the
    same 2 cores.
(c) *fleet capacity*: for N simulated CACs (``cac-simulate`` as a subprocess: real MQTT
    clients, health every ``--health-interval`` s, usage at a tenth of that rate, acked by
    the hub) against a fresh broker and hub, the fleet-state lag: from a CAC's health
    publish (its ``at``) to ``/api/v1/cacs`` showing it, polled every ``POLL_SECONDS``
    (so the observed figure includes up to one poll interval; the hub's own receive stamp,
    ``health.received_at``, is printed too). Limit: p99 under 2 s. The health interval is
    accelerated: N CACs at interval H load the hub like N * 30 / H real ones.
    Each N runs three times: the hub on SQLite; one worker on PostgreSQL; two workers on one
    PostgreSQL database (each its own broker identity, usage through ``$share/hub/``, the
    lag taken from both workers' fleet views) - started by ``hub_workers``, as (b3)/(b4).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import msgspec  # noqa: E402
import paho.mqtt  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
import psutil  # noqa: E402
from helpers import MosquittoBroker, free_port  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from pgserver import PgServer  # noqa: E402

from hub.sim.cac import SimCac, SimSettings, cac_ids  # noqa: E402
from wire.topics import Kind, cac_topic, hub_subscriptions  # noqa: E402

# what the hub's broker sets (FIELD-NOTES: the default queue of 1000 drops messages)
BROKER_INFLIGHT = 1000  # --inflight: the broker's max_inflight_messages per client


def broker_config(inflight: int = BROKER_INFLIGHT) -> tuple[str, ...]:
    return ("max_queued_messages 1000000", f"max_inflight_messages {inflight}",
            "max_connections -1", "set_tcp_nodelay true")


LAG_LIMIT_S = 2.0
POLL_SECONDS = 0.5
HUB_ID = "bench-hub"
RAW_CLIENT_ID = "bench-raw-subscriber"
PAYLOAD_CACS = 500  # distinct CACs in the pre-encoded mix of (a) and (b)
HEALTH_PER_USAGE = 10
START_TIMEOUT = 20.0
DRAIN_TIMEOUT = 300.0
RAMP = 500  # simulator connections per second in (c)
PUBLISH_CHUNK = 20_000


@dataclass(frozen=True)
class Plan:
    messages: int
    fleet: tuple[int, ...]
    health_interval: float
    window_s: float
    broker: tuple[str, ...] = broker_config()


FULL = Plan(messages=100_000, fleet=(250, 500, 1000, 2000, 5000), health_interval=1.0,
            window_s=20)
QUICK = Plan(messages=20_000, fleet=(250, 1000), health_interval=1.0, window_s=8)


def percentile(samples: list[float], p: float) -> float:
    if not samples:
        return math.nan
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


# ---------------------------------------------------------------- the message mix


def message_mix(total: int, cacs: int = PAYLOAD_CACS, seed: int = 1
                ) -> tuple[list[tuple[str, bytes]], int, int]:
    """``total`` (topic, payload) pairs as a live fleet sends them: returns (mix, usage
    messages, usage records). Made by the simulator's own model, stepped through virtual
    time, every batch acknowledged at once (so each usage message is a fresh record)."""
    settings = SimSettings(health_interval=1.0, usage_rate=3600 / HEALTH_PER_USAGE,
                           ack_timeout=1e9, ack_timeout_max=1e9)
    rng = random.Random(seed)
    t0 = time.time() - 86400
    models = [SimCac(cid, settings, random.Random(rng.getrandbits(64)), t0)
              for cid in cac_ids(cacs, "bench")]
    topics = {m.cac_id: (cac_topic(m.cac_id, Kind.HEALTH), cac_topic(m.cac_id, Kind.USAGE))
              for m in models}
    for m in models:
        m.connected(t0)  # births are retained: left out, so the counts stay exact
    out: list[tuple[str, bytes]] = []
    usage_msgs = usage_records = 0
    now = t0
    while len(out) < total:
        now += 1.0
        for m in models:
            for p in m.step(now):
                health_topic, usage_topic = topics[m.cac_id]
                if p.kind is Kind.HEALTH:
                    out.append((health_topic, p.payload))
                elif p.kind is Kind.USAGE:
                    out.append((usage_topic, p.payload))
                    usage_msgs += 1
                    usage_records += len(msgspec.json.decode(p.payload)["records"])
            m.on_ack(m.sent_seq, now)
    # cut at a message boundary; recount what was cut
    for topic, payload in out[total:]:
        if topic.endswith("/usage"):
            usage_msgs -= 1
            usage_records -= len(msgspec.json.decode(payload)["records"])
    return out[:total], usage_msgs, usage_records


def publish_all(broker: MosquittoBroker, mix: list[tuple[str, bytes]]) -> float:
    """Publish the mix at QoS 1 as fast as the broker takes it; returns messages per second.
    Agents send health at QoS 0 (CONTRACT §6), but a QoS 0 backlog is not kept whole by the
    broker (with ``queue_qos0_messages``, 7-8 % of 100,000 were lost before (a) read them),
    so every message here is QoS 1: each costs the hub a PUBACK a real fleet's health does
    not."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher",
                         clean_session=True)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        t0 = time.perf_counter()
        # paho's message ids are 16 bits: at most PUBLISH_CHUNK outstanding at a time
        for i in range(0, len(mix), PUBLISH_CHUNK):
            infos = [client.publish(topic, payload, qos=1)
                     for topic, payload in mix[i:i + PUBLISH_CHUNK]]
            for info in infos:
                info.wait_for_publish(DRAIN_TIMEOUT)
        return len(mix) / (time.perf_counter() - t0)
    finally:
        client.disconnect()
        client.loop_stop()


# ---------------------------------------------------------------- (a) raw subscriber


class RawSubscriber:
    """A bare paho subscriber with a persistent session: json-decodes and counts."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.broker = broker
        self.count = 0
        self.first = self.last = 0.0
        self.done = threading.Event()
        self.expect = 0
        self.cpu_seconds = math.nan  # this process's CPU time over the drain

    def _client(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=RAW_CLIENT_ID,
                        clean_session=False)
        c.on_message = self._on_message
        return c

    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        msgspec.json.decode(msg.payload)
        self.count += 1
        now = time.perf_counter()
        if self.count == 1:
            self.first = now
        self.last = now
        if self.count >= self.expect:
            self.done.set()

    def subscribe_and_leave(self) -> None:
        """Create the session and its subscriptions, then go away (messages queue up)."""
        c = self._client()
        subscribed = threading.Event()
        c.on_subscribe = lambda *a: subscribed.set()
        c.connect(self.broker.host, self.broker.port)
        c.loop_start()
        c.subscribe([(t, 1) for t in hub_subscriptions()])
        if not subscribed.wait(START_TIMEOUT):
            raise RuntimeError("the raw subscriber could not subscribe")
        c.disconnect()
        c.loop_stop()

    def drain(self, expect: int) -> float:
        """Connect, receive ``expect`` queued messages; returns messages per second."""
        self.expect = expect
        c = self._client()
        cpu0 = time.process_time()  # every thread of this process: paho's does the work
        c.connect(self.broker.host, self.broker.port)
        c.loop_start()
        try:
            if not self.done.wait(DRAIN_TIMEOUT):
                raise RuntimeError(f"raw subscriber got {self.count} of {expect} messages")
            self.cpu_seconds = time.process_time() - cpu0
        finally:
            c.disconnect()
            c.loop_stop()
        # rate over the messages after the first (the first one starts the clock)
        return (self.count - 1) / max(1e-9, self.last - self.first)


# ---------------------------------------------------------------- the hub as a process


class HubProcess:
    """``cac-hub --config hub.toml`` (run as ``python -m hub.cli``) on a broker.

    Assumes the hub.toml keys of CONTRACT §2 (``hub_id``, ``data_dir``,
    ``offline_after_seconds``, ``[mqtt] host/port``, ``[http] host/port``) and the
    ``/metrics`` counters ``cac_hub_messages_total{kind}``, ``cac_hub_records_stored_total``,
    ``cac_hub_rejected_total{reason}`` and gauge ``cac_hub_mqtt_connected``.
    """

    def __init__(self, broker: MosquittoBroker, workdir: Path, *,
                 offline_after: int = 90, store_url: str | None = None,
                 hub_id: str = HUB_ID, worker_id: str | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.config = workdir / "hub.toml"
        self.config.write_text(
            f'hub_id = "{hub_id}"\n'
            f'data_dir = "{workdir / "data"}"\n'
            f"offline_after_seconds = {offline_after}\n"
            + (f'worker_id = "{worker_id}"\nshared_subscription = true\n' if worker_id
               else "")
            +             f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            f'[http]\nhost = "127.0.0.1"\nport = {self.http_port}\n'
            + (f'[store]\nurl = "{store_url}"\n' if store_url else ""))
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        made = subprocess.run(  # an API token, as a scraper gets one (CONTRACT §9)
            [sys.executable, "-m", "hub.cli", "add-token", "--config", str(self.config),
             "--name", f"bench-{worker_id or 'hub'}", "--role", "viewer"],  # one each
            cwd=ROOT, capture_output=True, text=True,
            check=True, timeout=60)
        self.token = made.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        log = (self.workdir / "hub.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "--config", str(self.config),
             "--log-level", "WARNING"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.proc.returncode}: "
                                   f"{(self.workdir / 'hub.log').read_text()[-1500:]}")
            with contextlib.suppress(OSError):
                if self.metrics().get("cac_hub_mqtt_connected") == 1:
                    return
            time.sleep(0.05)
        raise RuntimeError("the hub did not connect to the broker in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def get(self, path: str) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            body: bytes = resp.read()
            return body

    def metrics(self, names: Sequence[str] = ()) -> dict[str, float]:
        """Prometheus samples without per-CAC labels, e.g. 'cac_hub_messages_total{...}';
        only ``names`` when given (``?name[]=``: the hub then skips its per-CAC series, which
        a 20 Hz poll would otherwise make it build for every CAC, on its event loop)."""
        query = "?" + "&".join(f"name[]={n}" for n in names) if names else ""
        out: dict[str, float] = {}
        for line in self.get("/metrics" + query).decode().splitlines():
            if line.startswith("#") or "cac_id=" in line or not line.strip():
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out


COUNTED = ("cac_hub_messages_total", "cac_hub_records_stored_total", "cac_hub_rejected_total")


def counted(m: dict[str, float]) -> tuple[int, int, int]:
    """(messages counted, records stored, messages rejected) from /metrics."""
    msgs = sum(v for k, v in m.items() if k.startswith("cac_hub_messages_total"))
    rejected = sum(v for k, v in m.items() if k.startswith("cac_hub_rejected_total"))
    return int(msgs), int(m.get("cac_hub_records_stored_total", 0)), int(rejected)


@dataclass
class HubDrain:
    rate: float  # messages validated (and their records stored) per second
    seconds: float
    messages: int
    records: int
    rejected: int
    cpu_percent: float
    cpu_seconds: float = math.nan  # the hub's CPU time (user + system) over the timed drain


PROFILE: Path | None = None  # --profile


def profiler(pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """With ``--profile FILE``: py-spy (``pip install py-spy``) sampling the hub by thread,
    collapsed stacks to FILE.<name> (hub-ab: SQLite, hub-pg: PostgreSQL; flamegraph.pl or
    speedscope read them)."""
    if PROFILE is None:
        return None
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                            str(pid), "--threads", "--rate", "250", "--format", "raw",
                            "--output", f"{PROFILE}.{name}"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)  # attached before the drain gets going
    return spy


def measure_hub(hub: HubProcess, expect_messages: int, expect_records: int) -> HubDrain:
    """Start the hub on a backlog of ``expect_messages`` waiting in its persistent session;
    poll /metrics until all are counted and ``expect_records`` stored."""
    hub.start()
    assert hub.ps is not None
    spy = profiler(hub.ps.pid, hub.workdir.name)
    hub.ps.cpu_percent(None)
    samples: list[tuple[float, int, float]] = []
    deadline = time.monotonic() + DRAIN_TIMEOUT
    msgs = records = rejected = 0
    while time.monotonic() < deadline:
        msgs, records, rejected = counted(hub.metrics(COUNTED))
        times = hub.ps.cpu_times()
        samples.append((time.perf_counter(), msgs, times.user + times.system))
        if msgs >= expect_messages and records >= expect_records:
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"the hub counted {msgs}/{expect_messages} messages, stored "
                           f"{records}/{expect_records} records")
    cpu = hub.ps.cpu_percent(None)
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile on Ctrl-C
        spy.wait(30)
    t_end, _n, cpu_end = samples[-1]
    # the clock starts at the first sample that saw messages counted (start-up excluded)
    start = next((t, n, c) for t, n, c in samples if n > 0)
    seconds = max(1e-9, t_end - start[0])
    return HubDrain((msgs - start[1]) / seconds, seconds, msgs, records, rejected, cpu,
                    cpu_end - start[2])


def measure_live(hubs: list[HubProcess], broker: MosquittoBroker,
                 mix: list[tuple[str, bytes]], expect_records: int) -> tuple[float, float, float]:
    """Workers already running (shared usage: they use clean sessions, so no backlog can
    wait for them): publish the mix, poll until every usage record is stored by one of
    them. (messages per second publish to stored, publish rate, seconds from the last
    publish to the last record stored)."""
    t0 = time.perf_counter()
    rate_pub = publish_all(broker, mix)
    t_pub = time.perf_counter()
    deadline = time.monotonic() + DRAIN_TIMEOUT
    stored = 0
    while time.monotonic() < deadline:
        stored = sum(counted(h.metrics(COUNTED))[1] for h in hubs)
        if stored >= expect_records:
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"{len(hubs)} worker(s) stored {stored}/{expect_records} records")
    t_end = time.perf_counter()
    return len(mix) / (t_end - t0), rate_pub, t_end - t_pub


@contextlib.contextmanager
def hub_workers(workdir: Path, tag: str, broker_conf: tuple[str, ...], pg: PgServer | None,
                workers: int = 1, offline_after: int = 90
                ) -> Iterator[tuple[MosquittoBroker, list[HubProcess]]]:
    """A fresh broker and running hub(s) on it, stopped on leaving.

    ``pg`` None: one hub on SQLite in its data_dir. Else ``workers`` cac-hub processes on one
    new database of ``pg``, each with its own broker identity (``worker_id``) and usage
    through the ``$share/hub/`` shared subscription, as a hub given several workers runs.
    """
    broker = MosquittoBroker(workdir / f"broker-{tag}", extra_config=broker_conf)
    broker.start()
    hubs: list[HubProcess] = []
    try:
        if pg is None:
            hubs.append(HubProcess(broker, workdir / f"hub-{tag}", offline_after=offline_after))
        else:
            url = pg.new_database()
            hubs += [HubProcess(broker, workdir / f"hub-{tag}-w{i}", store_url=url,
                                hub_id=f"{HUB_ID}-{tag}", worker_id=f"w{i}",
                                offline_after=offline_after)
                     for i in range(1, workers + 1)]
        for h in hubs:
            h.start()
        yield broker, hubs
    finally:
        for h in hubs:
            h.stop()
        broker.stop()


# ---------------------------------------------------------------- (c) fleet capacity


@dataclass
class FleetResult:
    n: int
    equivalent: int
    health_rate: float
    seen: int
    online: int
    lag_p50: float
    lag_p99: float
    lag_max: float
    stamp_p50: float
    stamp_p99: float
    hub_cpu: float
    sim_cpu: float
    broker_cpu: float
    sim_rss_mb: float
    api_ms: float  # median time of one GET /api/v1/cacs (fetched and decoded)
    rejected: int
    dropped: int
    store: str = "SQLite x1"  # the store and the number of hub workers

    @property
    def ok(self) -> bool:
        return self.online == self.n and self.lag_p99 < LAG_LIMIT_S


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def measure_fleet(n: int, plan: Plan, workdir: Path, pg: PgServer | None = None,
                  workers: int = 1) -> FleetResult:
    """N simulated CACs against a fresh broker and hub (``hub_workers``): fleet-state lag
    and CPU. With several workers each one's /api/v1/cacs is polled (every worker sees all
    status and health), and each (worker, report) first seen is one lag sample."""
    tag = f"fleet{n}-{'pg' if pg is not None else 'sqlite'}{workers}"
    sim: subprocess.Popen[bytes] | None = None
    prefix = f"cap{n}"
    with hub_workers(workdir, tag, plan.broker, pg, workers) as (broker, hubs):
        try:
            interval = plan.health_interval
            ramp_s = n / RAMP
            sim_log = (workdir / f"sim-{tag}.log").open("ab")
            sim = subprocess.Popen(
                [sys.executable, "-m", "hub.simulator", "--host", broker.host, "--port",
                 str(broker.port), "--count", str(n), "--prefix", prefix,
                 "--health-interval", str(interval),
                 "--usage-rate", str(3600 / interval / HEALTH_PER_USAGE),
                 "--ramp", str(RAMP), "--log-level", "WARNING",
                 "--duration", str(ramp_s + interval + plan.window_s + 30)],
                cwd=ROOT, stdout=sim_log, stderr=subprocess.STDOUT)
            sim_log.close()
            time.sleep(ramp_s + interval + 1)  # all connected, every CAC reported once
            hub_ps = [h.ps for h in hubs if h.ps is not None]
            sim_ps = psutil.Process(sim.pid)
            broker_ps = psutil.Process(broker.pid) if broker.pid else None
            for p in [*hub_ps, sim_ps, broker_ps]:
                if p is not None:
                    p.cpu_percent(None)
            m0 = [h.metrics() for h in hubs]
            t_start = time.time()
            first_seen: dict[tuple[int, str, str], float] = {}
            stamp: dict[tuple[int, str, str], float] = {}
            online = [0] * len(hubs)
            api_ms: list[float] = []
            while time.time() < t_start + plan.window_s:
                t_round = time.time()
                for w, hub in enumerate(hubs):
                    t_ask = time.time()
                    cacs = msgspec.json.decode(hub.get("/api/v1/cacs"))
                    t_seen = time.time()
                    api_ms.append(1000 * (t_seen - t_ask))
                    online[w] = 0
                    for c in cacs:
                        if not c["cac_id"].startswith(prefix):
                            continue
                        online[w] += bool(c["online"])
                        h = c.get("health") or {}
                        at = h.get("at")
                        if at is None:
                            continue
                        key = (w, c["cac_id"], at)
                        if key not in first_seen and _ts(at) >= t_start:
                            first_seen[key] = t_seen
                            if h.get("received_at"):
                                stamp[key] = _ts(h["received_at"])
                time.sleep(max(0.0, POLL_SECONDS - (time.time() - t_round)))
            elapsed = time.time() - t_start
            hub_cpu = sum(p.cpu_percent(None) for p in hub_ps)
            sim_cpu = sim_ps.cpu_percent(None)
            broker_cpu = broker_ps.cpu_percent(None) if broker_ps is not None else math.nan
            sim_rss = sim_ps.memory_info().rss / 1e6
            m1 = [h.metrics() for h in hubs]
        finally:
            if sim is not None and sim.poll() is None:
                sim.send_signal(signal.SIGTERM)
                try:
                    sim.wait(20)
                except subprocess.TimeoutExpired:
                    sim.kill()
                    sim.wait()
    lags = [t - _ts(at) for (_w, _cid, at), t in first_seen.items()]
    stamps = [t - _ts(at) for (_w, _cid, at), t in stamp.items()]
    health = 'cac_hub_messages_total{kind="health"}'
    health_rate = sum(b.get(health, 0) - a.get(health, 0)
                      for a, b in zip(m0, m1, strict=True)) / len(hubs) / elapsed
    return FleetResult(
        n=n, equivalent=round(n * 30 / interval), health_rate=health_rate,
        seen=len(lags), online=min(online),
        lag_p50=percentile(lags, 50), lag_p99=percentile(lags, 99),
        lag_max=max(lags, default=math.nan),
        stamp_p50=percentile(stamps, 50), stamp_p99=percentile(stamps, 99),
        hub_cpu=hub_cpu, sim_cpu=sim_cpu, broker_cpu=broker_cpu,
        sim_rss_mb=sim_rss, api_ms=percentile(api_ms, 50),
        rejected=sum(counted(m)[2] for m in m1),
        dropped=int(sum(m.get("cac_hub_messages_dropped_total", 0) for m in m1)),
        store=f"{'PostgreSQL' if pg is not None else 'SQLite'} x{workers}",
    )


# ---------------------------------------------------------------- main


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        print(f"work dir kept: {path}")
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as d:
            yield Path(d)


def mosquitto_version(broker: MosquittoBroker) -> str:
    for line in broker.log_text().splitlines():
        if "mosquitto version" in line:
            return line.split("mosquitto version", 1)[1].split()[0]
    return "?"


def run_throughput(plan: Plan, workdir: Path, postgres: bool = True) -> None:
    print(f"\n(a)+(b) ingest of a backlog of {plan.messages} messages "
          f"(health:usage ~{HEALTH_PER_USAGE}:1, {PAYLOAD_CACS} CACs, QoS 1)")
    t = time.perf_counter()
    mix, usage_msgs, usage_records = message_mix(plan.messages)
    size = sum(len(p) for _t, p in mix) / len(mix)
    print(f"  mix: {len(mix) - usage_msgs} health + {usage_msgs} usage messages "
          f"({usage_records} records), {size:.0f} bytes on average; made in "
          f"{time.perf_counter() - t:.1f} s")
    broker = MosquittoBroker(workdir / "broker-ab", extra_config=plan.broker)
    broker.start()
    hub = HubProcess(broker, workdir / "hub-ab")
    pg: PgServer | None = None
    hub_pg: HubProcess | None = None
    drain_pg: HubDrain | None = None
    live: dict[int, tuple[float, float, float]] = {}
    try:
        if postgres:  # (b2): the same hub on PostgreSQL (fsync on, as SQLite's FULL sync)
            pg = PgServer.create(fsync=True)
            hub_pg = HubProcess(broker, workdir / "hub-pg", store_url=pg.new_database(),
                                hub_id=HUB_ID + "-pg")
            hub_pg.start()
            hub_pg.stop()
        print(f"  broker: mosquitto {mosquitto_version(broker)}, {', '.join(plan.broker)}")
        raw = RawSubscriber(broker)
        raw.subscribe_and_leave()
        hub.start()  # creates the hub's persistent session and subscriptions
        hub.stop()
        rate_pub = publish_all(broker, mix)
        print(f"  published at {rate_pub:,.0f} msg/s (paho, in-flight 200); "
              "both sessions hold the backlog")
        rate_raw = raw.drain(len(mix))
        drain = measure_hub(hub, len(mix), usage_records)
        hub.stop()
        if hub_pg is not None:
            drain_pg = measure_hub(hub_pg, len(mix), usage_records)
            hub_pg.stop()
        if pg is not None:  # (b3) one and (b4) two workers, live (shared subscriptions)
            for n in (1, 2):  # each on a broker of its own, as fresh as (a)'s
                with hub_workers(workdir, f"live{n}", plan.broker, pg, n) as (lb, workers):
                    live[n] = measure_live(workers, lb, mix, usage_records)
    finally:
        hub.stop()
        if hub_pg is not None:
            hub_pg.stop()
        if pg is not None:
            pg.destroy()
        broker.stop()
    print()
    raw_us = 1e6 * raw.cpu_seconds / len(mix)
    hub_us = 1e6 * drain.cpu_seconds / max(1.0, drain.rate * drain.seconds)
    print(f"  {'consumer':<44} {'msg/s':>9} {'% of raw':>9} {'CPU us/msg':>11}")
    print(f"  {'(a) bare paho subscriber, json decode':<44} {rate_raw:>9,.0f} {100:>8.0f}% "
          f"{raw_us:>11.1f}")
    print(f"  {'(b) hub: validate, store usage, fleet, acks':<44} {drain.rate:>9,.0f} "
          f"{100 * drain.rate / rate_raw:>8.0f}% {hub_us:>11.1f}   (bare CPU per message = "
          f"{100 * raw_us / hub_us:.0f}% of the hub's)")
    if drain_pg is not None:
        print(f"  {'(b2) the same hub, [store] url PostgreSQL':<44} {drain_pg.rate:>9,.0f} "
              f"{100 * drain_pg.rate / rate_raw:>8.0f}%   ({drain_pg.records} records stored)")
    for n, (rate, pub, tail) in sorted(live.items()):
        label = f"(b{2 + n}) live, PostgreSQL, {n} worker{'s' if n > 1 else ''}"
        print(f"  {label:<44} {rate:>9,.0f} {100 * rate / rate_raw:>8.0f}%   (published at "
              f"{pub:,.0f} msg/s; last record stored {tail:.1f} s after the last publish)")
    if live:
        print("  (b3)/(b4): the workers run while the mix is published (shared subscriptions "
              "keep no backlog for absent workers); the figure is publish start to last "
              "record stored")
    print(f"  hub: {drain.messages} messages, {drain.records} records stored, "
          f"{drain.rejected} rejected, {drain.seconds:.1f} s, CPU {drain.cpu_percent:.0f}%"
          f" of one core over its start and drain")
    per_cac_rate = 1 / 30 * (1 + 1 / HEALTH_PER_USAGE)
    print(f"  a CAC reporting health every 30 s sends ~{per_cac_rate:.3f} msg/s: (b) is the "
          f"message rate of ~{drain.rate / per_cac_rate:,.0f} such CACs (connections aside)")


def run_fleet(plan: Plan, workdir: Path, postgres: bool = True) -> None:
    print(f"\n(c) fleet-state lag: health every {plan.health_interval:g} s, usage at 1/"
          f"{HEALTH_PER_USAGE} of that, {plan.window_s:g} s window, /api/v1/cacs polled "
          f"every {POLL_SECONDS:g} s; limit p99 < {LAG_LIMIT_S:g} s")
    head = (f"  {'store x workers':<15} {'CACs':>5} {'as 30s':>7} {'health/s':>8} "
            f"{'online':>7} {'samples':>7} {'lag p50':>7} {'p99':>6} {'max':>6} "
            f"{'hub p50':>7} {'p99':>6} {'hub%':>5} {'sim%':>5} {'mqtt%':>5} {'simMB':>5} "
            f"{'GET ms':>6}  under 2 s?")
    rows: list[FleetResult] = []
    pg = PgServer.create(fsync=True) if postgres else None  # fsync on, as in (b2)
    # SQLite 1 worker; PostgreSQL 1 and 2 workers (shared usage), as (b3)/(b4) start them
    setups: list[tuple[PgServer | None, int]] = [(None, 1)]
    if pg is not None:
        setups += [(pg, 1), (pg, 2)]
    try:
        for n in plan.fleet:
            for store, workers in setups:
                r = measure_fleet(n, plan, workdir, store, workers)
                rows.append(r)
                if len(rows) == 1:
                    print(head)
                print(f"  {r.store:<15} {r.n:>5} {r.equivalent:>7} {r.health_rate:>8.0f} "
                      f"{r.online:>7} {r.seen:>7} {r.lag_p50:>7.2f} {r.lag_p99:>6.2f} "
                      f"{r.lag_max:>6.2f} {r.stamp_p50:>7.3f} {r.stamp_p99:>6.3f} "
                      f"{r.hub_cpu:>5.0f} {r.sim_cpu:>5.0f} {r.broker_cpu:>5.0f} "
                      f"{r.sim_rss_mb:>5.0f} {r.api_ms:>6.0f}  {'yes' if r.ok else 'NO'}"
                      + (f"  ({r.rejected} rejected, {r.dropped} dropped)"
                         if r.rejected or r.dropped else ""), flush=True)
    finally:
        if pg is not None:
            pg.destroy()
    print("  lag = first poll showing the report - its publish time (includes up to one poll "
          "interval); 'hub' = the hub's receive stamp - publish time")
    print("  'as 30s' = CACs at the real 30 s interval that send the same message rate (the "
          "connections are the CACs column); CPU % of one core; GET ms = one /api/v1/cacs")
    print("  x2: two cac-hub workers on one PostgreSQL database, usage through $share/hub/; "
          "both workers' /api/v1/cacs are polled and each (worker, report) is a sample; "
          "online = the lower of their counts; health/s per worker; hub% = both summed")
    for label in dict.fromkeys(r.store for r in rows):
        held = [r for r in rows if r.ok and r.store == label]
        if held:
            best = max(held, key=lambda r: r.n)
            print(f"  {label}: held with p99 lag under {LAG_LIMIT_S:g} s: {best.n} simulated "
                  f"CACs (the message rate of {best.equivalent} at the real interval)")
        else:
            print(f"  {label}: no fleet size held with p99 lag under {LAG_LIMIT_S:g} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="a short run (about 2 minutes)")
    ap.add_argument("--only", choices=["throughput", "fleet"], help="run one part only")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    ap.add_argument("--profile", type=Path, metavar="FILE",
                    help="py-spy profile of the hub's drain (b), collapsed stacks by thread")
    ap.add_argument("--no-postgres", action="store_true",
                    help="leave out the PostgreSQL runs ((b2)-(b4) and (c)'s PostgreSQL "
                         "1- and 2-worker rows)")
    ap.add_argument("--inflight", type=int, default=BROKER_INFLIGHT,
                    help="the broker's max_inflight_messages (default %(default)s)")
    args = ap.parse_args()
    global PROFILE  # noqa: PLW0603 - a run-wide setting
    PROFILE = args.profile
    plan = dataclasses.replace(QUICK if args.quick else FULL,
                               broker=broker_config(args.inflight))
    print(f"bench/ingest.py on {platform.node()}: {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, paho-mqtt {paho.mqtt.__version__}")
    t0 = time.monotonic()
    with workspace(args.keep) as workdir:
        if args.only in (None, "throughput"):
            run_throughput(plan, workdir, postgres=not args.no_postgres)
        if args.only in (None, "fleet"):
            run_fleet(plan, workdir, postgres=not args.no_postgres)
    print(f"\ndone in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
