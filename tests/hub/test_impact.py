"""The impact report (hub/impact.py): aggregation from stored records, suppression of small
counts (hypothesis), the month range, and purge keeping the report unchanged."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.ledger import stamp
from hub import impact
from hub.config import ConfigError
from hub.store import Store, UsageStore
from tests.hub.factories import CAC, OTHER, TZ, hub_config, session
from wire.messages import (
    ContentUseRecord,
    Profile,
    Record,
    SaleRecord,
    SaleVoidRecord,
    SessionRecord,
    record_from_dict,
)

SOUSS = "ma-souss-agadir-003"


def visit(seq: int, cac: str = CAC, *, ended: str = "2024-05-01T08:20:00+00:00",
          voucher: str | None = None, secs: int = 1200, **profile: str | None
          ) -> SessionRecord:
    """A session as the agent closes it (factories.session), ended at ``ended``, with a
    voucher id and the visit profile given at the counter."""
    rec = session(seq, cac)
    given = {k: v for k, v in profile.items() if v is not None}
    return msgspec.structs.replace(
        rec, at=ended, ended_at=ended, started_at=ended, billed_seconds=secs,
        voucher_id=voucher, paid_by="voucher" if voucher else "cash",
        profile=Profile(**given) if given else msgspec.UNSET)


def seat_sale(seq: int, item: str, qty: int, cac: str = CAC,
              at: str = "2024-05-02T10:00:00+00:00") -> SaleRecord:
    rec = record_from_dict(stamp({
        "type": "sale", "id": f"{cac}-sale-{seq}", "at": at, "item": item,
        "quantity": qty, "unit_price": 0, "amount": 0, "currency": "MAD", "unit": "seat",
        "operator": "amina"}, seq, cac, TZ))
    assert isinstance(rec, SaleRecord)
    return rec


def sale_void(seq: int, ref: SaleRecord) -> SaleVoidRecord:
    rec = record_from_dict(stamp({
        "type": "sale_void", "id": f"{ref.cac_id}-sv-{seq}", "at": ref.at, "ref": ref.id,
        "item": ref.item, "quantity": ref.quantity, "amount": 0, "currency": "MAD",
        "reason": "absent", "cash": True, "operator": "manager"}, seq, ref.cac_id, TZ))
    assert isinstance(rec, SaleVoidRecord)
    return rec


def content(seq: int, day: str, opens: dict[str, int], cac: str = CAC) -> ContentUseRecord:
    rec = record_from_dict(stamp({
        "type": "content_use", "id": f"{cac}-cu-{seq}", "at": f"{day}T21:00:00+00:00",
        "day": day, "opens": opens, "pages": {}}, seq, cac, TZ))
    assert isinstance(rec, ContentUseRecord)
    return rec


def put(store: UsageStore, *records: Record) -> None:
    by_cac: dict[str, list[Record]] = {}
    for r in records:
        by_cac.setdefault(r.cac_id, []).append(r)
    for cac, recs in by_cac.items():
        store.store_usage(cac, recs, 0.0)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(tmp_path / "hub.sqlite3")
    yield s
    s.close()


def fleet(store: UsageStore) -> None:
    """May 2024: CAC has 12 visits (3 vouchers used twice, 6 cash), OTHER (same region)
    6, SOUSS 2; seats; content; a June visit; and an April-local session that ended at
    23:30 UTC on 30 April (00:30 in Casablanca on 1 May: May)."""
    recs: list[Record] = []
    seq = itertools.count(1)
    for i in range(12):
        recs.append(visit(next(seq), voucher=f"v{i % 3}" if i < 6 else None,
                          purpose="egov" if i < 8 else "job",
                          gender="f" if i < 7 else "m", age_band="18-24"))
    recs.append(visit(next(seq), ended="2024-04-30T23:30:00+00:00"))  # May, local
    sale = seat_sale(next(seq), "word-basics", 6)
    recs += [sale, seat_sale(next(seq), "excel", 2), sale_void(next(seq), sale)]
    recs += [seat_sale(next(seq), "word-basics", 7)]
    recs += [content(next(seq), "2024-05-03", {"wikipedia-fr": 40, "khan": 3}),
             content(next(seq), "2024-05-03", {"wikipedia-fr": 2}),
             content(next(seq), "2024-06-01", {"khan": 9})]
    recs.append(visit(next(seq), ended="2024-06-10T10:00:00+00:00", gender="f"))
    seq2 = itertools.count(1)
    recs += [visit(next(seq2), OTHER, gender="f", purpose="school") for _ in range(6)]
    recs += [visit(1, SOUSS, gender="f"), visit(2, SOUSS, gender="m")]
    put(store, *recs)


def test_the_report_counts_visits_kinds_profiles_seats_and_content(store: Store) -> None:
    fleet(store)
    rep = impact.report(store.db, "2024-05", "2024-06", "cac", 5)
    rows = {(r["month"], r["cac"]): r for r in rep["rows"]}
    may = rows[("2024-05", CAC)]
    assert may["visits"] == 13 and may["hours"] == round(13 * 1200 / 3600, 1)
    # 3 vouchers seen twice: 3 first, 3 returning, 7 cash visits; with 7 shown the two
    # "<5" would add up to 6, so each is at least 2: the 7 is hidden as well
    assert may["visit_kind"] == {"first": "<5", "returning": "<5", "unlinked": "x"}
    raw = impact.raw_counts(store.db)[(CAC, "2024-05")]
    assert raw.visit_kind == {"first": 3, "returning": 3, "unlinked": 7}
    # egov 8, job 4 ("<5"), not given 1 ("<5"): the hidden mass 5 pins nothing
    assert may["purpose"]["egov"] == 8 and may["purpose"]["job"] == "<5"
    assert may["purpose"][impact.NOT_GIVEN] == "<5"
    # f 7, m 5, not given 1: the "<5" would be 13 - 12 = 1; hiding m (at least 5) still
    # leaves it at most 1, hiding f too at most 3: the breakdown is withheld
    assert may["gender"] == {} and may["withheld"] == ["gender"]
    # word-basics: 6 sold, 6 voided, 7 sold = 7; excel 2 -> "<5"
    assert may["seats"] == {"word-basics": 7, "excel": "<5"}
    assert may["content"] == [{"package": "wikipedia-fr", "opens": 42},
                              {"package": "khan", "opens": "<5"}]
    june = rows[("2024-06", CAC)]
    assert june["visits"] == "<5" and june["hours"] == "x" and june["gender"] == {}
    assert june["content"] == [{"package": "khan", "opens": 9}]
    assert rows[("2024-05", OTHER)]["gender"] == {"f": 6}
    assert rows[("2024-05", SOUSS)]["visits"] == "<5"


def test_by_region_sums_the_cacs_of_a_region(store: Store) -> None:
    fleet(store)
    rep = impact.report(store.db, "2024-05", "2024-05", "region", 5)
    rows = {r["region"]: r for r in rep["rows"]}
    assert rows["oriental"]["visits"] == 19 and rows["oriental"]["cacs"] == 2
    # f 13, m 5, not given 1: hiding m (>= 5) would leave the "<5" at most 1; hiding f
    # (>= 5) leaves it anywhere in 1..4
    assert rows["oriental"]["gender"] == {"m": 5, "f": "x", impact.NOT_GIVEN: "<5"}
    assert rows["oriental"]["purpose"] == {"egov": 8, "school": 6, "job": "<5",
                                           impact.NOT_GIVEN: "<5"}
    assert rows["souss"]["visits"] == "<5"
    text = impact.to_csv(rep)
    assert text.splitlines()[0] == "month,region,measure,key,value"
    assert "2024-05,oriental,gender,m,5" in text.splitlines()
    assert "2024-05,souss,visits,,<5" in text.splitlines()


@pytest.mark.parametrize(("query", "bad"), [
    ({"from": "2024-06", "to": "2024-05"}, "from"),
    ({"from": "2021-01", "to": "2024-01"}, "to"),  # 37 months
    ({"from": "2024-13", "to": "2024-12"}, "from"),
    ({"from": "2024-01", "to": "24-02"}, "to"),
    ({"from": "2024-01", "to": "2024-02", "by": "station"}, "by"),
])
def test_bad_arguments_name_the_field(query: dict[str, str], bad: str) -> None:
    with pytest.raises(impact.ImpactError) as err:
        impact.parse_args(query)
    assert err.value.field == bad


def test_36_months_are_allowed() -> None:
    assert impact.parse_args({"from": "2021-01", "to": "2023-12", "by": "region"}) == (
        "2021-01", "2023-12", "region")


def test_min_cell_is_a_hub_setting(tmp_path: Path) -> None:
    assert hub_config(str(tmp_path)).reports.min_cell == 5
    assert hub_config(str(tmp_path), reports={"min_cell": 10}).reports.min_cell == 10
    for bad in (1, 0, "5", 1001):
        with pytest.raises(ConfigError, match="reports.min_cell"):
            hub_config(str(tmp_path), reports={"min_cell": bad})
    with pytest.raises(ConfigError, match="reports"):
        hub_config(str(tmp_path), reports={"min_size": 5})


def test_purge_keeps_the_report_and_deletes_the_records(store: Store) -> None:
    fleet(store)
    before = {by: impact.report(store.db, "2024-04", "2024-06", by, 5) for by in impact.BY}
    total = store.count_records()
    with store.transaction():
        deleted, months = impact.purge(store.db, "2024-06")
    # every May record went (the 30 April 23:30Z session is May in Casablanca), June stays
    assert deleted == total - 2 and months == 3
    assert store.count_records() == 2
    for by in impact.BY:
        assert impact.report(store.db, "2024-04", "2024-06", by, 5) == before[by]
    # a second purge of the same months changes nothing; purging June too keeps it all
    with store.transaction():
        assert impact.purge(store.db, "2024-06") == (0, 0)
        impact.purge(store.db, "2024-07")
    assert store.count_records() == 0
    assert impact.report(store.db, "2024-04", "2024-06", "cac", 5) == before["cac"]


# ---------------------------------------------------------------- suppression, pure

MARK = st.integers(2, 8)


def _possible(cells: dict[str, impact.Cell], total: int, m: int) -> dict[str, set[int]]:
    """Brute force: every value each hidden cell can take, given what is published (a
    "<m" cell is 1..m-1, an "x" cell m..total, zeros are left out, the cells add up to
    ``total``)."""
    hidden = [k for k, v in cells.items() if isinstance(v, str)]
    rest = total - sum(v for v in cells.values() if isinstance(v, int))
    ranges = [range(1, m) if cells[k] == f"<{m}" else range(m, total + 1) for k in hidden]
    out: dict[str, set[int]] = {k: set() for k in hidden}
    for combo in itertools.product(*ranges):
        if sum(combo) == rest:
            for k, v in zip(hidden, combo, strict=True):
                out[k].add(v)
    return out


@settings(max_examples=400, deadline=None)
@given(m=MARK, cells=st.dictionaries(st.sampled_from("abcde"), st.integers(0, 25),
                                     max_size=5))
def test_protect_never_shows_a_small_count_and_never_lets_one_be_recovered(
        m: int, cells: dict[str, int]) -> None:
    total = sum(cells.values())
    out = impact.protect(total, cells, m)
    if out is None:  # withheld: nothing of it is published
        return
    assert set(out) == {k for k, v in cells.items() if v > 0}
    for k, v in out.items():
        if isinstance(v, int):
            assert v >= m and v == cells[k]
        elif v == f"<{m}":
            assert 0 < cells[k] < m
        else:
            assert v == impact.HIDDEN and cells[k] >= m
    # totals consistent, and no "<m" cell narrowed by subtraction from the total
    assert sum(v for v in out.values() if isinstance(v, int)) <= total
    for k, values in _possible(out, total, m).items():
        assert cells[k] in values
        if out[k] == f"<{m}":
            assert values == set(range(1, m)), (out, total, k)


profiles = st.fixed_dictionaries({}, optional={
    "purpose": st.sampled_from(["egov", "job", "school"]),
    "gender": st.sampled_from(["f", "m", "x"]),
    "age_band": st.sampled_from(["<18", "18-24", "55+"])})
visits_st = st.lists(st.tuples(st.sampled_from([CAC, OTHER, SOUSS]),
                               st.sampled_from(["2024-05-10T10:00:00+00:00",
                                                "2024-06-10T10:00:00+00:00"]),
                               st.sampled_from([None, "v1", "v2", "v3"]), profiles),
                     max_size=60)


def _numbers(row: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    yield "visits", row["visits"]
    for name in (*impact.BREAKDOWNS, "seats"):
        for k, v in row[name].items():
            yield f"{name}.{k}", v
    for item in row["content"]:
        yield f"content.{item['package']}", item["opens"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(m=MARK, visits=visits_st, by=st.sampled_from(impact.BY))
def test_no_published_count_is_under_min_cell_and_totals_agree(
        tmp_path_factory: pytest.TempPathFactory, m: int,
        visits: list[tuple[str, str, str | None, dict[str, str]]], by: str) -> None:
    with Store(tmp_path_factory.mktemp("imp") / "hub.sqlite3") as store:
        seqs: Counter[str] = Counter()
        recs = []
        for cac, ended, voucher, prof in visits:
            seqs[cac] += 1
            recs.append(visit(seqs[cac], cac, ended=ended, voucher=voucher,
                              purpose=prof.get("purpose"), gender=prof.get("gender"),
                              age_band=prof.get("age_band")))
        put(store, *recs)
        rep = impact.report(store.db, "2024-05", "2024-06", by, m)
        raw = impact.group_counts(impact.raw_counts(store.db), by)
    assert sum(raw[(r["month"], r[by])].visits for r in rep["rows"]) == len(visits)
    for row in rep["rows"]:
        truth = raw[(row["month"], row[by])]
        for name, value in _numbers(row):
            assert not (isinstance(value, int) and value < m), (name, value)
        if isinstance(row["visits"], int):
            assert row["visits"] == truth.visits
            for name in impact.BREAKDOWNS:
                cells = row[name]
                shown = [v for v in cells.values() if isinstance(v, int)]
                assert sum(shown) <= truth.visits
                if all(isinstance(v, int) for v in cells.values()) and name not in \
                        row["withheld"]:
                    assert sum(shown) == truth.visits
        else:
            assert 0 < truth.visits < m and row["withheld"] == list(impact.BREAKDOWNS)


def test_cac_hub_purge_as_an_operator_runs_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.hub.factories import hub_config_dict

    data = tmp_path / "hub"
    cfg = hub_config(str(data))
    toml = tmp_path / "hub.toml"
    raw = hub_config_dict(str(data))
    toml.write_text(f'hub_id = "{raw["hub_id"]}"\ndata_dir = "{data}"\n'
                    "offline_after_seconds = 90\n[mqtt]\nhost = \"127.0.0.1\"\nport = 1883\n"
                    "[http]\nhost = \"127.0.0.1\"\nport = 0\n")
    with Store(cfg.db_path) as s:
        fleet(s)
        before = impact.report(s.db, "2024-04", "2024-06", "region", 5)
        total = s.count_records()

    def purge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub.cli", "purge", "--config",
                               str(toml), *args], capture_output=True, text=True,
                              timeout=60, check=False)

    for bad in ("2024-13", "2024/06", "2999-01"):
        r = purge("--before", bad)
        assert r.returncode == 2 and "before" in r.stderr, r.stderr
    with Store(cfg.db_path) as s:
        assert s.count_records() == total  # nothing changed
    r = purge("--before", "2024-06")
    assert r.returncode == 0, r.stderr
    assert f"{total - 2} record(s)" in r.stdout
    with Store(cfg.db_path) as s:
        assert s.count_records() == 2
        assert impact.report(s.db, "2024-04", "2024-06", "region", 5) == before
