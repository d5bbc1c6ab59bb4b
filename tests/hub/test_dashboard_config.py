"""The optional [alarms] and [dashboard] tables of hub.toml; `cac-hub add-user`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub import users
from hub.config import AlarmConfig, ConfigError, DashboardConfig, parse_hub_config
from hub.store import Store
from tests.hub.factories import hub_config_dict

BIN = Path(sys.executable).parent


def test_defaults_and_overrides() -> None:
    cfg = parse_hub_config(hub_config_dict("/tmp/x"))
    assert cfg.alarms == AlarmConfig() and cfg.dashboard == DashboardConfig()
    cfg = parse_hub_config(hub_config_dict("/tmp/x", alarms={"disk_percent": 80},
                                           dashboard={"command_timeout_seconds": 60}))
    assert cfg.alarms.disk_percent == 80 and cfg.dashboard.command_timeout_seconds == 60


@pytest.mark.parametrize(("extra", "key"), [
    ({"alarms": {"disk_percnt": 80}}, "alarms.disk_percnt"),
    ({"alarms": {"disk_percent": 101}}, "alarms.disk_percent"),
    ({"alarms": {"temperature_c": "hot"}}, "alarms.temperature_c"),
    ({"dashboard": {"login_failures": 0}}, "dashboard.login_failures"),
    ({"dashboard": []}, "dashboard"),
])
def test_bad_values_name_the_key(extra: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_hub_config(hub_config_dict("/tmp/x", **extra))
    assert err.value.key == key


def test_add_user_command(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text(f'hub_id = "hub-x"\ndata_dir = "{tmp_path / "data"}"\n'
                    'offline_after_seconds = 90\n[mqtt]\nhost = "127.0.0.1"\nport = 1883\n'
                    '[http]\nhost = "127.0.0.1"\nport = 0\n')
    cmd = [str(BIN / "cac-hub"), "add-user", "--config", str(toml), "--name", "amina",
           "--role", "technician", "--password-stdin"]
    ok = subprocess.run(cmd, input="long-enough-pw\n", text=True, capture_output=True,
                        timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    short = subprocess.run(cmd, input="short\n", text=True, capture_output=True, timeout=60,
                           check=False)
    assert short.returncode == 2 and "at least 8" in short.stderr
    assert "Traceback" not in short.stderr and len(short.stderr.strip().splitlines()) == 1
    bad_role = subprocess.run(cmd[:-3] + ["--role", "admin", "--password-stdin"],
                              input="long-enough-pw\n", text=True, capture_output=True,
                              timeout=60, check=False)
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr
    with Store(tmp_path / "data" / "hub.sqlite3") as store:
        account = users.lookup(store.db, "amina")
        assert account is not None and account[0] == "technician"
        assert account[1].startswith("scrypt$") and "long-enough-pw" not in account[1]
        assert users.Sessions(DashboardConfig()).check_password(account, "long-enough-pw")
        assert not users.Sessions(DashboardConfig()).check_password(account, "wrong-pw-123")
