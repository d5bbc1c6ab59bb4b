"""The HTTP edge of the domain errors: one table from a stable code to a status.

Used by the JSON API (``agent.api``) and the operator console; nothing below them knows HTTP.
"""

from __future__ import annotations

from agent.errors import DomainError

STATUS: dict[str, int] = {
    # bad input
    "bad_request": 400, "bad_json": 400, "missing_field": 400, "bad_field": 400,
    "bad_minutes": 400, "bad_seconds": 400, "bad_code": 400, "bad_message": 400,
    "bad_tariff": 400, "bad_operator": 400, "bad_count": 400, "unknown_category": 400,
    "bad_text": 400, "unsupported_media": 415,
    "bad_catalogue": 400, "bad_quantity": 400, "unknown_item": 400,
    # who is asking
    "unauthorized": 401, "bad_credentials": 401, "forbidden": 403,
    # unknown things
    "unknown_station": 404, "unknown_session": 404, "no_session": 404,
    "unknown_voucher": 404, "voucher_unknown": 404, "voucher_other_cac": 404,
    "unknown_operator": 404, "not_found": 404, "unknown_sale": 404,
    "unknown_print_job": 404, "printing_off": 404,
    # the state does not allow it
    "station_busy": 409, "station_locked": 409, "session_changed": 409,
    "voucher_in_use": 409, "voucher_void": 409, "voucher_expired": 409, "voucher_empty": 409,
    "cannot_void": 409, "own_account": 409,
    "voucher_session": 409, "open_ended": 409, "session_over": 409, "too_long": 409,
    "session_paused": 409, "session_running": 409,
    "shift_open": 409, "no_open_shift": 409, "profile_given": 409, "bad_profile": 400,
    # slow down
    "too_many_attempts": 429, "locked_out": 429,
    # the disk
    "storage_error": 503, "print_unavailable": 503,
}
DEFAULT_STATUS = 400  # a refusal whose code is not listed is still the client's to fix


def status_of(exc: DomainError) -> int:
    """The HTTP status of a domain error."""
    return STATUS.get(exc.code, DEFAULT_STATUS)


def headers_of(exc: DomainError) -> dict[str, str]:
    """The headers a refusal carries (``Retry-After`` for a lockout)."""
    return {} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
