"""A private CA and the broker's server certificate, made with the ``openssl`` command.

The ``cryptography`` package is not a dependency; the ``openssl`` CLI is on every machine
that runs Mosquitto. Keys are EC P-256 (small certificates: the CA fits in an enrolment QR
code). The server certificate names the hosts agents connect to (subjectAltName), plus
127.0.0.1 and localhost for the hub on the broker's own machine.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provisioning.files import PUBLIC_MODE, SECRET_MODE, Owner

CA_DAYS = 3650
SERVER_DAYS = 3650  # a private CA, no browser rules; renewing means re-enrolling nobody
OPENSSL_TIMEOUT = 60.0
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class TlsError(RuntimeError):
    """openssl is missing or failed (the message says how)."""


@dataclass(frozen=True)
class CaFiles:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise TlsError("the openssl command was not found; install it (apt-get install openssl)")
    try:
        r = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [exe, *args], capture_output=True, text=True, check=False,
            timeout=OPENSSL_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TlsError(f"openssl {args[0]} took longer than {OPENSSL_TIMEOUT:.0f} s") from None
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise TlsError(f"openssl {args[0]} failed: {tail}")


def san_entries(hosts: list[str]) -> list[str]:
    """subjectAltName entries (``IP:...`` or ``DNS:...``) for hosts, loopback included."""
    out: list[str] = []
    for host in [*hosts, "127.0.0.1", "localhost"]:
        try:
            entry = f"IP:{ipaddress.ip_address(host)}"
        except ValueError:
            entry = f"DNS:{host}"
        if entry not in out:
            out.append(entry)
    return out


def make_ca(tls_dir: Path, common_name: str) -> CaFiles:
    """Create ``ca.crt`` (0644) and ``ca.key`` (0600) in ``tls_dir``."""
    ca = CaFiles(tls_dir / "ca.crt", tls_dir / "ca.key")
    old = os.umask(0o077)  # openssl writes the key with the umask's mode
    try:
        _openssl("req", "-x509", "-new", *_EC, "-keyout", str(ca.key), "-out", str(ca.cert),
                 "-days", str(CA_DAYS), "-subj", f"/CN={common_name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    finally:
        os.umask(old)
    os.chmod(ca.key, SECRET_MODE)
    os.chmod(ca.cert, PUBLIC_MODE)
    return ca


def make_server_cert(ca: CaFiles, cert: Path, key: Path, hosts: list[str],
                     owner: Owner | None = None) -> None:
    """Issue the broker's certificate for ``hosts``, signed by ``ca``; key 0600."""
    with tempfile.TemporaryDirectory(prefix="cac-provision-") as tmp:
        csr = Path(tmp) / "server.csr"
        ext = Path(tmp) / "server.ext"
        ext.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n"
            f"subjectAltName={','.join(san_entries(hosts))}\n"
        )
        old = os.umask(0o077)
        try:
            _openssl("req", "-new", *_EC, "-keyout", str(key), "-out", str(csr),
                     "-subj", f"/CN={hosts[0]}")
            _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert),
                     "-CAkey", str(ca.key), "-set_serial", f"0x{secrets.token_hex(16)}",
                     "-days", str(SERVER_DAYS), "-sha256", "-extfile", str(ext),
                     "-out", str(cert))
        finally:
            os.umask(old)
    os.chmod(key, SECRET_MODE)
    os.chmod(cert, PUBLIC_MODE)
    if owner is not None:
        os.chown(key, owner.uid, owner.gid)
        os.chown(cert, owner.uid, owner.gid)
