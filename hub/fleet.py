"""Fleet state: which CACs are online, when each was last heard, its latest health. Pure.

No I/O, no threads, no clock: every call takes ``now`` (seconds since the epoch on the
hub's clock). The rule for ``online``:

- the CAC's latest status says ``online`` (or it has sent none we know of), and
- it was heard (any valid message, live) less than ``offline_after`` seconds ago.

So a CAC whose link or process dies without a last will goes offline after
``offline_after`` seconds of silence; an explicit ``offline`` status (its last will, or a
clean shutdown) makes it offline at once.

After a hub restart the state is rebuilt from the store (``restore``) and from the
retained status messages the broker re-delivers on subscribe (``apply_status(...,
retained=True)``, which updates the state but is no proof of life). For a CAC whose last
status says ``online``, silence is counted from the hub's start at the earliest
(``started_at``): a hub that was down for an hour does not declare the whole fleet offline
the moment it starts; such a CAC that died without a last will while the hub was down
shows offline ``offline_after`` seconds after the start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wire.messages import Health, StationHealth, Status

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class CacRecord:
    """What the store keeps of one CAC's fleet state, to rebuild it after a restart."""

    cac_id: str
    first_seen: float
    last_seen: float | None = None
    status: Status | None = None
    health: Health | None = None
    health_seen: float | None = None


@dataclass(frozen=True)
class CacView:
    """One CAC as the API and the dashboard show it."""

    cac_id: str
    online: bool
    state: str | None  # the latest status: "online", "offline", or None if none received
    first_seen: float
    last_seen: float | None
    boot_id: str | None
    version: str | None
    health: Health | None
    health_seen: float | None

    @property
    def backlog(self) -> int | None:
        """Usage records the agent still holds unacknowledged (from its latest health)."""
        return self.health.backlog if self.health is not None else None

    @property
    def stations(self) -> list[StationHealth]:
        return list(self.health.stations) if self.health is not None else []


@dataclass(frozen=True)
class Transition:
    """A CAC went online or offline; ``reason`` is "status", "heard" or "silent"."""

    cac_id: str
    online: bool
    reason: str


class _Cac:
    __slots__ = ("boot_id", "cac_id", "first_seen", "health", "health_seen", "last_seen",
                 "online", "state", "status", "version")

    def __init__(self, cac_id: str, first_seen: float) -> None:
        self.cac_id = cac_id
        self.first_seen = first_seen
        self.last_seen: float | None = None
        self.state: str | None = None
        self.status: Status | None = None
        self.boot_id: str | None = None
        self.version: str | None = None
        self.health: Health | None = None
        self.health_seen: float | None = None
        self.online = False

    def view(self) -> CacView:
        return CacView(self.cac_id, self.online, self.state, self.first_seen, self.last_seen,
                       self.boot_id, self.version, self.health, self.health_seen)

    def record(self) -> CacRecord:
        return CacRecord(self.cac_id, self.first_seen, self.last_seen, self.status,
                         self.health, self.health_seen)


