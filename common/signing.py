"""Ed25519 signatures of the hub's content catalogue and manifests (CONTRACT §10).

The ``cryptography`` package does the cryptography; this module only frames it. A signature
covers a purpose label and the exact bytes (``PURPOSE + b"\\n" + data``), so a signed
manifest can never pass as a catalogue or the other way round. Keys: the private key is a
PKCS#8 PEM file made by ``cac-provision init-hub`` (0600, beside hub.toml); the public key
travels as base64 of its 32 raw bytes (``[content] signing_key`` in agent.toml).
Signatures travel as base64 in the ``X-Content-Signature`` header.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADER = "X-Content-Signature"
CATALOGUE = b"cac-content-catalogue-v1"
MANIFEST = b"cac-content-manifest-v1"


class SigningError(ValueError):
    """A key that cannot be read or used; the message says which and why."""


def new_key_file(path: Path) -> str:
    """Write a new private key (PEM, mode 0600 from creation); its public key in base64."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return public_b64(key)


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningError(f"cannot read the signing key {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} is not an Ed25519 key")
    return key


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public(b64: str) -> Ed25519PublicKey:
    """The public key from its base64 text (agent.toml); SigningError if it is not one."""
    try:
        raw = base64.b64decode(b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise SigningError(f"not a base64 Ed25519 public key (32 bytes): {exc}") from None


def sign(key: Ed25519PrivateKey, purpose: bytes, data: bytes) -> str:
    return base64.b64encode(key.sign(purpose + b"\n" + data)).decode("ascii")


def verify(key: Ed25519PublicKey, purpose: bytes, data: bytes, signature: str | None) -> bool:
    """True only for a well-formed signature by ``key`` over ``purpose`` and ``data``."""
    if not signature:
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), purpose + b"\n" + data)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True
