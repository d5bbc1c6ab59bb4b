"""hub/metrics.py: counters and the Prometheus text format."""

from __future__ import annotations

import threading

import pytest

from hub.fleet import FleetState
from hub.metrics import Counters, Metric, collect, render
from tests.hub.factories import CAC, OTHER, health_msg


def test_render_text_format() -> None:
    text = render([
        Metric("things_total", "counter", "things seen", [({"kind": 'a"b\\c\nd'}, 3)]),
        Metric("temp", "gauge", "a gauge", [({}, 1.5), ({"x": "y"}, float("nan"))]),
    ])
    assert text == (
        "# HELP cac_hub_things_total things seen\n"
        "# TYPE cac_hub_things_total counter\n"
        'cac_hub_things_total{kind="a\\"b\\\\c\\nd"} 3\n'
        "# HELP cac_hub_temp a gauge\n"
        "# TYPE cac_hub_temp gauge\n"
        "cac_hub_temp 1.5\n"
        'cac_hub_temp{x="y"} NaN\n'
    )


def test_collect_counts_and_fleet() -> None:
    c = Counters()
    c.message("usage")
    c.reject("malformed")
    c.add("records_stored", 5)
    fleet = FleetState(90, 0.0)
    fleet.apply_health(CAC, health_msg(backlog=7), 1.0)
    fleet.touch(OTHER, 1.0)
    fleet.evaluate(1000.0)
    fleet.touch(OTHER, 1000.0)
    text = render(collect(c.snapshot(), fleet.snapshot(), {"queue": ("depth", 2)}))
    assert 'cac_hub_messages_total{kind="usage"} 1' in text
    assert 'cac_hub_messages_total{kind="health"} 0' in text
    assert 'cac_hub_rejected_total{reason="malformed"} 1' in text
    assert "cac_hub_records_stored_total 5" in text
    assert 'cac_hub_cacs{state="online"} 1' in text
    assert 'cac_hub_cacs{state="offline"} 1' in text
    assert f'cac_hub_cac_backlog{{cac_id="{CAC}"}} 7' in text
    assert f'cac_hub_cac_backlog{{cac_id="{OTHER}"}}' not in text  # no health, no backlog
    assert "cac_hub_queue 2" in text


def test_unknown_counter_is_a_bug() -> None:
    with pytest.raises(KeyError):
        Counters().add("no_such_counter")


def test_counters_from_two_threads() -> None:
    c = Counters()

    def work() -> None:
        for _ in range(10_000):
            c.message("usage")
            c.add("acks_sent")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = c.snapshot()
    assert snap.messages["usage"] == 40_000 and snap.plain["acks_sent"] == 40_000


def test_a_scrape_limited_by_name_skips_the_fleet() -> None:
    from hub.metrics import only, wants_fleet
    assert wants_fleet([]) and wants_fleet(["cac_hub_cac_online"])
    assert wants_fleet(["cac_hub_cacs"])
    assert not wants_fleet(["cac_hub_messages_total", "cac_hub_records_stored_total"])
    ms = [Metric("messages_total", "counter", "h", [({}, 1)]),
          Metric("cacs", "gauge", "h", [({}, 2)])]
    assert [m.name for m in only(ms, ["cac_hub_cacs"])] == ["cacs"]
    assert only(ms, []) == ms and only(ms, ["cac_hub_nothing"]) == []
