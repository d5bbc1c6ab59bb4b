"""The tariff in force: the config file's, or the one last set at run time (console, hub).

The fee itself is the meter's (``agent.meter.tariff.compute_fee``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from agent.config import ConfigError, parse_tariff, tariff_to_dict
from agent.errors import DomainError
from agent.meter.tariff import compute_fee
from agent.storage import atomic_write_bytes
from agent.usecases.state import AgentState, storage_error

log = logging.getLogger(__name__)

TARIFF_FILE = "tariff.json"  # the tariff edited at the console or pushed by the hub


class Tariffs:
    def __init__(self, state: AgentState) -> None:
        self.state = state
        self._load()

    def _config_hash(self) -> str:
        raw = json.dumps(tariff_to_dict(self.state.config.tariff), sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()

    def _load(self) -> None:
        """Use the tariff last set at run time, unless the config's tariff changed since."""
        st = self.state
        path = st.state_dir / TARIFF_FILE
        try:
            stored = json.loads(path.read_bytes())
            tariff = parse_tariff(stored["tariff"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            log.exception("%s is unreadable; using the tariff of the config file", path)
            return
        if stored.get("config_hash") != self._config_hash():
            log.warning("the config file's tariff changed since the tariff was last edited at "
                        "run time (%s by %s); the config file's tariff wins",
                        stored.get("set_at"), stored.get("set_by"))
            st.tariff_info["version"] = int(stored.get("version", 0))
            return
        st.tariff = tariff
        st.tariff_info = {"version": int(stored.get("version", 1)), "source": "edited",
                          "set_at": stored.get("set_at"), "set_by": stored.get("set_by")}

    def view(self) -> dict[str, Any]:
        return {"tariff": tariff_to_dict(self.state.tariff), **self.state.tariff_info}

    def set(self, raw: object, actor: str) -> dict[str, Any]:
        """Replace the tariff for sessions and vouchers from now on (running sessions keep
        theirs). ``raw`` has the shape of the config file's ``[tariff]`` table and is
        checked by the same rules; a bad one changes nothing (``bad_tariff`` naming the key)."""
        st = self.state
        try:
            tariff = parse_tariff(raw)
        except ConfigError as exc:
            raise DomainError("bad_tariff", str(exc)) from None
        version = int(st.tariff_info["version"]) + 1
        now = st.clock.now().isoformat()
        stored = {"version": version, "tariff": tariff_to_dict(tariff), "set_at": now,
                  "set_by": actor, "config_hash": self._config_hash()}
        try:
            atomic_write_bytes(st.state_dir / TARIFF_FILE, json.dumps(stored, indent=1).encode())
        except OSError as exc:
            raise storage_error("the tariff", exc) from None
        old = tariff_to_dict(st.tariff)
        st.tariff = tariff
        st.tariff_info = {"version": version, "source": "edited", "set_at": now,
                          "set_by": actor}
        log.info("tariff version %d set by %s", version, actor)
        st.audit_action(actor, "tariff.set", f"v{version}", old=old, new=stored["tariff"])
        return self.view()

    def quote(self, minutes: int, category: str | None, start: datetime | None = None) -> int:
        st = self.state
        st.check_category(category)
        return compute_fee(st.tariff, start or st.clock.now(), minutes * 60, st.tz, category)