class FleetState:
    """Live state of every CAC the hub knows; see the module docstring for the rules."""

    def __init__(self, offline_after: float, started_at: float) -> None:
        if offline_after <= 0:
            raise ValueError("offline_after must be positive")
        self.offline_after = offline_after
        self.started_at = started_at
        self._cacs: dict[str, _Cac] = {}
        self._dirty: set[str] = set()

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._cacs)

    def __contains__(self, cac_id: object) -> bool:
        return cac_id in self._cacs

    def get(self, cac_id: str) -> CacView | None:
        c = self._cacs.get(cac_id)
        return c.view() if c is not None else None

    def snapshot(self) -> list[CacView]:
        """Every known CAC, sorted by id."""
        return [self._cacs[k].view() for k in sorted(self._cacs)]

    def counts(self) -> tuple[int, int]:
        """(online, offline)."""
        online = sum(1 for c in self._cacs.values() if c.online)
        return online, len(self._cacs) - online

    # ------------------------------------------------------------------ updates

    def restore(self, rows: Iterable[CacRecord]) -> None:
        """Load what the store kept (at start, before any message)."""
        for row in rows:
            c = self._cacs.get(row.cac_id) or _Cac(row.cac_id, row.first_seen)
            self._cacs[row.cac_id] = c
            c.first_seen = min(c.first_seen, row.first_seen)
            c.last_seen = _later(c.last_seen, row.last_seen)
            if row.status is not None and c.status is None:
                self._take_status(c, row.status)
            if row.health is not None and _newer(row.health_seen, c.health_seen):
                c.health, c.health_seen = row.health, row.health_seen
                if c.status is None:
                    c.boot_id, c.version = row.health.boot_id, row.health.version
            c.online = self._online(c, self.started_at)

    def apply_status(self, cac_id: str, status: Status, now: float, *,
                     retained: bool = False) -> Transition | None:
        """A status message; a retained one (re-delivered on subscribe) is no proof of life."""
        c = self._cac(cac_id, now)
        self._take_status(c, status)
        if not retained:
            c.last_seen = now
        self._dirty.add(cac_id)
        return self._settle(c, now, "status")

    def apply_health(self, cac_id: str, health: Health, now: float) -> Transition | None:
        c = self._cac(cac_id, now)
        c.health, c.health_seen, c.last_seen = health, now, now
        c.boot_id, c.version = health.boot_id, health.version
        self._dirty.add(cac_id)
        return self._settle(c, now, "heard")

    def touch(self, cac_id: str, now: float) -> Transition | None:
        """Any other valid message from the CAC: it is alive."""
        c = self._cac(cac_id, now)
        c.last_seen = now
        self._dirty.add(cac_id)
        return self._settle(c, now, "heard")

    def merge(self, row: CacRecord, now: float) -> Transition | None:
        """What another hub worker wrote to the shared store (shared subscriptions)."""
        c = self._cacs.get(row.cac_id)
        if c is None:
            c = self._cacs[row.cac_id] = _Cac(row.cac_id, row.first_seen)
        c.last_seen = _later(c.last_seen, row.last_seen)
        if row.health is not None and _newer(row.health_seen, c.health_seen):
            c.health, c.health_seen = row.health, row.health_seen
        if c.status is None and row.status is not None:
            self._take_status(c, row.status)
        return self._settle(c, now, "heard")

    def evaluate(self, now: float) -> list[Transition]:
        """Apply the silence rule at ``now``; returns who changed."""
        out = []
        for c in self._cacs.values():
            t = self._settle(c, now, "silent")
            if t is not None:
                out.append(t)
        return out

    def take_dirty(self) -> list[CacRecord]:
        """CACs changed since the last call, for the store (the caller writes them)."""
        out = [self._cacs[k].record() for k in sorted(self._dirty)]
        self._dirty.clear()
        return out

    # ------------------------------------------------------------------ internals

    def _cac(self, cac_id: str, now: float) -> _Cac:
        c = self._cacs.get(cac_id)
        if c is None:
            c = self._cacs[cac_id] = _Cac(cac_id, now)
        return c

    @staticmethod
    def _take_status(c: _Cac, status: Status) -> None:
        c.status, c.state = status, status.state
        c.boot_id, c.version = status.boot_id, status.version

    def _online(self, c: _Cac, now: float) -> bool:
        if c.state == OFFLINE:
            return False
        heard = c.last_seen
        if c.state == ONLINE:  # its last word was online: silence counts from our start
            heard = self.started_at if heard is None else max(heard, self.started_at)
        return heard is not None and now - heard < self.offline_after

    def _settle(self, c: _Cac, now: float, reason: str) -> Transition | None:
        online = self._online(c, now)
        if online == c.online:
            return None
        c.online = online
        if not online:
            reason = "status" if c.state == OFFLINE else "silent"
        return Transition(c.cac_id, online, reason)


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _newer(candidate: float | None, current: float | None) -> bool:
    if candidate is None:
        return False
    return current is None or candidate > current
