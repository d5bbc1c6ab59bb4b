"""Passwords (salted scrypt) and bearer tokens held in memory, for operators and technicians.

Pure apart from drawing salts and tokens from ``secrets``: times are monotonic seconds
passed in by the caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
MAX_PASSWORD_CHARS = 1024
DEFAULT_TOKEN_TTL_SECONDS = 12 * 3600

_SCHEME = "scrypt"
# Bounds on parameters read back from a stored hash, so a tampered or corrupt record
# cannot make verification allocate gigabytes or spin for minutes.
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16
_MAX_MEM = 256 * 1024 * 1024
_DIGITS = re.compile(r"[1-9][0-9]{0,9}")


def _encode_pw(pw: str) -> bytes:
    # NFKC so the same password typed on two keyboards (Arabic presentation forms,
    # full-width digits, composed vs decomposed accents) hashes the same.
    return unicodedata.normalize("NFKC", pw).encode("utf-8")


def _scrypt(pw: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        _encode_pw(pw), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_MAX_MEM + 1024 * 1024
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(pw: str) -> str:
    """``scrypt$N$r$p$<salt b64>$<hash b64>`` for a new random salt."""
    if not isinstance(pw, str):
        raise TypeError("password must be a str")
    if not pw:
        raise ValueError("password must not be empty")
    if len(pw) > MAX_PASSWORD_CHARS:
        raise ValueError(f"password must be at most {MAX_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(pw, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


@dataclass(frozen=True)
class _Parsed:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _parse(encoded: object) -> _Parsed | None:
    """The fields of a stored hash, or None if it is not one this module could have made."""
    if not isinstance(encoded, str):
        return None
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return None
    if not all(_DIGITS.fullmatch(part) for part in parts[1:4]):
        return None
    n, r, p = (int(part) for part in parts[1:4])
    if n < 2 or n & (n - 1) or n > _MAX_N or r > _MAX_R or p > _MAX_P:
        return None
    if 128 * r * n * p > _MAX_MEM:
        return None
    try:
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        return None
    if not 8 <= len(salt) <= 64 or not 16 <= len(digest) <= 64:
        return None
    return _Parsed(n=n, r=r, p=p, salt=salt, digest=digest)


def verify_password(pw: str, encoded: str) -> bool:
    """True if ``pw`` matches ``encoded``; False for a wrong password or a malformed hash."""
    if not isinstance(pw, str) or not pw or len(pw) > MAX_PASSWORD_CHARS:
        return False
    parsed = _parse(encoded)
    if parsed is None:
        return False
    try:
        candidate = _scrypt(pw, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.digest))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, parsed.digest)


def needs_rehash(encoded: str) -> bool:
    """True if ``encoded`` was not made with today's parameters (rehash at next login)."""
    parsed = _parse(encoded)
    if parsed is None:
        return True
    return (parsed.n, parsed.r, parsed.p, len(parsed.salt), len(parsed.digest)) != (
        SCRYPT_N,
        SCRYPT_R,
        SCRYPT_P,
        SALT_BYTES,
        SCRYPT_DKLEN,
    )


def new_token() -> str:
    """A fresh unguessable bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class _Grant:
    subject: str
    role: str
    expires_at: float


class TokenStore:
    """Bearer tokens issued at login, each naming a subject and role until it expires."""

    def __init__(self) -> None:
        self._grants: dict[str, _Grant] = {}

    def __len__(self) -> int:
        """Number of tokens held (expired ones are dropped as they are met)."""
        return len(self._grants)

    def issue(
        self, subject: str, role: str, now: float, ttl: float = DEFAULT_TOKEN_TTL_SECONDS
    ) -> str:
        """A new token for ``subject`` acting as ``role``, valid until ``now + ttl``."""
        if not ttl > 0:
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        self._drop_expired(now)
        token = new_token()
        self._grants[token] = _Grant(subject=subject, role=role, expires_at=now + ttl)
        return token

    def lookup(self, token: str, now: float) -> tuple[str, str] | None:
        """``(subject, role)`` for a live token, else None; an expired token is dropped."""
        if not isinstance(token, str):
            return None
        grant = self._grants.get(token)
        if grant is None:
            return None
        if now >= grant.expires_at:
            del self._grants[token]
            return None
        return grant.subject, grant.role

    def revoke(self, token: str) -> bool:
        """Forget ``token``; True if it was held."""
        return self._grants.pop(token, None) is not None

    def revoke_subject(self, subject: str) -> int:
        """Forget every token of ``subject`` (logout everywhere, password change); the count."""
        doomed = [t for t, g in self._grants.items() if g.subject == subject]
        for token in doomed:
            del self._grants[token]
        return len(doomed)

    def _drop_expired(self, now: float) -> None:
        expired = [t for t, g in self._grants.items() if now >= g.expires_at]
        for token in expired:
            del self._grants[token]
