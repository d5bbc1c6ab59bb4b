"""Technician accounts of the dashboard: roles, login sessions, CSRF tokens, lockout.

Accounts live in the store's ``users`` table (``cac-hub add-user``), passwords as salted
scrypt hashes from ``common.passwords``. Roles: ``viewer`` sees everything; ``technician`` also
acknowledges alarms and sends commands. A login opens a session (``common.passwords.TokenStore``:
an unguessable cookie value, expiring after ``[dashboard] session_hours``); each session has
its own CSRF token that every form posts back. After ``login_failures`` failed logins of one
name from one address within ``lockout_minutes`` that name is refused *from that address*
for ``lockout_minutes``; four times as many from one address, whatever the names, lock the
address (``common.lockout.LoginLockout``; keyed so, nobody on the network can lock a
technician out by failing her name, issue 16). Memory stays bounded (``prune``, key caps).
A session remembers the account's role and password hash: the dashboard ends it when the
account changed (``cac-hub add-user`` again).
Times are passed in (monotonic seconds), except ``created_at`` of an account.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass

from common.lockout import LoginLockout
from common.passwords import TokenStore, hash_password, verify_password
from hub.config import DashboardConfig
from hub.pgaux import POSTGRESQL, dialect

ROLES = ("viewer", "technician")
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# verified against when the name is unknown, so a wrong name costs as long as a wrong password
_DUMMY_HASH = hash_password("not-a-real-password")


class UserError(ValueError):
    """A bad user name, role or password."""


def add_user(db: sqlite3.Connection, name: str, role: str, password: str, now: float) -> None:
    """Create or replace an account (caller holds a tx)."""
    if not NAME_RE.fullmatch(name):
        raise UserError("the name must be 1-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise UserError(f"the role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise UserError("the password must have at least 8 characters")
    db.execute("INSERT INTO users (name, role, hash, created_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash",
               (name, role, hash_password(password), now))


def lookup(db: sqlite3.Connection, name: str) -> tuple[str, str] | None:
    """(role, hash) of an account."""
    r = db.execute("SELECT role, hash FROM users WHERE name = ?", (name,)).fetchone()
    return (str(r[0]), str(r[1])) if r else None


LANGUAGES = ("en", "fr", "ar")  # the dashboard's (hub.i18n.LANGS)


def ensure_language_column(db: sqlite3.Connection) -> None:
    """Add the nullable ``users.language`` to a store made before it (caller holds a tx);
    PostgreSQL has it from its migration 3 (hub/pgstore.py)."""
    if dialect(db) == POSTGRESQL:
        return
    cols = {str(r[1]) for r in db.execute("PRAGMA table_info(users)")}
    if "language" not in cols:
        try:
            db.execute("ALTER TABLE users ADD COLUMN language TEXT")
        except sqlite3.OperationalError as exc:  # another worker added it meanwhile
            if "duplicate column" not in str(exc):
                raise


def language(db: sqlite3.Connection, name: str) -> str | None:
    """The dashboard language the user chose (None: not chosen, the browser's guess)."""
    r = db.execute("SELECT language FROM users WHERE name = ?", (name,)).fetchone()
    return str(r[0]) if r and r[0] in LANGUAGES else None


def set_language(db: sqlite3.Connection, name: str, lang: str | None) -> bool:
    """Remember the user's dashboard language (caller holds a tx); False: no such user."""
    if lang is not None and lang not in LANGUAGES:
        raise UserError(f"the language must be one of {', '.join(LANGUAGES)}")
    cur = db.execute("UPDATE users SET language = ? WHERE name = ?", (lang, name))
    return cur.rowcount == 1


def count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM users").fetchone()[0])


def fingerprint(role: str, password_hash: str) -> str:
    return hashlib.sha256(f"{role}\0{password_hash}".encode()).hexdigest()


@dataclass(frozen=True)
class Who:
    name: str
    role: str
    token: str
    csrf: str
    language: str | None = None  # the user's dashboard language (``language``), if chosen

    @property
    def technician(self) -> bool:
        return self.role == "technician"


class Sessions:
    """Logged-in technicians (in memory: a hub restart asks everyone to log in again)."""

    def __init__(self, cfg: DashboardConfig) -> None:
        self.cfg = cfg
        self.tokens = TokenStore()
        self._csrf: dict[str, str] = {}
        self._accounts: dict[str, str] = {}  # token -> hash of (role, password hash)
        window = cfg.lockout_minutes * 60
        self._lockout = LoginLockout(cfg.login_failures, window, lock_seconds=window)
        self._by_address = LoginLockout(cfg.login_failures * 4, window, lock_seconds=window)

    @staticmethod
    def _key(name: str, address: str) -> str:
        return f"{name[:64]}\0{address}"

    def locked(self, name: str, now: float, address: str = "") -> bool:
        return (self._lockout.locked_for(self._key(name, address), now) > 0
                or self._by_address.locked_for(address, now) > 0)

    def check_password(self, account: tuple[str, str] | None, password: str) -> bool:
        """Slow (scrypt): run it in a worker thread."""
        return verify_password(password, account[1] if account else _DUMMY_HASH) \
            and account is not None

    def failed(self, name: str, now: float, address: str = "") -> bool:
        """Count a failed login; True if the name (from there) or the address is now locked."""
        by_name = self._lockout.record_failure(self._key(name, address), now)
        return self._by_address.record_failure(address, now) or by_name

    def open(self, name: str, role: str, now: float, address: str = "",
             account_hash: str = "") -> Who:
        self._lockout.reset(self._key(name, address))
        token = self.tokens.issue(name, role, now, ttl=self.cfg.session_hours * 3600)
        csrf = self._csrf[token] = secrets.token_urlsafe(24)
        self._accounts[token] = fingerprint(role, account_hash)
        self.prune(now)
        return Who(name, role, token, csrf)

    def still_valid(self, who: Who, account: tuple[str, str] | None) -> bool:
        """The session's account still exists with the role and password it logged in with."""
        return account is not None and hmac.compare_digest(
            self._accounts.get(who.token, ""), fingerprint(*account))

    def prune(self, now: float) -> None:
        """Forget expired sessions' CSRF tokens and aged-out lockouts."""
        self._lockout.prune(now)
        self._by_address.prune(now)
        for token in [t for t in self._csrf if self.tokens.lookup(t, now) is None]:
            self._csrf.pop(token, None)
            self._accounts.pop(token, None)

    def get(self, token: str | None, now: float) -> Who | None:
        if not token:
            return None
        found = self.tokens.lookup(token, now)
        if found is None:
            self._csrf.pop(token, None)
            return None
        return Who(found[0], found[1], token, self._csrf.get(token, ""))

    def close(self, token: str) -> None:
        self.tokens.revoke(token)
        self._csrf.pop(token, None)
        self._accounts.pop(token, None)

    @staticmethod
    def csrf_ok(who: Who, sent: str | None) -> bool:
        return bool(sent) and bool(who.csrf) and hmac.compare_digest(who.csrf, sent or "")
