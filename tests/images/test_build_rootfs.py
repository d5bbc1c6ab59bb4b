"""Slow: build the device root filesystem with images/build-rootfs.sh (debootstrap, Debian's
packages, the project's wheel) and run the real programs in it with chroot: cac-agent
--version and quote, the first-boot enrolment, systemd-analyze verify, nft -c.

Needs root, debootstrap and the network to the package registries; run with
`pytest -m slow tests/images`. CAC_IMAGE_WORKDIR=DIR builds under DIR (about 1 GB)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from image_support import BUNDLE_NAME, CAC_ID, IMAGES, TOKENS, write_bundle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="building a root filesystem needs root"),
    pytest.mark.skipif(shutil.which("debootstrap") is None,
                       reason="debootstrap is missing: apt-get install debootstrap"),
]
BUILD_TIMEOUT = 40 * 60


@dataclass
class Built:
    root: Path
    tarball: Path
    seconds: float
    log: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    base = os.environ.get("CAC_IMAGE_WORKDIR")
    work = Path(tempfile.mkdtemp(prefix="cac-image-", dir=base)) if base \
        else tmp_path_factory.mktemp("image")
    try:
        t0 = time.monotonic()
        r = subprocess.run(["bash", str(IMAGES / "build-rootfs.sh"), "--out",
                            str(work / "rootfs"), "--tarball", str(work / "rootfs.tar.gz")],
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
        seconds = time.monotonic() - t0
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        yield Built(work / "rootfs", work / "rootfs.tar.gz", seconds, r.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # about 1 GB


def chroot(b: Built, *cmd: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    spec = [f"--userspec={user}:{user}"] if user else []
    return subprocess.run(["chroot", *spec, str(b.root), *cmd], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
                               "KIVY_HOME": "/tmp/kivy", "KIVY_NO_FILELOG": "1"})


def test_build_time_and_size(built: Built) -> None:
    size = built.tarball.stat().st_size
    print(f"build: {built.seconds:.0f} s; image tarball {size / 1e6:.0f} MB")
    assert re.search(r"image tarball: .* \d+ bytes", built.log)
    assert 50e6 < size < 1.5e9


def test_cac_agent_version_and_quote(built: Built) -> None:
    r = chroot(built, "/opt/cac/venv/bin/cac-agent", "--version")
    assert r.returncode == 0 and r.stdout.startswith("cac-agent "), r.stderr
    (built.root / "tmp/agent.toml").write_text(f"""cac_id = "{CAC_ID}"
data_dir = "/tmp/agent-data"
timezone = "Africa/Casablanca"
[mqtt]
host = "127.0.0.1"
port = 1883
[http]
host = "0.0.0.0"
port = 8081
[[stations]]
id = "s1"
token = "station-one-token-0001"
[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 60
""")
    r = chroot(built, "/opt/cac/venv/bin/cac-agent", "quote", "--config", "/tmp/agent.toml",
               "--minutes", "30", "--start", "2026-06-10T10:00")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"minutes": 30, "fee": 400, "currency": "MAD"}


def test_kiosk_stack_and_fonts(built: Built) -> None:
    r = chroot(built, "/opt/cac/venv/bin/python", "-c", "import kivy, arabic_reshaper, bidi")
    assert r.returncode == 0, r.stderr
    r = chroot(built, "/opt/cac/venv/bin/cac-kiosk", "--version")
    assert r.returncode == 0 and r.stdout.startswith("cac-kiosk "), r.stderr
    fonts = built.root / "usr/share/fonts/truetype/noto"
    assert (fonts / "NotoNaskhArabic-Regular.ttf").exists()
    assert (fonts / "NotoSansTifinagh-Regular.ttf").exists()
    for exe in ("usr/bin/cage", "usr/bin/Xwayland", "usr/bin/mosquitto_pub", "usr/sbin/nft"):
        assert (built.root / exe).exists(), exe


def test_enrol_inside_the_image(built: Built) -> None:
    """The first-boot script as systemd would run it, with the image's own Python,
    systemctl and users; then the agent reads its config as the cac-agent user."""
    write_bundle(built.root / "boot/firmware" / BUNDLE_NAME)
    r = chroot(built, "/opt/cac/venv/bin/python", "/usr/local/sbin/cac-firstboot")
    assert r.returncode == 0, r.stderr
    wants = built.root / "etc/systemd/system"
    assert (wants / "multi-user.target.wants/cac-agent.service").is_symlink()
    assert (wants / "graphical.target.wants/cac-kiosk.service").is_symlink()
    assert not (wants / "multi-user.target.wants/cac-firstboot.service").exists()
    assert (wants / "sysinit.target.wants/nftables.service").is_symlink()  # Debian's [Install]

    ok = chroot(built, "/opt/cac/venv/bin/cac-agent", "check-config", "--config",
                "/etc/cac-agent/agent.toml", user="cac-agent")
    assert ok.returncode == 0, ok.stderr
    denied = chroot(built, "/usr/bin/cat", "/etc/cac-agent/agent.toml", user="cac-kiosk")
    assert denied.returncode != 0  # the broker password is for the agent only
    env = chroot(built, "/usr/bin/cat", "/etc/cac-kiosk/kiosk.env", user="cac-kiosk")
    assert f"CAC_TOKEN={TOKENS['s1']}" in env.stdout

    # the units, with the real programs they start
    v = chroot(built, "systemd-analyze", "verify", "cac-agent.service", "cac-kiosk.service",
               "cac-firstboot.service")
    assert (v.returncode, v.stderr) == (0, "")
    # the firewall with this device's values
    n = chroot(built, "nft", "-c", "-f", "/etc/nftables.conf")
    assert (n.returncode, n.stderr) == (0, "")
