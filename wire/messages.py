"""Payload schemas (CONTRACT §6): strict JSON with a schema version, decoded with msgspec.

Unknown fields are ignored so a v1 message may grow new optional fields; a missing field,
a wrong type, a wrong version or an oversized payload is a ``WireError``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from wire import SCHEMA_VERSION

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH = 200  # usage records per message


class WireError(ValueError):
    """A payload that does not follow the contract; ``kind`` classifies it for counters."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Msg(msgspec.Struct, kw_only=True):
    v: int = SCHEMA_VERSION


class Status(_Msg):
    state: Literal["online", "offline"]
    boot_id: str
    version: str
    at: str


class StationHealth(msgspec.Struct, kw_only=True):
    id: str
    online: bool
    last_seen_s: float | None = None  # seconds since the station's kiosk was last heard
    in_session: bool = False
    locked: bool = False


class Uplink(msgspec.Struct, kw_only=True):
    """The site's uplink (agent/uplink.py); every field optional, so older hubs and agents
    neither send nor need it."""

    up: bool | None = None        # the internet when probed, else the hub link; None: unknown
    hub: bool | None = None       # the agent's MQTT connection to the hub's broker
    internet: bool | None = None  # a TCP probe beyond the site ([uplink] probe); None: none
    checked_at: str | None = None
    changed_at: str | None = None  # when ``up`` last changed
    last_outage_s: float | None = None  # how long the last outage lasted


class Health(_Msg):
    at: str  # the agent's wall clock (the hub compares it with its own: clock skew)
    boot_id: str
    version: str
    uptime_s: float
    cpu_percent: float
    load: list[float]
    mem_percent: float
    mem_total: int
    disk_percent: float
    disk_free: int
    disk_total: int
    temps: dict[str, float] = {}
    net_sent: int = 0
    net_recv: int = 0
    agent_rss: int = 0
    backlog: int = 0
    stations: list[StationHealth] = []
    content: dict[str, Any] = {}  # the content cache's sync status (agent/content.py)
    tariff_version: int = 0  # 0: the config file's tariff; n: the n-th edited or pushed one
    uplink: Uplink | None = None  # absent from older agents


# What a CAC sends is checked here, at the edge, with ASCII-only patterns (``str.isdigit``
# takes "²", which then broke the hub's reports for good; issue 16): ISO 8601 timestamps
# with an offset, ISO 4217-like currency codes (no "=HYPERLINK(...)" in a CSV cell).
Timestamp = Annotated[str, msgspec.Meta(
    pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
            r"(Z|[+-][0-9]{2}:?[0-9]{2})\Z")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z")]
Zone = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_+/-]{1,64}\Z")]


class _Record(msgspec.Struct, kw_only=True, tag_field="type"):
    id: str
    seq: int
    cac_id: str
    at: Timestamp
    # the CAC's IANA time zone (e.g. "Africa/Casablanca"): the hub reports the record on the
    # CAC's local day and hour; without it (older agents) the timestamp's own offset counts
    tz: Zone | None = None


# CONTRACT §9b: a profile value is one token from the agent's [impact] lists ("<18", "55+",
# "egov"): never free text; the hub does not know each site's lists, so it checks the shape
ProfileValue = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9<>+_.-]{1,24}\Z")]


class Profile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The anonymous visit profile of a session (each part optional, all from lists)."""

    purpose: ProfileValue | None = None
    age_band: ProfileValue | None = None
    gender: ProfileValue | None = None


class SessionRecord(_Record, tag="session"):
    station: str
    started_at: Timestamp
    ended_at: Timestamp
    billed_seconds: int
    fee: int
    currency: Currency
    category: str | None = None
    voucher_id: str | None = None
    operator: str | None = None
    minutes: int | None = None
    end_reason: str = "citizen"
    paid_by: str = "cash"
    # CONTRACT §8: a session with counter sales on its bill (absent when it has none)
    sales: list[str] | msgspec.UnsetType = msgspec.UNSET
    sales_amount: int | msgspec.UnsetType = msgspec.UNSET
    total: int | msgspec.UnsetType = msgspec.UNSET
    # CONTRACT §9b: the visit profile given at the counter or the kiosk (absent if skipped)
    profile: Profile | msgspec.UnsetType = msgspec.UNSET


class VoucherSaleRecord(_Record, tag="voucher_sale"):
    minutes: int
    price: int
    currency: Currency
    category: str | None = None
    expires_at: str | None = None
    operator: str | None = None


class VoidRecord(_Record, tag="void"):
    ref: str
    amount: int
    currency: Currency
    reason: str
    operator: str | None = None
    minutes_voided: int = 0


ItemId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{1,32}\Z")]


class SaleRecord(_Record, tag="sale"):
    """A counter sale (CONTRACT §8): cash now, or on the bill of ``session``."""

    item: ItemId
    quantity: int
    unit_price: int
    amount: int
    currency: Currency
    unit: str = "item"
    session: str | None = None
    category: str | None = None
    operator: str | None = None
    shift: str | None = None
    print_job: str | None = None  # the CUPS job this sale released (pages x unit price)


class SaleVoidRecord(_Record, tag="sale_void"):
    """A sale voided by a manager: ``amount`` is negative; ``cash`` is false when the sale
    was still on a running session's bill (no money goes back over the counter)."""

    ref: str
    item: ItemId
    quantity: int
    amount: int
    currency: Currency
    reason: str
    cash: bool = True
    session: str | None = None
    operator: str | None = None


