"""The hub's other tables (alarms, commands, audit, users, API tokens, health history) are
shared by every worker of one store (issue 19): on PostgreSQL through hub/pgaux.py, so two
workers on different machines (different data_dirs) see one alarm, one command and its
answer, one account, one token. The same checks run on SQLite, where workers on one machine
share data_dir."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from helpers import MosquittoBroker, free_port

from hub import alarms, commands, history, users
from hub.pgaux import PgAux
from hub.store import AdminStore, open_admin
from hub.tokens import TokenCache, add_token
from tests.hub.apitoken import add_token_cli, auth
from tests.hub.test_pg_hub import start_hub, wait_online, write_config
from wire.messages import CommandAck

Opener = Callable[[], AdminStore]
CAC = "ma-oriental-shared-001"


@pytest.fixture(params=["sqlite", "postgresql"])
def worker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the admin store as one more worker would: SQLite in one data_dir, or the
    PostgreSQL store of a real server (each opener its own pool)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    opened: list[AdminStore] = []

    def make() -> AdminStore:
        opened.append(open_admin(tmp_path / "hub.sqlite3", url))
        return opened[-1]
    yield make
    for s in opened:
        s.close()


def test_an_alarm_raised_by_one_worker_is_the_other_workers_alarm(worker: Opener) -> None:
    a, b = worker(), worker()
    with a.transaction():
        [new] = alarms.save(a.db, [alarms.Condition(CAC, "offline", "CAC offline")], [],
                            1000.0)
    # the next lease holder loads the same active alarm: it will not raise it again
    assert alarms.load_active(b.db) == [new]
    cleared = alarms.Alarm(new.id, CAC, "offline", "CAC offline", 1000.0, cleared_at=1060.0)
    with b.transaction():
        alarms.save(b.db, [], [cleared], 1060.0)
    assert alarms.load_active(a.db) == []
    assert alarms.acknowledge(a.db, new.id, "tech", 1070.0)
    assert not alarms.acknowledge(b.db, new.id, "tech2", 1071.0)  # once
    [row] = alarms.listing(b.db, cac_id=CAC)
    assert (row.cleared_at, row.acked_by) == (1060.0, "tech")


def test_a_command_from_one_worker_is_answered_on_every_worker(worker: Opener) -> None:
    a, b = worker(), worker()
    with a.transaction():
        cmd = commands.create(a.db, CAC, "lock_station", {}, "s1", "tech", 2000.0)
    assert [c.id for c in commands.pending(b.db, CAC)] == [cmd.id]
    with b.transaction():
        commands.mark_sent(b.db, cmd.id, 2001.0)
        assert commands.record_ack(b.db, CAC, CommandAck(id=cmd.id, status="done"), 2002.0)
    got = commands.get(a.db, cmd.id)
    assert got is not None and (got.status, got.sends) == ("done", 1)
    assert commands.pending(a.db, CAC) == []
    with a.transaction():
        assert commands.expire(a.db, 9999.0, 60.0) == 0  # answered: nothing to expire
    trail = commands.audit_trail(b.db)
    assert [t["action"] for t in trail] == ["command.lock_station"]


def test_accounts_and_tokens_made_once_work_on_every_worker(worker: Opener,
                                                            tmp_path: Path) -> None:
    a, b = worker(), worker()
    with a.transaction():
        users.add_user(a.db, "amina", "technician", "long-enough-pass-1", 3000.0)
        token = add_token(a.db, "probe", "viewer", 3000.0)
    found = users.lookup(b.db, "amina")
    assert found is not None and found[0] == "technician"
    with b.transaction():
        users.ensure_language_column(b.db)
        assert users.set_language(b.db, "amina", "ar")
    assert users.language(a.db, "amina") == "ar"  # the choice follows the account
    shared = b if isinstance(b, PgAux) else None  # SQLite: the cache reads the file
    cache = TokenCache(tmp_path / "hub.sqlite3", shared)
    assert asyncio.run(cache.lookup(token)) == ("probe", "viewer")


def test_health_history_merges_the_same_way_on_both_engines(worker: Opener) -> None:
    """Three minutes of one hour (cpu 10, 50, 30), written in two flushes: the hour row is
    n 3, min 10, max 50, avg 30 on both engines (SQLite MIN/MAX, PostgreSQL LEAST/GREATEST);
    a minute written again (a restart) replaces its row."""
    a = worker()
    t0 = 3_600_000  # an hour's start
    buf = history.HistoryBuffer()
    for i, cpu in enumerate((10.0, 50.0, 30.0)):
        buf.add(CAC, t0 + 60 * i, (cpu, 20.0, 30.0, None, 0.0))
        with a.transaction():
            history.write(a.db, buf.take_closed(t0 + 60 * i + 61))
    [hour] = history.series(a.db, CAC, t0 - 1, hourly=True)
    assert (hour.n, hour.values["cpu"]) == (3, (10.0, 30.0, 50.0))
    minutes = history.series(a.db, CAC, t0 - 1, hourly=False)
    assert [p.values["cpu"][1] for p in minutes] == [10.0, 50.0, 30.0]
    again = history.Bucket.empty(CAC, t0)
    again.add((90.0, 20.0, 30.0, None, 0.0))
    with a.transaction():
        history.write(a.db, [again])
    minutes = history.series(a.db, CAC, t0 - 1, hourly=False)
    assert [p.values["cpu"][1] for p in minutes] == [90.0, 50.0, 30.0]


def test_two_workers_on_two_machines_share_tokens_and_accounts(
        tmp_path: Path, mosquitto: MosquittoBroker, pg_url: str) -> None:
    """As installed: worker w1 and w2 with their own data_dir (two machines) on one
    PostgreSQL; the token and the account made with w1's config work on w2."""
    cfgs, ports, procs = [], [], []
    try:
        for w in ("w1", "w2"):
            d = tmp_path / w
            d.mkdir()
            ports.append(free_port())
            cfgs.append(write_config(d / "hub.toml", pg_url, mosquitto.port, ports[-1],
                                     worker=f'worker_id = "{w}"\nshared_subscription = true\n'))
        token = add_token_cli(cfgs[0], "probe", "viewer")
        r = subprocess.run([sys.executable, "-m", "hub.cli", "add-user", "--config",
                            str(cfgs[0]), "--name", "amina", "--role", "technician",
                            "--password-stdin"], input="long-enough-pass-1\n", text=True,
                           capture_output=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        procs.append(start_hub(cfgs[1]))
        wait_online(mosquitto, "hub-pg-w2")
        req = urllib.request.Request(f"http://127.0.0.1:{ports[1]}/api/v1/cacs",
                                     headers=auth(token))
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            assert resp.status == 200 and isinstance(json.loads(resp.read()), list)
        form = urllib.parse.urlencode({"name": "amina", "password": "long-enough-pass-1",
                                       "next": "/"}).encode()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kw: object) -> None:
                return None
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as got:
            opener.open(f"http://127.0.0.1:{ports[1]}/login", data=form, timeout=10)
        with got.value as answer:
            assert answer.code == 303, answer.read()[:500]
            assert "Set-Cookie" in answer.headers
        assert not (tmp_path / "w2" / "data" / "hub.sqlite3").exists() or _no_users(
            tmp_path / "w2" / "data" / "hub.sqlite3")
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)


def _no_users(path: Path) -> bool:
    import sqlite3

    with closing(sqlite3.connect(path)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
        except sqlite3.OperationalError:
            return True

