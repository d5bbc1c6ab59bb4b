"""The hub's [alarms] and [dashboard] defaults are the numbers the README promises: read from
the README's own text, so neither the doc nor the code can change alone (issue 23)."""

from __future__ import annotations

import re
from pathlib import Path

from hub.config import parse_hub_config
from tests.hub.factories import hub_config_dict

README = Path(__file__).resolve().parents[2] / "README.md"

# hand-written too: a README edit that drops a key must fail here, not silently pass
PROMISED = {
    "alarms": {"offline_minutes": 10, "disk_percent": 90, "temperature_c": 85,
               "backlog_records": 500, "backlog_samples": 10, "clock_skew_seconds": 300,
               "content_stale_hours": 48},
    "dashboard": {"session_hours": 12, "login_failures": 5, "lockout_minutes": 15,
                  "command_timeout_seconds": 3600},
}


def readme_defaults(table: str) -> dict[str, int]:
    text = " ".join(README.read_text().split())
    m = re.search(rf"`\[{table}\]` \(([^)]*)\)", text)
    assert m, f"the README no longer lists the [{table}] defaults"
    return {k: int(v) for k, v in re.findall(r"`(\w+)` (\d+)", m.group(1))}


def test_the_readme_states_the_promised_defaults() -> None:
    for table, want in PROMISED.items():
        assert readme_defaults(table) == want, table


def test_a_config_without_the_tables_gets_those_numbers() -> None:
    cfg = parse_hub_config(hub_config_dict("/tmp/x"))
    for table, want in PROMISED.items():
        got = {k: getattr(getattr(cfg, table), k) for k in want}
        assert got == want, table
