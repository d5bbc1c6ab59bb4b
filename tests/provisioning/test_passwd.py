"""Mosquitto's password hash made in Python (the broker accepting it: test_broker_acl)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from provisioning.passwd import hash_password, password_file, verify_password


def test_hash_has_mosquitto_2_format_and_verifies() -> None:
    h = hash_password("s3cret")
    m = re.fullmatch(r"\$7\$101\$([A-Za-z0-9+/]{16})\$([A-Za-z0-9+/]{86}==)", h)
    assert m, h
    assert verify_password("s3cret", h)
    assert not verify_password("s3cret!", h)
    assert hash_password("s3cret") != h  # a new salt each time


def test_same_salt_same_hash_and_iterations_are_encoded() -> None:
    salt = bytes(range(12))
    assert hash_password("x", salt=salt) == hash_password("x", salt=salt)
    h = hash_password("x", salt=salt, iterations=1000)
    assert h.startswith("$7$1000$AAECAwQFBgcICQoL$")
    assert verify_password("x", h)


def test_verifies_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        pytest.fail("mosquitto_passwd not installed (Debian package mosquitto)", pytrace=False)
    f = tmp_path / "pw"
    subprocess.run([exe, "-b", "-c", str(f), "alice", "open sesame"], check=True, timeout=10,
                   capture_output=True)
    user, hashed = f.read_text().strip().split(":", 1)
    assert user == "alice"
    assert verify_password("open sesame", hashed)
    assert not verify_password("open sesame ", hashed)


def test_password_file_sorted_one_line_per_user() -> None:
    assert password_file({"b": "$7$h2", "a": "$7$h1"}) == "a:$7$h1\nb:$7$h2\n"
