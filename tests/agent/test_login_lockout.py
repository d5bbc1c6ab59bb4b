"""Login lockout through the real JSON API with a fake clock (issue 23): 5 failures of one
name within 15 minutes lock that name for 15 minutes, 20 failures from one address lock the
address, failures older than the window are forgotten, and nobody else is locked out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import PASSWORD, Agent, start_agent

from agent.errors import DomainError

OTHER_PASSWORD = "another-long-pass"
MINUTE = 60


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client):
        a.service.operators.put("bilal", "operator", OTHER_PASSWORD, a.clock.now())
        yield a


async def login(agent: Agent, name: str, password: str) -> tuple[int, Any]:
    return await agent.req("POST", "/login", json={"name": name, "password": password})


async def fail(agent: Agent, name: str, times: int) -> None:
    for _ in range(times):
        status, body = await login(agent, name, "wrong-password")
        assert status == 401 and body["error"] == "bad_credentials"


async def test_five_failures_lock_the_name_and_not_another_operator(agent: Agent) -> None:
    await fail(agent, "amina", 5)
    status, body = await login(agent, "amina", PASSWORD)  # even the right password
    assert status == 429 and body["error"] == "locked_out"
    status, _ = await login(agent, "bilal", OTHER_PASSWORD)
    assert status == 200  # asserted, not only said: another operator still logs in
    agent.clock.advance(15 * MINUTE - 1)
    assert (await login(agent, "amina", PASSWORD))[0] == 429
    agent.clock.advance(1)
    assert (await login(agent, "amina", PASSWORD))[0] == 200


async def test_four_failures_do_not_lock(agent: Agent) -> None:
    await fail(agent, "amina", 4)
    assert (await login(agent, "amina", PASSWORD))[0] == 200


async def test_failures_older_than_the_window_are_forgotten(agent: Agent) -> None:
    await fail(agent, "amina", 4)
    agent.clock.advance(15 * MINUTE + 1)  # the first four fall out of the 15-minute window
    await fail(agent, "amina", 4)
    assert (await login(agent, "amina", PASSWORD))[0] == 200
    # but five inside one window lock, wherever the window starts
    await fail(agent, "amina", 4)
    agent.clock.advance(14 * MINUTE)
    await fail(agent, "amina", 1)
    assert (await login(agent, "amina", PASSWORD))[0] == 429


async def test_twenty_failures_from_one_address_lock_the_address(agent: Agent) -> None:
    # four failures each for five made-up names: no name reaches 5, the address reaches 20
    for i in range(5):
        await fail(agent, f"guess{i}", 4)
    status, body = await login(agent, "bilal", OTHER_PASSWORD)
    assert status == 429 and body["error"] == "locked_out"
    agent.clock.advance(15 * MINUTE)
    assert (await login(agent, "bilal", OTHER_PASSWORD))[0] == 200


async def test_nineteen_failures_from_one_address_do_not(agent: Agent) -> None:
    for i in range(4):
        await fail(agent, f"guess{i}", 4)
    await fail(agent, "guess9", 3)
    assert (await login(agent, "bilal", OTHER_PASSWORD))[0] == 200


async def test_another_address_cannot_lock_an_operator_out(agent: Agent) -> None:
    """Issue 16: five wrong tries for `amina` from somewhere on the LAN locked the real
    amina out for 15 minutes. Lockouts are keyed by (name, address) now."""
    accounts = agent.service.accounts
    for _ in range(5):
        with pytest.raises(DomainError) as err:
            accounts.login_from("amina", "wrong-password", "192.0.2.66")
        assert err.value.code == "bad_credentials"
    with pytest.raises(DomainError) as err:  # the attacker's address is locked ...
        accounts.login_from("amina", PASSWORD, "192.0.2.66")
    assert err.value.code == "locked_out"
    assert accounts.login_from("amina", PASSWORD, "192.0.2.10")["name"] == "amina"  # ... not her
    # and one address trying many names is still stopped (20 failures, whatever the names)
    for i in range(15):
        with pytest.raises(DomainError):
            accounts.login_from(f"name{i}", "wrong-password", "192.0.2.66")
    with pytest.raises(DomainError) as err:
        accounts.login_from("bilal", OTHER_PASSWORD, "192.0.2.66")
    assert err.value.code == "locked_out"
