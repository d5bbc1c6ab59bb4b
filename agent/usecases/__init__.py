"""The agent's use cases: thin, synchronous steps over the ledger, one module per subject.

Each raises ``agent.errors.DomainError`` with a stable code and knows nothing of HTTP. They
run on the agent's single service thread (the HTTP layer calls them on a one-worker
executor), so they need no locks. ``agent.service.AgentService`` composes them.

- ``state``: what they share (active sessions, the tariff in force, locks, the ledger write)
- ``sessions``: start, extend, end, the tick, checkpoints and restart recovery
- ``vouchers``: sell, look up, void, redeem (with the failed-code limit)
- ``stations``: lock, unlock, messages, the station views, the health snapshot
- ``tariffs``: the tariff set at run time, its file, quotes
- ``accounts``: operator logins (with the lockout), tokens, operator accounts
"""
