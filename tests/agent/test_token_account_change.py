"""Issue 16: a demoted or re-passworded operator kept a valid token for up to 12 h (proven
with `cac-agent add-operator` on a logged-in manager). The token now ends at the next
request after the account changed, also when another process changed it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import PASSWORD, Agent, config_dict, start_agent

from provisioning.configs import to_toml

BIN = Path(sys.executable).parent


@pytest.fixture
async def manager(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[tuple[Agent, Path]]:
    data = tmp_path / "data"
    toml = tmp_path / "agent.toml"
    toml.write_text(to_toml(config_dict(data)))
    async for a in start_agent(data, aiohttp_client, role="manager"):
        yield a, toml


def add_operator(toml: Path, name: str, role: str, password: str) -> None:
    subprocess.run([str(BIN / "cac-agent"), "add-operator", "--config", str(toml), "--name",
                    name, "--role", role, "--password-stdin"], input=password + "\n",
                   text=True, check=True, capture_output=True, timeout=60)


async def test_add_operator_from_the_cli_ends_a_logged_in_managers_token(
        manager: tuple[Agent, Path]) -> None:
    a, toml = manager
    assert (await a.op("GET", "/audit"))[0] == 200  # a manager's page
    add_operator(toml, "amina", "operator", "a-new-long-password")  # demoted, new password
    status, body = await a.op("GET", "/audit")
    assert status == 401 and body["error"] == "unauthorized", body
    status, body = await a.req("POST", "/login", json={"name": "amina",
                                                       "password": "a-new-long-password"})
    assert status == 200 and body["role"] == "operator"


async def test_an_unchanged_account_keeps_its_token(manager: tuple[Agent, Path]) -> None:
    a, toml = manager
    add_operator(toml, "someone-else", "operator", "another-long-pass")  # the file changes
    assert (await a.op("GET", "/audit"))[0] == 200
    assert PASSWORD
