"""hub/ingest.py: the message handler, called directly (no network), and fuzzed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hub.fleet import FleetState
from hub.ingest import Incoming, Ingest
from hub.store import Store, StoreError
from tests.hub.factories import (
    CAC,
    OTHER,
    health,
    health_msg,
    session,
    status,
    usage,
    voucher_sale,
)
from wire.messages import (
    MAX_BATCH,
    MAX_PAYLOAD_BYTES,
    Ack,
    CommandAck,
    Health,
    Status,
    Usage,
    WireError,
    decode,
    encode,
)
from wire.topics import Kind, TopicError, cac_topic, hub_status_topic, parse_cac_topic

NOW = 1_700_000_000.0


def topic(kind: Kind, cac_id: str = CAC) -> str:
    return cac_topic(cac_id, kind)


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    store = Store(tmp_path / "hub.sqlite3")
    yield Ingest(store, FleetState(90, NOW))
    store.close()


def acks(out: list, cac_id: str = CAC) -> list[int]:  # type: ignore[type-arg]
    return [decode(o.payload, Ack).seq for o in out if o.topic == cac_topic(cac_id, Kind.ACK)]


def test_usage_is_stored_then_acked_with_the_watermark(ingest: Ingest) -> None:
    out = ingest.handle(topic(Kind.USAGE), usage(session(1), voucher_sale(2)), NOW)
    assert acks(out) == [2]
    assert ingest.store.count_records(CAC) == 2
    # a duplicate is answered with the current watermark, so the agent converges
    assert acks(ingest.handle(topic(Kind.USAGE), usage(session(1)), NOW)) == [2]
    # out of order: held back by the gap, then released
    assert acks(ingest.handle(topic(Kind.USAGE), usage(session(4)), NOW)) == [2]
    assert acks(ingest.handle(topic(Kind.USAGE), usage(session(3)), NOW)) == [4]
    snap = ingest.counters.snapshot()
    assert snap.plain["records_stored"] == 4
    assert snap.plain["records_duplicate"] == 1
    assert snap.messages["usage"] == 4
    assert snap.rejected_total == 0
    assert ingest.view(CAC) is not None and ingest.view(CAC).online  # type: ignore[union-attr]


def test_a_batch_is_one_transaction_with_one_ack_per_cac(ingest: Ingest) -> None:
    msgs = [
        Incoming(topic(Kind.USAGE), usage(session(1))),
        Incoming(topic(Kind.HEALTH), health(backlog=3)),
        Incoming(topic(Kind.USAGE), usage(session(2), session(3))),
        Incoming(topic(Kind.USAGE, OTHER), usage(session(1, OTHER))),
        Incoming(topic(Kind.STATUS), status()),
    ]
    out = ingest.handle_batch(msgs, NOW)
    assert acks(out) == [3]
    assert acks(out, OTHER) == [1]
    assert len(out) == 2
    assert ingest.counters.snapshot().plain["store_commits"] == 1
    assert ingest.view(CAC).backlog == 3  # type: ignore[union-attr]


def test_empty_usage_asks_for_the_watermark(ingest: Ingest) -> None:
    ingest.handle(topic(Kind.USAGE), usage(session(1)), NOW)
    assert acks(ingest.handle(topic(Kind.USAGE), usage(), NOW)) == [1]


def test_foreign_records_are_refused_whole(ingest: Ingest) -> None:
    payload = usage(session(1), session(2, OTHER))
    assert ingest.handle(topic(Kind.USAGE), payload, NOW) == []
    assert ingest.store.count_records() == 0
    assert ingest.counters.snapshot().rejected["foreign"] == 1
    assert ingest.view(CAC) is None


def test_bad_seq_and_oversized_batch(ingest: Ingest) -> None:
    assert ingest.handle(topic(Kind.USAGE), usage(session(0)), NOW) == []
    assert ingest.counters.snapshot().rejected["invalid"] == 1
    big = usage(*[session(i) for i in range(1, MAX_BATCH + 2)])
    assert ingest.handle(topic(Kind.USAGE), big, NOW) == []
    assert ingest.counters.snapshot().rejected["oversized"] == 1
    assert ingest.store.count_records() == 0


def test_status_health_and_flush(ingest: Ingest) -> None:
    ingest.handle(topic(Kind.STATUS), status(), NOW)
    ingest.handle(topic(Kind.HEALTH), health(backlog=5), NOW + 1)
    view = ingest.view(CAC)
    assert view is not None and view.online and view.backlog == 5
    assert view.boot_id == "boot-1" and view.version == "0.1.0"
    assert ingest.flush() == 1
    assert ingest.flush() == 0
    [row] = ingest.store.load_cacs()
    assert row.health == health_msg(backlog=5) and row.last_seen == NOW + 1
    ingest.handle(topic(Kind.STATUS), status("offline"), NOW + 2)
    assert not ingest.view(CAC).online  # type: ignore[union-attr]
    assert ingest.evaluate(NOW + 1000) == []


def test_conflicting_records_are_counted_and_logged_once(
        ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hub.ingest")
    ingest.handle(topic(Kind.USAGE), usage(session(1)), NOW)
    for seq in (2, 3):  # the id of record 1 again, under another seq
        out = ingest.handle(topic(Kind.USAGE), usage(session(seq, id_=session(1).id)), NOW)
        assert acks(out) == [1]
    assert ingest.counters.snapshot().plain["records_conflict"] == 2
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"conflicting usage records from {CAC}")


def test_store_failure_acks_nothing(ingest: Ingest) -> None:
    ingest.store.close()
    with pytest.raises(StoreError):
        ingest.handle(topic(Kind.USAGE), usage(session(1)), NOW)
    assert ingest.counters.snapshot().plain["store_errors"] == 1


def test_refusals_are_logged_once_per_reason_and_cac(
        ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hub.ingest")
    for _ in range(50):
        ingest.handle(topic(Kind.HEALTH), b"{not json", NOW)
        ingest.handle(topic(Kind.HEALTH, OTHER), b"{not json", NOW)
        ingest.handle(topic(Kind.HEALTH), b'{"v": 2}', NOW)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert sum("malformed" in line for line in lines) == 2
    assert sum("wrong_version" in line for line in lines) == 1
    snap = ingest.counters.snapshot()
    assert snap.rejected["malformed"] == 100 and snap.rejected["wrong_version"] == 50


# ---------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["v", "records", "state", "seq", "id", "cac_id", "at",
                                       "type", "boot_id", "version", "x"]) | st.text(max_size=8),
                      children, max_size=6),
    max_leaves=30,
)


def _mutants() -> st.SearchStrategy[bytes]:
    """Valid messages with one thing wrong: a version, a type, a missing field, a cac_id."""
    valid = [
        json.loads(usage(session(1))), json.loads(status()), json.loads(health()),
    ]

    def mutate(base: dict, how: str, key: str, value: object) -> bytes:  # type: ignore[type-arg]
        obj = json.loads(json.dumps(base))
        target = obj["records"][0] if "records" in obj and key in obj["records"][0] else obj
        if how == "drop":
            target.pop(key, None)
        elif how == "version":
            obj["v"] = value
        else:
            target[key] = value
        return json.dumps(obj).encode()

    return st.builds(
        mutate,
        st.sampled_from(valid),
        st.sampled_from(["drop", "set", "version"]),
        st.sampled_from(["v", "seq", "state", "boot_id", "records", "fee", "uptime_s", "id"]),
        st.sampled_from([None, "1", -1, 0, 2, 10**30, [], {}, "x" * 3]),
    )


payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    _mutants(),
    st.just(b"{" + b" " * (MAX_PAYLOAD_BYTES + 1) + b"}"),
    st.just(b'{"v": 1, "records": [' + b"1," * 150_000 + b"1]}"),
    st.sampled_from([b"", b"null", b"[]", b'{"v":1}', b"\xff\xfe", b'{"v":1,"records":{}}']),
)

topics = st.one_of(
    st.sampled_from([topic(k) for k in (Kind.USAGE, Kind.STATUS, Kind.HEALTH, Kind.CMD_ACK)]),
    st.sampled_from([
        "", "cac/v1", "cac/v1/", f"cac/v1/{CAC}", f"cac/v1/{CAC}/nope", f"cac/v2/{CAC}/usage",
        f"cac/v1/{CAC}/ack", f"cac/v1/{CAC}/cmd", "cac/v1/BAD_ID/usage", "cac/v1/ab/usage",
        hub_status_topic("hub-oriental"), "$SYS/broker/uptime", "cac/v1/+/usage",
        f"cac/v1/{CAC}/usage/extra",
    ]),
    st.text(max_size=40),
)


_CLASSES: dict[Kind, type[Usage | Status | Health | CommandAck]] = {
    Kind.USAGE: Usage, Kind.STATUS: Status, Kind.HEALTH: Health, Kind.CMD_ACK: CommandAck}


def _is_valid(t: str, p: bytes) -> bool:
    """The wire contract as oracle: a generated message that happens to be valid is kept out."""
    try:
        parsed = parse_cac_topic(t)
        msg: object = decode(p, _CLASSES[parsed.kind])
    except (TopicError, WireError, KeyError):
        return False
    if isinstance(msg, Usage):
        return len(msg.records) <= MAX_BATCH and all(
            r.cac_id == parsed.cac_id and r.seq >= 1 and r.id for r in msg.records)
    return True


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store for every example: each must leave it empty anyway."""
    store = Store(tmp_path_factory.mktemp("fuzz") / "hub.sqlite3")
    yield store
    store.close()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.data_too_large])
@given(st.lists(st.tuples(topics, payloads), min_size=1, max_size=6))
def test_fuzz_garbage_changes_nothing(fuzz_store: Store,
                                      messages: list[tuple[str, bytes]]) -> None:
    ingest = Ingest(fuzz_store, FleetState(90, NOW))
    msgs = [Incoming(t, p) for t, p in messages if not _is_valid(t, p)]
    assume(msgs)
    out = ingest.handle_batch(msgs, NOW)  # never raises
    assert out == []
    assert fuzz_store.count_records() == 0
    assert fuzz_store.load_cacs() == []
    assert ingest.views() == []
    assert ingest.flush() == 0
    snap = ingest.counters.snapshot()
    assert snap.rejected_total == len(msgs)  # every one refused and counted
    assert snap.plain["records_stored"] == 0


def test_hub_ignores_its_own_ack_payloads(ingest: Ingest) -> None:
    out = ingest.handle(topic(Kind.ACK), encode(Ack(seq=5)), NOW)
    assert out == [] and ingest.counters.snapshot().rejected["topic"] == 1
