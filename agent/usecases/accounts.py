"""Operator logins, tokens and accounts.

A login goes through a lockout shared by the JSON API and the console: 5 failures for one
name from one client address (20 from one client address, whatever the names) within
15 min lock it for 15 min (``locked_out``). Keyed by name *and* address, so someone else on
the LAN cannot lock the manager out of her own counter by failing her name (issue 16).

An operator token is good only while its account is as it was at login: a new password, a
new role or a deactivation (also by ``cac-agent add-operator`` from another process) ends
it at the next request (the accounts file is re-read when it changed).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any

from agent.auth import (
    LOGIN_CLIENT_FAILURES,
    LOGIN_LOCK_SECONDS,
    LOGIN_NAME_FAILURES,
    LOGIN_WINDOW_SECONDS,
    LoginLockout,
    TokenStore,
    hash_password,
    verify_password,
)
from agent.errors import DomainError
from agent.operators import OPERATORS_FILE, OperatorError, OperatorStore
from agent.usecases.state import AgentState

log = logging.getLogger(__name__)

OPERATOR_TOKEN_TTL = 12 * 3600


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # "operator" | "manager" | "station"


class Accounts:
    def __init__(self, state: AgentState, operators: OperatorStore) -> None:
        self.state = state
        self.operators = operators
        self.tokens = TokenStore()
        self.by_name = LoginLockout(LOGIN_NAME_FAILURES, LOGIN_WINDOW_SECONDS,
                                    LOGIN_LOCK_SECONDS)
        self.by_client = LoginLockout(LOGIN_CLIENT_FAILURES, LOGIN_WINDOW_SECONDS,
                                      LOGIN_LOCK_SECONDS)
        self._fingerprints: dict[str, str] = {}  # token -> its account at login
        self._verified: dict[str, tuple[int, int, int]] = {}  # token -> file checked at

    # ---------------------------------------------------------------- logins and tokens

    def login(self, name: str, password: str) -> dict[str, Any]:
        st = self.state
        account = self.operators.get(name)
        # verify against a dummy hash when the name is unknown, so timing tells nothing
        encoded = account["password_hash"] if account else _dummy_hash()
        if not verify_password(password, encoded) or not account or not account.get("active"):
            log.info("failed operator login for %r", name)
            st.audit_action(f"operator:{name}", "login.failed")
            raise DomainError("bad_credentials", "wrong name or password")
        token = self.tokens.issue(name, account["role"], st.clock.monotonic(),
                                  OPERATOR_TOKEN_TTL)
        self._fingerprints[token] = _fingerprint(account)
        if len(self._fingerprints) > 4 * len(self.tokens) + 64:  # drop expired tokens' entries
            now = st.clock.monotonic()
            for old in [t for t in self._fingerprints if self.tokens.lookup(t, now) is None]:
                self._forget(old)
        log.info("operator %s logged in", name)
        st.audit_action(f"operator:{name}", "login")
        return {"token": token, "name": name, "role": account["role"],
                "expires_in": OPERATOR_TOKEN_TTL}

    def login_from(self, name: str, password: str, client: str | None = None) -> dict[str, Any]:
        """``login`` behind the lockout (by name, and by client address when known)."""
        now = self.state.clock.monotonic()
        keys = [(self.by_name, f"name:{name.casefold()}\0client:{client or ''}")]
        if client:
            keys.append((self.by_client, f"client:{client}"))
        wait = max(lockout.locked_for(key, now) for lockout, key in keys)
        if wait > 0:
            log.info("login for %r refused: locked out for %d s more", name, wait)
            secs = int(-(-wait // 1))
            raise DomainError("locked_out", "too many failed logins; try again in "
                              f"{-(-secs // 60)} min", retry_after=secs)
        try:
            result = self.login(name, password)
        except DomainError as exc:
            if exc.code == "bad_credentials":
                for lockout, key in keys:
                    if lockout.record_failure(key, now):
                        log.warning("logins locked for %s after repeated failures", key)
                        self.state.audit_action(f"operator:{name}", "login.lockout", key,
                                                client=client)
            raise
        self.by_name.reset(keys[0][1])
        return result

    def logout(self, token: str) -> None:
        self.tokens.revoke(token)
        self._forget(token)

    def _forget(self, token: str) -> None:
        self._fingerprints.pop(token, None)
        self._verified.pop(token, None)

    def _file_key(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.operators.data_dir / OPERATORS_FILE)
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _unchanged(self, token: str, name: str) -> bool:
        """The token's account still has the password, role and activity it had at login."""
        key = self._file_key()
        if self._verified.get(token) == key:
            return True
        account = self.operators.get(name)
        ok = account is not None and _fingerprint(account) == self._fingerprints.get(token)
        if ok:
            self._verified[token] = key
        return ok

    def operator_for_token(self, token: str) -> Principal:
        found = self.tokens.lookup(token, self.state.clock.monotonic())
        if found is not None and not self._unchanged(token, found[0]):
            log.info("token of %s ended: the account changed since its login", found[0])
            self.tokens.revoke(token)
            self._forget(token)
            found = None
        if found is None:
            raise DomainError("unauthorized", "log in first (operator token missing, "
                              "expired or not an operator token)")
        return Principal(found[0], found[1])

    # ---------------------------------------------------------------- accounts

    def listing(self) -> list[dict[str, Any]]:
        return sorted(self.operators.all(), key=lambda d: str(d.get("name")))

    def save(self, name: str, role: str, password: str, actor: str) -> None:
        """Create an account or replace its password and role (its tokens are revoked)."""
        try:
            self.operators.put(name, role, password, self.state.clock.now())
        except OperatorError as exc:
            raise DomainError("bad_operator", str(exc)) from None
        self.tokens.revoke_subject(name)
        self.state.audit_action(f"operator:{actor}", "operator.save", name, role=role)

    def set_role(self, name: str, role: str, actor: str) -> None:
        if name == actor:
            raise DomainError("own_account", "you cannot change your own role")
        try:
            found = self.operators.set_role(name, role, self.state.clock.now())
        except OperatorError as exc:
            raise DomainError("bad_operator", str(exc)) from None
        if not found:
            raise DomainError("unknown_operator", f"no operator {name!r}")
        self.tokens.revoke_subject(name)
        self.state.audit_action(f"operator:{actor}", "operator.role", name, role=role)

    def set_active(self, name: str, active: bool, actor: str) -> None:
        if name == actor and not active:
            raise DomainError("own_account", "you cannot deactivate your own account")
        if not self.operators.set_active(name, active, self.state.clock.now()):
            raise DomainError("unknown_operator", f"no operator {name!r}")
        if not active:
            self.tokens.revoke_subject(name)
        self.state.audit_action(f"operator:{actor}",
                                "operator.activate" if active else "operator.deactivate", name)


def _fingerprint(account: dict[str, Any]) -> str:
    """What a token depends on: the password hash, the role, the account being active."""
    raw = f"{account.get('password_hash')}\0{account.get('role')}\0{bool(account.get('active'))}"
    return hashlib.sha256(raw.encode()).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """A real hash of a random password: a login with an unknown name costs the same."""
    return hash_password(secrets.token_hex(16))
