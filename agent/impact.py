"""The anonymous visit profile (CONTRACT §9b, issue 18): purpose, age band and gender, each
optional, each one value from the ``[impact]`` lists; nothing else (no name, no document
number, no free text) is taken. A session carries it to its closed record, which the hub
aggregates; a session without one is "not given" there."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.errors import DomainError
from wire.config_check import ConfigError, check_int
from wire.config_check import no_unknown as _no_unknown
from wire.config_check import table as _table

PURPOSES = ("egov", "job", "school", "business", "training", "other")
AGE_BANDS = ("<18", "18-24", "25-34", "35-54", "55+")
GENDERS = ("f", "m", "x")
PARTS = ("purpose", "age_band", "gender")
VALUE_RE = re.compile(r"[A-Za-z0-9<>+_.-]{1,24}")  # what wire.messages.Profile accepts


@dataclass(frozen=True)
class ImpactConfig:
    purposes: tuple[str, ...] = PURPOSES
    age_bands: tuple[str, ...] = AGE_BANDS
    genders: tuple[str, ...] = GENDERS
    flush_minutes: int = 15  # content-use counts go to the ledger at least this often

    def choices(self, part: str) -> tuple[str, ...]:
        return {"purpose": self.purposes, "age_band": self.age_bands,
                "gender": self.genders}[part]


def _list(raw: object, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None:
        return default
    if not isinstance(raw, list) or not raw:
        raise ConfigError(key, "must be a non-empty list of short words")
    out: list[str] = []
    for v in raw:
        if not isinstance(v, str) or not VALUE_RE.fullmatch(v):
            raise ConfigError(key, f"{v!r} is not 1-24 letters, digits or < > + _ . -")
        if v in out:
            raise ConfigError(key, f"{v!r} is listed twice")
        out.append(v)
    return tuple(out)


def parse_impact(raw: object) -> ImpactConfig:
    t = _table(raw, "impact")
    _no_unknown(t, {"purposes", "age_bands", "genders", "flush_minutes"}, "impact")
    return ImpactConfig(purposes=_list(t.get("purposes"), "impact.purposes", PURPOSES),
                        age_bands=_list(t.get("age_bands"), "impact.age_bands", AGE_BANDS),
                        genders=_list(t.get("genders"), "impact.genders", GENDERS),
                        flush_minutes=check_int("impact.flush_minutes",
                                                t.get("flush_minutes", 15), 1, 24 * 60))


def check_profile(raw: object, impact: ImpactConfig) -> dict[str, str] | None:
    """The profile of a request body (None when absent, null or empty); a bad one is a
    ``bad_profile`` error naming the part (``profile.gender: ...``)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise DomainError("bad_profile", "profile: must be an object with purpose, age_band "
                          "and gender, each optional")
    unknown = sorted(str(k) for k in raw if k not in PARTS)
    if unknown:
        raise DomainError("bad_profile", f"profile.{unknown[0][:32]}: not a profile part "
                          f"(only {', '.join(PARTS)}; no names or free text)")
    out: dict[str, str] = {}
    for part in PARTS:
        value: Any = raw.get(part)
        if value is None:
            continue
        choices = impact.choices(part)
        if not isinstance(value, str) or value not in choices:
            raise DomainError("bad_profile", f"profile.{part}: must be one of "
                              f"{', '.join(choices)}")
        out[part] = value
    return out or None
