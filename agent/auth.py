"""Operator passwords (salted scrypt), bearer tokens and the login lockout's limits.

The rules themselves live in ``common.passwords`` and ``common.lockout``; this module keeps
the agent's names for them and the operator login limits.
"""

from __future__ import annotations

from common.lockout import LoginLockout as LoginLockout
from common.passwords import DEFAULT_TOKEN_TTL_SECONDS as DEFAULT_TOKEN_TTL_SECONDS
from common.passwords import MAX_PASSWORD_CHARS as MAX_PASSWORD_CHARS
from common.passwords import SALT_BYTES as SALT_BYTES
from common.passwords import SCRYPT_DKLEN as SCRYPT_DKLEN
from common.passwords import SCRYPT_N as SCRYPT_N
from common.passwords import SCRYPT_P as SCRYPT_P
from common.passwords import SCRYPT_R as SCRYPT_R
from common.passwords import TokenStore as TokenStore
from common.passwords import hash_password as hash_password
from common.passwords import needs_rehash as needs_rehash
from common.passwords import new_token as new_token
from common.passwords import verify_password as verify_password

LOGIN_NAME_FAILURES = 5  # failed logins for one name ...
LOGIN_CLIENT_FAILURES = 20  # ... or from one client address (a shared counter PC) ...
LOGIN_WINDOW_SECONDS = 15 * 60  # ... within this window ...
LOGIN_LOCK_SECONDS = 15 * 60  # ... lock further attempts for this long
