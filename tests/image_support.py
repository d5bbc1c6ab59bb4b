"""Helpers for the device image tests (tests/images/): enrolment bundles made with tarfile in
the format of common.md (`cac-provision add-cac` is not needed), and the first-boot script."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

IMAGES = Path(__file__).resolve().parents[1] / "images"
OVERLAY = IMAGES / "overlay"
FIRSTBOOT = IMAGES / "cac_firstboot.py"
UNITS = ("cac-agent.service", "cac-kiosk.service", "cac-firstboot.service",
         "cac-print-queues.service")
CAC_ID = "ma-oriental-oujda-001"
BUNDLE_NAME = f"enrol-{CAC_ID}.tar.gz"
TOKENS = {"s1": "tok-s1-0123456789abcdef", "s2": "tok-s2-0123456789abcdef"}


def agent_toml(cac_id: str = CAC_ID, port: int = 8081, mqtt_host: str = "10.20.0.5",
               hub_url: str | None = "http://10.20.0.5:8080") -> str:
    stations = "".join(f'[[stations]]\nid = "{sid}"\ntoken = "{tok}"\n'
                       for sid, tok in TOKENS.items())
    content = f'[content]\nhub_url = "{hub_url}"\n' if hub_url else ""
    return f"""cac_id = "{cac_id}"
data_dir = "/var/lib/cac-agent"
timezone = "Africa/Casablanca"

[mqtt]
host = "{mqtt_host}"
port = 8883
username = "{cac_id}"
password = "broker-secret"
tls = true

[http]
host = "0.0.0.0"
port = {port}

{stations}
[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 60

{content}"""


def enrol_json(cac_id: str = CAC_ID, port: int = 8081) -> dict[str, Any]:
    return {"format": 1, "cac_id": cac_id, "hub_id": "hub-oriental",
            "created_at": "2026-06-10T09:00:00Z",
            "stations": [{"id": k, "token": v} for k, v in TOKENS.items()],
            "agent_url_port": port}


def write_bundle(path: Path, *, enrol: Any = None, toml: str | None = None,
                 ca: bytes | None = b"-----BEGIN CERTIFICATE-----\nfake\n",
                 extra: dict[str, bytes] | None = None, omit: tuple[str, ...] = (),
                 links: dict[str, str] | None = None) -> Path:
    files: dict[str, bytes] = {
        "enrol.json": json.dumps(enrol if enrol is not None else enrol_json()).encode(),
        "agent.toml": (toml if toml is not None else agent_toml()).encode(),
    }
    if ca is not None:
        files["ca.crt"] = ca
    for sid, tok in TOKENS.items():
        files[f"kiosk/{sid}.env"] = (f"CAC_AGENT_URL=http://cac.local:8081\nCAC_STATION={sid}\n"
                                     f"CAC_TOKEN={tok}\n").encode()
    files.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in sorted(files.items()):
            if name in omit:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def load_firstboot() -> ModuleType:
    """images/cac_firstboot.py imported as a module (for its pure functions)."""
    spec = importlib.util.spec_from_file_location("cac_firstboot", FIRSTBOOT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cac_firstboot"] = mod
    spec.loader.exec_module(mod)
    return mod


@dataclass
class Built:
    root: Path
    tarball: Path
    seconds: float
    log: str


@contextmanager
def scratch_root(built: Built, work: Path) -> Iterator[Path]:
    """An overlay of the built tree under ``work``: writes go to ``work/upper``, the image
    stays as built for the next test."""
    upper, lower_work, merged = work / "upper", work / "work", work / "root"
    for d in (upper, lower_work, merged):
        d.mkdir(parents=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={built.root},upperdir={upper},workdir={lower_work}",
                    str(merged)], check=True, capture_output=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=False, capture_output=True)
