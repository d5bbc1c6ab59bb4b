"""Password hashing and the token store (agent/auth.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from agent.auth import (
    TokenStore,
    hash_password,
    needs_rehash,
    new_token,
    verify_password,
)

HASH_RE = re.compile(r"scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)")


@pytest.fixture(scope="module")
def stored() -> str:
    """One hash shared by the tests that only read it (scrypt is slow on purpose)."""
    return hash_password("correct horse")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_hash(pw: str, *, n: int, r: int, p: int, salt: bytes, dklen: int = 32) -> str:
    digest = hashlib.scrypt(pw.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen)
    return f"scrypt${n}${r}${p}${b64(salt)}${b64(digest)}"


# --- hashing -------------------------------------------------------------------------------


def test_hash_format_and_slow_parameters(stored: str) -> None:
    match = HASH_RE.fullmatch(stored)
    assert match, stored
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    assert (n, r, p) == (2**14, 8, 1)
    # Cost is at least N=2**14, r=8: 16 MiB of memory per guess.
    assert 128 * n * r >= 16 * 1024 * 1024
    salt = base64.b64decode(match.group(4))
    digest = base64.b64decode(match.group(5))
    assert len(salt) == 16
    assert len(digest) == 32
    assert "correct horse" not in stored


def test_hash_matches_reference_scrypt(stored: str) -> None:
    parts = stored.split("$")
    salt = base64.b64decode(parts[4])
    expected = hashlib.scrypt(b"correct horse", salt=salt, n=2**14, r=8, p=1, dklen=32)
    assert base64.b64decode(parts[5]) == expected


def test_verify_right_and_wrong(stored: str) -> None:
    assert verify_password("correct horse", stored) is True
    assert verify_password("correct horsE", stored) is False
    assert verify_password("correct horse ", stored) is False
    assert verify_password("wrong", stored) is False


def test_same_password_hashes_differ_by_salt() -> None:
    a = hash_password("s3cret")
    b = hash_password("s3cret")
    assert a != b
    assert a.split("$")[4] != b.split("$")[4]
    assert verify_password("s3cret", a)
    assert verify_password("s3cret", b)


def test_unicode_password_normalised() -> None:
    composed = "caf\u00e9-\u0645\u0631\u062d\u0628\u0627"
    decomposed = "cafe\u0301-\u0645\u0631\u062d\u0628\u0627"
    encoded = hash_password(composed)
    assert verify_password(composed, encoded)
    assert verify_password(decomposed, encoded)
    assert not verify_password("cafe-\u0645\u0631\u062d\u0628\u0627", encoded)


def test_empty_password_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_overlong_password_rejected() -> None:
    hash_password("x" * 1024)  # the limit itself is fine
    with pytest.raises(ValueError, match="at most 1024"):
        hash_password("x" * 1025)


def test_non_string_password_rejected() -> None:
    with pytest.raises(TypeError):
        hash_password(b"bytes")  # type: ignore[arg-type]


def test_verify_rejects_unusable_passwords_without_raising(stored: str) -> None:
    assert verify_password("", stored) is False
    assert verify_password("x" * 1025, stored) is False
    assert verify_password(None, stored) is False  # type: ignore[arg-type]


def test_old_parameters_still_verify_but_need_rehash() -> None:
    old = make_hash("pw", n=2**10, r=8, p=1, salt=b"0123456789abcdef")
    assert verify_password("pw", old) is True
    assert verify_password("pw2", old) is False
    assert needs_rehash(old) is True


def test_current_hash_needs_no_rehash(stored: str) -> None:
    assert needs_rehash(stored) is False


@pytest.mark.parametrize(
    "encoded",
    [
        "scrypt$16384$8$2$c2FsdHNhbHRzYWx0c2FsdA==$" + b64(b"\0" * 32),  # p differs
        "scrypt$16384$8$1$" + b64(b"short-salt") + "$" + b64(b"\0" * 32),  # salt size
        "scrypt$16384$8$1$" + b64(b"s" * 16) + "$" + b64(b"\0" * 64),  # dklen
        "garbage",
    ],
)
def test_needs_rehash_when_anything_differs(encoded: str) -> None:
    assert needs_rehash(encoded) is True


GOOD_SALT = b64(b"s" * 16)
GOOD_HASH = b64(b"h" * 32)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "scrypt",
        "plaintext-password",
        f"bcrypt$16384$8$1${GOOD_SALT}${GOOD_HASH}",
        f"scrypt$16384$8$1${GOOD_SALT}",  # missing field
        f"scrypt$16384$8$1${GOOD_SALT}${GOOD_HASH}$extra",
        f"scrypt$abc$8$1${GOOD_SALT}${GOOD_HASH}",
        f"scrypt$-16384$8$1${GOOD_SALT}${GOOD_HASH}",
        f"scrypt$+16384$8$1${GOOD_SALT}${GOOD_HASH}",
        f"scrypt$ 16384$8$1${GOOD_SALT}${GOOD_HASH}",
        f"scrypt$016384$8$1${GOOD_SALT}${GOOD_HASH}",
        f"scrypt$0$8$1${GOOD_SALT}${GOOD_HASH}",
        f"scrypt$16383$8$1${GOOD_SALT}${GOOD_HASH}",  # N not a power of two
        f"scrypt$1073741824$8$1${GOOD_SALT}${GOOD_HASH}",  # absurd memory: refuse, not hang
        f"scrypt$16384$1000$1${GOOD_SALT}${GOOD_HASH}",
        f"scrypt$16384$8$1000${GOOD_SALT}${GOOD_HASH}",
        f"scrypt$16384$8$1$not*base64${GOOD_HASH}",
        f"scrypt$16384$8$1${GOOD_SALT}$not*base64",
        f"scrypt$16384$8$1$$${GOOD_HASH}",
        f"scrypt$16384$8$1${GOOD_SALT}$",
        f"scrypt$16384$8$1${b64(b'ab')}${GOOD_HASH}",  # salt too short
        f"scrypt$16384$8$1${GOOD_SALT}${b64(b'abc')}",  # digest too short
    ],
)
def test_malformed_encoding_is_false_not_error(encoded: str) -> None:
    assert verify_password("correct horse", encoded) is False
    assert needs_rehash(encoded) is True


@pytest.mark.parametrize("encoded", [None, 42, b"scrypt$16384$8$1$x$y"])
def test_non_string_encoding_is_false(encoded: object) -> None:
    assert verify_password("pw", encoded) is False  # type: ignore[arg-type]
    assert needs_rehash(encoded) is True  # type: ignore[arg-type]


def test_verify_uses_constant_time_compare(monkeypatch: pytest.MonkeyPatch, stored: str) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify_password("correct horse", stored)
    assert len(calls) == 1


# --- tokens --------------------------------------------------------------------------------


def test_new_token_is_long_random_urlsafe() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), token


def test_issue_and_lookup() -> None:
    store = TokenStore()
    token = store.issue("amina", "manager", now=100.0)
    assert store.lookup(token, 100.0) == ("amina", "manager")
    assert store.lookup(token, 100.0 + 12 * 3600 - 1) == ("amina", "manager")
    assert store.lookup("not-a-token", 100.0) is None


def test_tokens_are_distinct_per_login() -> None:
    store = TokenStore()
    a = store.issue("amina", "manager", now=0.0)
    b = store.issue("amina", "manager", now=0.0)
    assert a != b
    assert store.lookup(a, 1.0) == store.lookup(b, 1.0) == ("amina", "manager")


def test_default_ttl_is_twelve_hours() -> None:
    store = TokenStore()
    token = store.issue("youssef", "operator", now=0.0)
    assert store.lookup(token, 12 * 3600 - 0.001) == ("youssef", "operator")
    assert store.lookup(token, 12 * 3600) is None


def test_expired_token_dropped() -> None:
    store = TokenStore()
    token = store.issue("youssef", "operator", now=0.0, ttl=60)
    assert len(store) == 1
    assert store.lookup(token, 60.0) is None
    assert len(store) == 0
    # Gone for good: even a clock read from the past does not bring it back.
    assert store.lookup(token, 10.0) is None


def test_issue_sweeps_expired_tokens() -> None:
    store = TokenStore()
    for i in range(50):
        store.issue(f"op{i}", "operator", now=0.0, ttl=10)
    assert len(store) == 50
    store.issue("late", "operator", now=11.0)
    assert len(store) == 1


def test_revoke() -> None:
    store = TokenStore()
    a = store.issue("amina", "manager", now=0.0)
    b = store.issue("youssef", "operator", now=0.0)
    assert store.revoke(a) is True
    assert store.lookup(a, 1.0) is None
    assert store.lookup(b, 1.0) == ("youssef", "operator")
    assert store.revoke(a) is False


def test_revoke_subject() -> None:
    store = TokenStore()
    mine = [store.issue("amina", "manager", now=0.0) for _ in range(3)]
    other = store.issue("youssef", "operator", now=0.0)
    assert store.revoke_subject("amina") == 3
    assert all(store.lookup(t, 1.0) is None for t in mine)
    assert store.lookup(other, 1.0) == ("youssef", "operator")
    assert store.revoke_subject("amina") == 0


@pytest.mark.parametrize("ttl", [0, -1, float("nan")])
def test_bad_ttl_rejected(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        TokenStore().issue("amina", "manager", now=0.0, ttl=ttl)


def test_lookup_non_string_token() -> None:
    store = TokenStore()
    store.issue("amina", "manager", now=0.0)
    assert store.lookup(None, 1.0) is None  # type: ignore[arg-type]
