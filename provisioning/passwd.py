"""Mosquitto's own password-file hash (PBKDF2-SHA512, ``$7$``), made in Python.

Mosquitto 2.0 reads ``user:$7$ITERATIONS$SALT_B64$HASH_B64`` (a 12-byte salt, a 64-byte
PBKDF2-HMAC-SHA512 digest, standard base64 with padding), the format ``mosquitto_passwd``
writes. We keep its default of 101 iterations: every password we hash is a random
192-bit secret, so slowing a guesser down buys nothing, while thousands of CACs
reconnecting after a broker restart each cost the broker one hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

ITERATIONS = 101
SALT_BYTES = 12
_LINE_RE = re.compile(r"\$7\$([0-9]+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)")


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = ITERATIONS) -> str:
    """The ``$7$...`` hash of ``password`` that Mosquitto's password_file accepts."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    salt_b64 = base64.b64encode(salt).decode()
    return f"$7${iterations}${salt_b64}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True if ``password`` matches a ``$7$`` hash (for tests and sanity checks)."""
    m = _LINE_RE.fullmatch(hashed)
    if not m:
        return False
    salt = base64.b64decode(m.group(2))
    want = base64.b64decode(m.group(3))
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(m.group(1)))
    return hmac.compare_digest(got, want)


def password_file(hashes: dict[str, str]) -> str:
    """The text of a Mosquitto password file, one ``user:hash`` line per user, sorted."""
    return "".join(f"{user}:{hashes[user]}\n" for user in sorted(hashes))
