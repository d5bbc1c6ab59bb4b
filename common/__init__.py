"""Rules shared by every CAC program (agent, hub, kiosk, provisioning), each spelled once.

- ``ids``: the CAC id and station id patterns.
- ``codes``: the voucher code (Crockford base32) alphabet and its value.
- ``passwords``: salted scrypt password hashes and in-memory bearer tokens.
- ``lockout``: the sliding-window failure limiter and the login lockout built on it.
- ``durable``: the atomic, durable file write (temp file, fsync, rename, fsync dir).
- ``mqtt_config``: the ``[mqtt]`` table of agent.toml and hub.toml.
- ``logonce``: log a reason the first time only.
- ``usage_window``: the usage publication window (in flight, acks, ack timeout) and the
  reconnect backoff, pure with ``now`` passed in.

Nothing here does network I/O or reads a clock.
"""
