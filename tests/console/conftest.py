"""Console fixtures: the served agent and one Chromium per module (Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from console.console_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ServedAgent


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedAgent]:
    agent = ServedAgent(tmp_path_factory.mktemp("console-agent"))
    yield agent
    agent.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        yield b
        b.close()
    print(f"\nconsole screenshots: {ARTIFACTS}")
