"""Layering: nothing outside agent/ imports the agent, and the shared core imports no program.

Read from the source with ast (an import inside a function counts too). The one allowed
exception is images/cac_firstboot.py, which checks an agent.toml with the agent's own parser.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("agent", "hub", "kiosk", "provisioning")
ALLOWED = {("images/cac_firstboot.py", "agent")}


def imported_packages(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for line, package in imported_packages(path):
            if package in forbidden and (rel, package) not in ALLOWED:
                found.append(f"{rel}:{line} imports {package}")
    return found


@pytest.mark.parametrize("folder", ["hub", "kiosk", "provisioning", "wire", "common", "images"])
def test_nothing_outside_the_agent_imports_the_agent(folder: str) -> None:
    assert offenders(folder, ("agent",)) == []


def test_the_shared_core_and_the_contract_import_no_program() -> None:
    assert offenders("common", PROGRAMS) == []
    assert offenders("wire", PROGRAMS) == []


def test_the_check_sees_an_agent_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from agent.auth import hash_password\nimport agent\n")
    assert [p for _, p in imported_packages(probe)] == ["agent", "agent"]
