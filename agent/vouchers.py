"""Compatibility re-export: the voucher rules live in ``agent.meter.vouchers``."""

from agent.meter.vouchers import (
    ALPHABET,
    CODE_BITS,
    CODE_SYMBOLS,
    GROUP,
    InvalidCode,
    RejectReason,
    Voucher,
    VoucherDataError,
    VoucherEntry,
    VoucherRejected,
    VoucherStateError,
    check_redeemable,
    code_to_int,
    generate_code,
    normalize_code,
)

__all__ = ["ALPHABET", "CODE_BITS", "CODE_SYMBOLS", "GROUP", "InvalidCode", "RejectReason",
           "Voucher", "VoucherDataError", "VoucherEntry", "VoucherRejected",
           "VoucherStateError", "check_redeemable", "code_to_int", "generate_code",
           "normalize_code"]
