"""hub/fleet.py: online/offline from status and silence, with an injected clock (pure)."""

from __future__ import annotations

import pytest

from hub.fleet import CacRecord, FleetState, Transition
from tests.hub.factories import CAC, OTHER, health_msg
from wire.messages import Status

T0 = 1_700_000_000.0
AFTER = 90


def status(state: str = "online", boot_id: str = "boot-1") -> Status:
    return Status(state=state, boot_id=boot_id, version="0.1.0", at="x")  # type: ignore[arg-type]


@pytest.fixture
def fleet() -> FleetState:
    return FleetState(AFTER, started_at=T0)


def test_online_then_silent_goes_offline_without_a_last_will(fleet: FleetState) -> None:
    assert fleet.apply_status(CAC, status(), T0 + 1) == Transition(CAC, True, "status")
    assert fleet.apply_health(CAC, health_msg(), T0 + 30) is None
    assert fleet.evaluate(T0 + 30 + AFTER - 0.5) == []
    assert fleet.get(CAC).online  # type: ignore[union-attr]
    assert fleet.evaluate(T0 + 30 + AFTER) == [Transition(CAC, False, "silent")]
    view = fleet.get(CAC)
    assert view is not None and not view.online
    assert view.state == "online"  # its last word was online: it just went quiet
    assert view.last_seen == T0 + 30
    assert fleet.evaluate(T0 + 1000) == []  # reported once
    # heard again: back online
    assert fleet.apply_health(CAC, health_msg(), T0 + 1001) == Transition(CAC, True, "heard")


def test_explicit_offline_status(fleet: FleetState) -> None:
    fleet.apply_status(CAC, status(), T0)
    assert fleet.apply_status(CAC, status("offline"), T0 + 5) == Transition(CAC, False, "status")
    assert fleet.counts() == (0, 1)
    # health after an offline status does not override it; the next birth does
    assert fleet.apply_health(CAC, health_msg(), T0 + 6) is None
    assert not fleet.get(CAC).online  # type: ignore[union-attr]
    assert fleet.apply_status(CAC, status(boot_id="boot-2"), T0 + 7) == \
        Transition(CAC, True, "status")
    assert fleet.get(CAC).boot_id == "boot-2"  # type: ignore[union-attr]


def test_health_and_usage_alone_mean_online(fleet: FleetState) -> None:
    assert fleet.apply_health(OTHER, health_msg(backlog=7), T0) == \
        Transition(OTHER, True, "heard")
    assert fleet.touch(CAC, T0) == Transition(CAC, True, "heard")
    other = fleet.get(OTHER)
    assert other is not None
    assert other.backlog == 7 and other.state is None and other.version == "0.1.0"
    assert [s.id for s in other.stations] == ["s1"]
    assert fleet.get(CAC).backlog is None  # type: ignore[union-attr]
    assert [v.cac_id for v in fleet.snapshot()] == sorted([CAC, OTHER])


def test_retained_status_is_no_proof_of_life(fleet: FleetState) -> None:
    # a hub restart: the broker re-delivers the retained "online" of a CAC heard long ago
    fleet.restore([CacRecord(CAC, first_seen=T0 - 10_000, last_seen=T0 - 5_000)])
    assert fleet.apply_status(CAC, status(), T0 + 1, retained=True) == \
        Transition(CAC, True, "status")  # within the restart grace
    assert fleet.get(CAC).last_seen == T0 - 5_000  # type: ignore[union-attr]
    # silence counts from the restart, not from before it
    assert fleet.evaluate(T0 + AFTER - 1) == []
    assert fleet.evaluate(T0 + AFTER) == [Transition(CAC, False, "silent")]


def test_restore_rebuilds_state(fleet: FleetState) -> None:
    rows = [
        CacRecord(CAC, first_seen=T0 - 100, last_seen=T0 - 10, status=status(),
                  health=health_msg(backlog=3), health_seen=T0 - 10),
        CacRecord(OTHER, first_seen=T0 - 100, last_seen=T0 - 50, status=status("offline")),
    ]
    fleet.restore(rows)
    cac, other = fleet.get(CAC), fleet.get(OTHER)
    assert cac is not None and other is not None
    assert cac.online and cac.backlog == 3 and cac.boot_id == "boot-1"
    assert not other.online and other.state == "offline"
    assert len(fleet) == 2 and CAC in fleet


def test_dirty_rows_for_the_store(fleet: FleetState) -> None:
    fleet.apply_status(CAC, status(), T0)
    fleet.apply_health(CAC, health_msg(), T0 + 1)
    fleet.touch(OTHER, T0 + 2)
    rows = fleet.take_dirty()
    assert [r.cac_id for r in rows] == sorted([CAC, OTHER])
    cac_row = next(r for r in rows if r.cac_id == CAC)
    assert cac_row.status == status() and cac_row.health_seen == T0 + 1
    assert cac_row.first_seen == T0 and cac_row.last_seen == T0 + 1
    assert fleet.take_dirty() == []
    fleet.evaluate(T0 + 10_000)  # silence alone writes nothing
    assert fleet.take_dirty() == []


def test_merge_from_another_worker(fleet: FleetState) -> None:
    fleet.apply_status(CAC, status(), T0)
    fleet.evaluate(T0 + AFTER)  # this worker heard nothing since
    assert not fleet.get(CAC).online  # type: ignore[union-attr]
    row = CacRecord(CAC, first_seen=T0, last_seen=T0 + AFTER - 1,
                    health=health_msg(backlog=2), health_seen=T0 + AFTER - 1)
    assert fleet.merge(row, T0 + AFTER) == Transition(CAC, True, "heard")
    assert fleet.get(CAC).backlog == 2  # type: ignore[union-attr]
    assert fleet.merge(CacRecord("new-cac", first_seen=T0), T0) is None  # not heard: offline


def test_offline_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FleetState(0, T0)


def test_fleet_row_shows_the_uplink_of_each_cac(fleet: FleetState) -> None:
    """The fleet view's Uplink column (hub/model.py row), from the agent's health."""
    from hub.model import row
    from wire.messages import Uplink

    cases = ((None, None), (Uplink(up=True, hub=True), "hub link only"),
             (Uplink(up=False, hub=True, internet=False), "internet down"),
             (Uplink(up=True, hub=True, internet=True, last_outage_s=600.0), "internet up"))
    for uplink, label in cases:
        h = health_msg()
        h.uplink = uplink
        fleet.apply_health(CAC, h, T0 + 30)
        r = row(fleet.get(CAC), T0 + 31, 0, 0)  # type: ignore[arg-type]
        assert r["uplink"] == label
        assert r["uplink_outage_s"] == (uplink.last_outage_s if uplink else None)
