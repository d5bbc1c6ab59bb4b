"""The agent's meter: the pure rules of the till, with time passed in.

No I/O, no clock reads, no HTTP. One module per rule:

- ``tariff``: ``Tariff``/``Band`` and ``compute_fee`` (CONTRACT §3): where a fee is computed.
- ``session``: the session state machine (start, extend, close into a record).
- ``vouchers``: codes, the ``Voucher`` balance (``spend``, ``voided``, ``refund``), the stored
  ``VoucherEntry`` with its "in use" rule, and ``check_redeemable``: where a redemption is
  decided.
- ``stations``: when a station is online, a lock record, an operator message and its expiry.
"""
