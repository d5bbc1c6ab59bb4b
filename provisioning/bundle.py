"""Enrolment bundles: what an installer copies onto a CAC's box, as a file and as a QR code.

``enrol-ID.tar.gz`` holds ``enrol.json``, ``agent.toml`` (data_dir /var/lib/cac-agent),
``ca.crt`` when the broker uses TLS, and ``kiosk/STATION.env`` (CAC_AGENT_URL, CAC_STATION,
CAC_TOKEN) for each station. Every member is a secret (tokens, the broker password).

The QR code (``enrol-ID.png``) carries the same bundle: ``CACENROL1:`` followed by base64url
of zlib-compressed JSON ``{"format", "hub_id", "created_at", "agent_host", "agent", "ca"}``
where ``agent`` is the agent config without ``data_dir`` and ``ca`` the CA certificate in
base64 DER. ``files_from_qr_payload`` rebuilds byte-identical bundle files from it. A CAC
with many stations may not fit in a QR code (over ~45 stations, ~35 with TLS); then only the
tar.gz is written and add-cac says so.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import ssl
import tarfile
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import segno

from provisioning.configs import AGENT_DATA_DIR, TARIFF_EXAMPLES, to_toml
from provisioning.files import Owner, write_file

QR_PREFIX = "CACENROL1:"
QR_ERROR = "m"  # 15% of the symbol may be damaged (a printed sheet, a phone camera)
QR_SCALE = 4
ENROL_FORMAT = 1


class BundleError(ValueError):
    """A QR payload that is not an enrolment bundle of this format."""


@dataclass(frozen=True)
class Enrolment:
    hub_id: str
    created_at: str
    agent_host: str  # how the kiosks reach the agent
    agent: dict[str, Any]  # the agent config, without data_dir
    ca_pem: str | None = None

    @property
    def cac_id(self) -> str:
        return str(self.agent["cac_id"])

    @property
    def agent_port(self) -> int:
        return int(self.agent["http"]["port"])

    @property
    def stations(self) -> list[dict[str, str]]:
        return [{"id": s["id"], "token": s["token"]} for s in self.agent["stations"]]


def agent_toml(e: Enrolment, data_dir: str = AGENT_DATA_DIR) -> str:
    doc = {"cac_id": e.cac_id, "data_dir": data_dir}
    doc.update((k, v) for k, v in e.agent.items() if k not in doc)
    header = (f"agent.toml of CAC {e.cac_id} (hub {e.hub_id}), written by cac-provision "
              f"at {e.created_at}.\nIt holds secrets (broker password, station tokens): "
              "keep it mode 0600.")
    return to_toml(doc, header=header, trailer=TARIFF_EXAMPLES)


def enrol_json(e: Enrolment) -> dict[str, Any]:
    return {"format": ENROL_FORMAT, "cac_id": e.cac_id, "hub_id": e.hub_id,
            "created_at": e.created_at, "stations": e.stations,
            "agent_url_port": e.agent_port}


def kiosk_env(e: Enrolment, station: dict[str, str]) -> str:
    return (f"CAC_AGENT_URL=http://{e.agent_host}:{e.agent_port}\n"
            f"CAC_STATION={station['id']}\nCAC_TOKEN={station['token']}\n")


def bundle_files(e: Enrolment) -> dict[str, bytes]:
    """Name -> content of every file of the bundle, in archive order."""
    files = {
        "enrol.json": (json.dumps(enrol_json(e), indent=2) + "\n").encode(),
        "agent.toml": agent_toml(e).encode(),
    }
    if e.ca_pem is not None:
        files["ca.crt"] = e.ca_pem.encode()
    for st in e.stations:
        files[f"kiosk/{st['id']}.env"] = kiosk_env(e, st).encode()
    return files


def write_tarball(path: Path, files: dict[str, bytes], owner: Owner | None = None) -> None:
    """Write the bundle as a gzipped tar (0600, members 0600 owned by root:root)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    write_file(path, buf.getvalue(), owner=owner)


def read_tarball(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:gz") as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member)
            if f is not None:
                out[member.name] = f.read()
    return out


def enrolment_from_files(files: dict[str, bytes]) -> Enrolment:
    """The enrolment a bundle's files describe (the inverse of ``bundle_files``)."""
    try:
        enrol = json.loads(files["enrol.json"])
        agent = tomllib.loads(files["agent.toml"].decode())
        agent.pop("data_dir", None)
        host = ""
        for name, data in files.items():
            if name.startswith("kiosk/"):
                url = dict(line.split("=", 1) for line in data.decode().splitlines())
                host = url["CAC_AGENT_URL"].removeprefix("http://").rsplit(":", 1)[0]
                break
        ca = files.get("ca.crt")
        return Enrolment(hub_id=enrol["hub_id"], created_at=enrol["created_at"],
                         agent_host=host, agent=agent,
                         ca_pem=None if ca is None else ca.decode())
    except (KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise BundleError(f"not an enrolment bundle: {exc}") from None


# ---------------------------------------------------------------- QR code


def qr_payload(e: Enrolment) -> str:
    doc: dict[str, Any] = {"format": ENROL_FORMAT, "hub_id": e.hub_id,
                           "created_at": e.created_at, "agent_host": e.agent_host,
                           "agent": e.agent}
    if e.ca_pem is not None:
        doc["ca"] = base64.b64encode(ssl.PEM_cert_to_DER_cert(e.ca_pem)).decode()
    raw = json.dumps(doc, separators=(",", ":")).encode()  # key order makes agent.toml
    packed = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")
    return QR_PREFIX + packed


def enrolment_from_qr(payload: str) -> Enrolment:
    """The inverse of ``qr_payload``; BundleError if it is not one."""
    if not payload.startswith(QR_PREFIX):
        raise BundleError(f"not a CAC enrolment code (no {QR_PREFIX} prefix)")
    body = payload[len(QR_PREFIX):]
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        doc = json.loads(raw)
        ca = doc.get("ca")
        return Enrolment(
            hub_id=doc["hub_id"], created_at=doc["created_at"], agent_host=doc["agent_host"],
            agent=doc["agent"],
            ca_pem=None if ca is None else ssl.DER_cert_to_PEM_cert(base64.b64decode(ca)))
    except (ValueError, zlib.error, binascii.Error, KeyError, TypeError) as exc:
        raise BundleError(f"damaged enrolment code: {exc}") from None


def files_from_qr_payload(payload: str) -> dict[str, bytes]:
    """The bundle's files, rebuilt from what the QR code says."""
    return bundle_files(enrolment_from_qr(payload))


def write_qr(path: Path, e: Enrolment, owner: Owner | None = None) -> bool:
    """Write the QR code PNG (0600: it holds the secrets); False if the bundle is too big."""
    try:
        qr = make_qr(e)
    except segno.DataOverflowError:
        return False
    write_file(path, qr_png(qr), owner=owner)
    return True


def qr_png(qr: segno.QRCode) -> bytes:
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=QR_SCALE, border=4)
    return buf.getvalue()


def make_qr(e: Enrolment) -> segno.QRCode:
    """The QR symbol of an enrolment; segno.DataOverflowError if it does not fit."""
    return segno.make(qr_payload(e), error=QR_ERROR, micro=False, boost_error=False)