class ShiftRecord(_Record, tag="shift"):
    """A closed shift: opening float, cash taken, expected and counted cash."""

    operator: str
    opened_at: Timestamp
    closed_at: Timestamp
    opening_float: int
    cash_in: int
    cash_voids: int
    expected_cash: int
    counted_cash: int
    over_short: int
    currency: Currency
    closed_by: str | None = None


Count = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
ContentKey = Annotated[str, msgspec.Meta(pattern=r"^[^\x00-\x1f]{1,200}\Z")]
DayStr = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")]


class ContentUseRecord(_Record, tag="content_use"):
    """CONTRACT §9b: content opened at the site on the CAC's local ``day``, as increments
    since the previous content_use record (the hub sums every record of a day).

    ``opens`` maps a content package id to its opens; ``pages`` maps "<package>/<path>" of
    the most opened pages (at most 50 per record) to their opens. No search query, no
    station or session id: aggregates only."""

    day: DayStr
    opens: dict[ContentKey, Count] = {}
    pages: dict[ContentKey, Count] = {}


Record = (SessionRecord | VoucherSaleRecord | VoidRecord | SaleRecord | SaleVoidRecord
          | ShiftRecord | ContentUseRecord)


class Usage(_Msg):
    records: list[Record]


class Ack(_Msg):
    seq: int


class Command(_Msg):
    id: str
    name: str
    args: dict[str, Any] = {}
    station: str | None = None
    # UTC ISO 8601 (CONTRACT §7): received after it, the command is answered "expired" and
    # not run; None (older hubs) never expires
    expires_at: str | None = None

    def expired(self, now: datetime) -> bool:
        """True from ``expires_at`` on; an unreadable one counts as expired (not run)."""
        if self.expires_at is None:
            return False
        try:
            at = datetime.fromisoformat(self.expires_at)
        except ValueError:
            return True
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return now >= at


class CommandAck(_Msg):
    id: str
    status: Literal["done", "failed", "expired"]
    message: str = ""


M = TypeVar("M", bound=_Msg)

_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()


def encode(msg: _Msg) -> bytes:
    return _encoder.encode(msg)


def decode(payload: bytes, cls: type[M]) -> M:
    """Decode and validate one payload of type ``cls``."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError("oversized", f"payload of {len(payload)} bytes is over "
                        f"{MAX_PAYLOAD_BYTES}")
    dec = _decoders.get(cls)
    if dec is None:
        dec = _decoders[cls] = msgspec.json.Decoder(cls)
    try:
        msg: M = dec.decode(payload)
    except msgspec.ValidationError as exc:
        # a wrong version is its own kind, so it can be counted apart
        raw = _peek_version(payload)
        if raw is not None and raw != SCHEMA_VERSION:
            raise WireError("wrong_version", f"schema version {raw!r}, expected "
                            f"{SCHEMA_VERSION}") from None
        raise WireError("invalid", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise WireError("malformed", f"not JSON: {exc}") from None
    if msg.v != SCHEMA_VERSION:
        raise WireError("wrong_version", f"schema version {msg.v}, expected {SCHEMA_VERSION}")
    return msg


def _peek_version(payload: bytes) -> object:
    try:
        obj = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    return obj.get("v") if isinstance(obj, dict) else None


def record_from_dict(rec: dict[str, Any]) -> Record:
    """A ledger record as a typed wire record (validates it)."""
    out: Record = msgspec.convert(rec, Record)
    return out


def record_to_dict(rec: Record) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(rec)
    return out
