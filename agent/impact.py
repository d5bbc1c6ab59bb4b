"""Impact data at the site (CONTRACT §9b): the ``[impact]`` lists and the anonymous visit
profile of a session (purpose, age band, gender; each optional, each from the lists)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from agent.errors import DomainError
from wire.config_check import ConfigError
from wire.config_check import check_int as _check_int
from wire.config_check import no_unknown as _no_unknown
from wire.config_check import table as _table

if TYPE_CHECKING:
    from agent.clock import Clock
    from agent.ledger import Ledger

PROFILE_KEYS = ("purpose", "age_band", "gender")
DEFAULT_PURPOSES = ("egov", "job", "school", "business", "training", "other")
DEFAULT_AGE_BANDS = ("<18", "18-24", "25-34", "35-54", "55+")
DEFAULT_GENDERS = ("f", "m", "x")
DEFAULT_FLUSH_MINUTES = 15
# the wire's ProfileValue shape (wire/messages.py): a token, never free text
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<>+_.-")


@dataclass(frozen=True)
class ImpactConfig:
    purposes: tuple[str, ...] = DEFAULT_PURPOSES
    age_bands: tuple[str, ...] = DEFAULT_AGE_BANDS
    genders: tuple[str, ...] = DEFAULT_GENDERS
    flush_minutes: int = DEFAULT_FLUSH_MINUTES  # content-use counts written this often

    def choices(self, key: str) -> tuple[str, ...]:
        return {"purpose": self.purposes, "age_band": self.age_bands,
                "gender": self.genders}[key]


def _token_list(raw: object, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if raw is None:
        return default
    if not isinstance(raw, list) or not raw:
        raise ConfigError(key, "must be a non-empty list of short tokens")
    seen: list[str] = []
    for i, v in enumerate(raw):
        if not isinstance(v, str) or not 1 <= len(v) <= 24 or not set(v) <= _TOKEN_CHARS:
            raise ConfigError(f"{key}[{i}]",
                              f"must be a token of 1-24 of [A-Za-z0-9<>+_.-], got {v!r}")
        if v in seen:
            raise ConfigError(f"{key}[{i}]", f"duplicate value {v!r}")
        seen.append(v)
    return tuple(seen)


def parse_impact(raw: object) -> ImpactConfig:
    """The optional ``[impact]`` table; a bad list names its key."""
    t = _table(raw, "impact")
    _no_unknown(t, {"purposes", "age_bands", "genders", "flush_minutes"}, "impact")
    return ImpactConfig(
        purposes=_token_list(t.get("purposes"), "impact.purposes", DEFAULT_PURPOSES),
        age_bands=_token_list(t.get("age_bands"), "impact.age_bands", DEFAULT_AGE_BANDS),
        genders=_token_list(t.get("genders"), "impact.genders", DEFAULT_GENDERS),
        flush_minutes=_check_int("impact.flush_minutes",
                                 t.get("flush_minutes", DEFAULT_FLUSH_MINUTES), 1, 24 * 60),
    )


def check_profile(raw: object, impact: ImpactConfig) -> dict[str, str] | None:
    """A request's ``profile``: None when absent or empty, else the checked parts.
    DomainError ``bad_profile`` (400) naming the field for anything else."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise DomainError("bad_profile", "profile: must be an object "
                          "{\"purpose\", \"age_band\", \"gender\"}")
    for key in raw:
        if key not in PROFILE_KEYS:
            raise DomainError("bad_profile", f"profile.{key}: unknown key "
                              f"(known: {', '.join(PROFILE_KEYS)})")
    out: dict[str, str] = {}
    for key in PROFILE_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        choices = impact.choices(key)
        if not isinstance(value, str) or value not in choices:
            raise DomainError("bad_profile", f"profile.{key}: {value!r} is not one of "
                              f"{', '.join(choices)}")
        out[key] = value
    return out or None


# ---------------------------------------------------------------- content use (§9b)

MAX_PAGES_PER_RECORD = 50  # the most opened pages of a flush (wire ContentUseRecord)
MAX_KEY_CHARS = 200


class ContentUse:
    """Opens of content pages per local day, package and page, held in memory and written
    as ``content_use`` ledger records (increments; the outbox sends each exactly once).

    ``count`` runs on the event loop; ``flush`` on the service thread. Counts leave memory
    in the same step as they are taken for a record and come back only if its write fails:
    a record is never written twice, and a kill -9 loses at most what was not flushed yet
    (``flush_minutes`` of opens). No query, station or session is kept."""

    def __init__(self, ledger: Ledger, clock: Clock, tz: ZoneInfo, flush_minutes: int) -> None:
        self.ledger = ledger
        self.clock = clock
        self.tz = tz
        self.flush_seconds = flush_minutes * 60
        self._lock = threading.Lock()
        self._opens: dict[str, Counter[str]] = {}  # day -> package -> opens
        self._pages: dict[str, Counter[str]] = {}  # day -> "<package>/<path>" -> opens
        self._last_flush = clock.monotonic()

    def _today(self) -> str:
        return self.clock.now().astimezone(self.tz).date().isoformat()

    def count(self, package: str, path: str) -> None:
        day = self._today()
        page = f"{package}/{path}"
        with self._lock:
            self._opens.setdefault(day, Counter())[package[:MAX_KEY_CHARS]] += 1
            if len(page) <= MAX_KEY_CHARS:
                self._pages.setdefault(day, Counter())[page] += 1

    def pending(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {day: dict(c) for day, c in self._opens.items()}

    def due(self) -> bool:
        """Counts wait and either the local day changed or ``flush_minutes`` went by."""
        with self._lock:
            if not self._opens:
                return False
            days = set(self._opens)
        return (days != {self._today()}
                or self.clock.monotonic() - self._last_flush >= self.flush_seconds)

    def flush(self) -> list[dict[str, Any]]:
        """Write one record per day with counts (service thread); returns the records."""
        with self._lock:
            opens, pages = self._opens, self._pages
            self._opens, self._pages = {}, {}
        self._last_flush = self.clock.monotonic()
        written: list[dict[str, Any]] = []
        for day in sorted(opens):
            top = dict((pages.get(day) or Counter()).most_common(MAX_PAGES_PER_RECORD))
            record = {"type": "content_use", "id": uuid.uuid4().hex,
                      "at": self.clock.now().isoformat(), "day": day,
                      "opens": dict(opens[day]), "pages": top}
            try:
                written.append(self.ledger.add_record(record))
            except BaseException:
                with self._lock:  # not written: the counts wait for the next flush
                    for d in opens:
                        if any(w["day"] == d for w in written):
                            continue
                        self._opens.setdefault(d, Counter()).update(opens[d])
                        self._pages.setdefault(d, Counter()).update(pages.get(d) or {})
                raise
        return written
