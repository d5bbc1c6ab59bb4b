"""The hub's counters and their Prometheus text exposition (``GET /metrics``)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hub.fleet import CacView
from wire.topics import FROM_CAC

PREFIX = "cac_hub"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# why a message was refused: "topic" (not a CAC topic of ours) plus wire.messages kinds,
# and "foreign" (a record whose cac_id is not the topic's CAC)
REJECT_REASONS = ("topic", "malformed", "oversized", "wrong_version", "invalid", "foreign")

# plain counters: name -> help
COUNTERS = {
    "records_stored": "usage records stored for the first time",
    "records_duplicate": "usage records received again (already stored, same CAC and seq)",
    "records_conflict": "usage records whose id or seq clashes with a stored one",
    "acks_sent": "ack messages published to CACs",
    "store_commits": "store transactions committed",
    "store_errors": "batches the store failed to write (not acknowledged, retried by CACs)",
    "messages_dropped": "QoS 0 messages dropped because ingest was too far behind (none "
                        "since ingest reads only what it stores: a backlog waits in the broker)",
    "mqtt_connects": "successful connections to the broker",
    "mqtt_disconnects": "losses of the broker connection",
}


class Counters:
    """Monotonic counters, written by the ingest thread and read by the API thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages = {str(k): 0 for k in FROM_CAC}
        self._rejected = dict.fromkeys(REJECT_REASONS, 0)
        self._plain = dict.fromkeys(COUNTERS, 0)

    def message(self, kind: str) -> None:
        with self._lock:
            self._messages[kind] = self._messages.get(kind, 0) + 1

    def reject(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] = self._rejected.get(reason, 0) + 1

    def add(self, name: str, n: int = 1) -> None:
        if name not in COUNTERS:
            raise KeyError(name)
        if n:
            with self._lock:
                self._plain[name] += n

    def snapshot(self) -> CounterSnapshot:
        with self._lock:
            return CounterSnapshot(dict(self._messages), dict(self._rejected),
                                   dict(self._plain))


@dataclass(frozen=True)
class CounterSnapshot:
    messages: dict[str, int]
    rejected: dict[str, int]
    plain: dict[str, int]

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class Metric:
    name: str  # without the prefix
    kind: str  # "counter" or "gauge"
    help: str
    samples: Sequence[tuple[Mapping[str, str], float]] = field(default_factory=list)


def collect(counters: CounterSnapshot, fleet: Sequence[CacView],
            gauges: Mapping[str, tuple[str, float]] = {}) -> list[Metric]:  # noqa: B006
    """All metrics of the hub; ``gauges`` adds name -> (help, value) plain gauges."""
    online = sum(1 for c in fleet if c.online)
    out = [
        Metric("messages_total", "counter", "MQTT messages received from CACs, by kind",
               [({"kind": k}, v) for k, v in sorted(counters.messages.items())]),
        Metric("rejected_total", "counter", "messages refused, by reason",
               [({"reason": k}, v) for k, v in sorted(counters.rejected.items())]),
    ]
    out += [Metric(f"{name}_total", "counter", COUNTERS[name], [({}, v)])
            for name, v in counters.plain.items()]
    out.append(Metric("cacs", "gauge", "known CACs by state",
                      [({"state": "online"}, online), ({"state": "offline"}, len(fleet) - online)]))
    out.append(Metric("cac_online", "gauge", "1 if the CAC is online",
                      [({"cac_id": c.cac_id}, 1 if c.online else 0) for c in fleet]))
    out.append(Metric("cac_backlog", "gauge",
                      "usage records the CAC holds unacknowledged (from its health)",
                      [({"cac_id": c.cac_id}, c.backlog) for c in fleet
                       if c.backlog is not None]))
    out.append(Metric("cac_last_seen_seconds", "gauge",
                      "when the CAC was last heard (seconds since the epoch)",
                      [({"cac_id": c.cac_id}, c.last_seen) for c in fleet
                       if c.last_seen is not None]))
    out += [Metric(name, "gauge", help_, [({}, value)])
            for name, (help_, value) in gauges.items()]
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)
                                  and abs(value) < 2**53):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


# the metrics that read the fleet's per-CAC views (the costly part of a scrape)
FLEET_METRICS = frozenset({"cacs", "cac_online", "cac_backlog", "cac_last_seen_seconds"})


def wants_fleet(names: Sequence[str]) -> bool:
    """Whether a scrape limited to ``names`` (``?name[]=``; empty: everything) needs the
    fleet's views."""
    return not names or any(f"{PREFIX}_{m}" in names for m in FLEET_METRICS)


def only(metrics: Iterable[Metric], names: Sequence[str]) -> list[Metric]:
    """The metrics whose full name is in ``names`` (the ``name[]`` scrape parameter of
    Prometheus' own client libraries); every metric when ``names`` is empty."""
    return [m for m in metrics if not names or f"{PREFIX}_{m.name}" in names]


def render(metrics: Iterable[Metric]) -> str:
    """Prometheus text exposition format 0.0.4."""
    lines = []
    for m in metrics:
        name = f"{PREFIX}_{m.name}"
        lines.append(f"# HELP {name} {m.help}")
        lines.append(f"# TYPE {name} {m.kind}")
        for labels, value in m.samples:
            if labels:
                inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                lines.append(f"{name}{{{inner}}} {_number(value)}")
            else:
                lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"
