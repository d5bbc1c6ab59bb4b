"""Slow: build the device root filesystem with images/build-rootfs.sh (debootstrap, Debian's
packages, the project's wheel) and run the real programs in it with chroot: cac-agent
--version and quote, the first-boot enrolment, systemd-analyze verify, nft -c.

Needs root, debootstrap and the network to the package registries; run with
`pytest -m slow tests/images` (the tree is built once per session: tests/images/conftest.py)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from image_support import BUNDLE_NAME, CAC_ID, TOKENS, Built, scratch_root, write_bundle

from kiosk.desktop import DATA as KIOSK_DATA

pytestmark = pytest.mark.slow
# What the image holds, apparent sizes measured on 2026-12-03 (issue 22's build): Chromium
# 0.33 GB (/usr/lib/chromium), LibreOffice Writer + Calc 0.24 GB (/usr/lib/libreoffice), the
# project's venv 0.17 GB (Kivy with its SDL2, aiohttp, paho, psutil...), fonts 0.06 GB (Noto
# for Arabic and Tifinagh, DejaVu, Carlito), the rest (Debian minbase, systemd, Python, Xorg,
# Mesa, openbox and the libraries of all of these) 0.8 GB: 1.6 GB on disk, 0.64 GB as tar.gz.
# The bound leaves about 25 % for Debian's point releases; past it, something came in that
# nobody chose (recommended packages, a second browser, a kernel without --extra-packages).
TARBALL_MAX_BYTES = 800e6
# without Chromium or LibreOffice the tarball would be far smaller; the parts are checked
# one by one below (test_citizen_computer_is_installed)
PARTS_MIN_MB = {"usr/lib/chromium": 200, "usr/lib/libreoffice": 150, "opt/cac/venv": 50}


def chroot(b: Built, *cmd: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    spec = [f"--userspec={user}:{user}"] if user else []
    return subprocess.run(["chroot", *spec, str(b.root), *cmd], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
                               "KIVY_HOME": "/tmp/kivy", "KIVY_NO_FILELOG": "1"})


def apparent_mb(path: Path) -> int:
    r = subprocess.run(["du", "-s", "-m", "--apparent-size", str(path)], capture_output=True,
                       text=True, check=True)
    return int(r.stdout.split()[0])


def test_build_time_and_size(built: Built) -> None:
    size = built.tarball.stat().st_size
    parts = {p: apparent_mb(built.root / p) for p in PARTS_MIN_MB}
    print(f"build: {built.seconds:.0f} s; image tarball {size / 1e6:.0f} MB (bound "
          f"{TARBALL_MAX_BYTES / 1e6:.0f} MB); on disk {apparent_mb(built.root)} MB, of which "
          + ", ".join(f"{p} {mb} MB" for p, mb in parts.items()))
    assert re.search(r"image tarball: .* \d+ bytes", built.log)
    assert size < TARBALL_MAX_BYTES
    for part, least in PARTS_MIN_MB.items():
        assert parts[part] >= least, part


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
    for exe in ("usr/lib/xorg/Xorg", "usr/bin/xinit", "usr/bin/openbox", "usr/bin/xdotool",
                "usr/bin/wmctrl", "usr/bin/xhost", "usr/bin/xprop", "usr/bin/sudo",
                "usr/bin/mosquitto_pub", "usr/sbin/nft", "usr/local/lib/cac/kiosk-session"):
        assert (built.root / exe).exists(), exe


def test_citizen_computer_is_installed(built: Built) -> None:
    """Issue 22 on the image: Chromium, LibreOffice Writer and Calc, the X session, each
    configured as the kiosk uses it (the same policy files as kiosk/citizen)."""
    pkgs = ("chromium", "libreoffice-writer", "libreoffice-calc", "openbox", "xinit",
            "xserver-xorg-core", "fonts-crosextra-carlito")
    r = chroot(built, "dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *pkgs)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")[:-1]) == sorted(f"{p} installed" for p in pkgs)
    r = chroot(built, "/usr/lib/chromium/chromium", "--version")
    assert r.returncode == 0 and r.stdout.startswith("Chromium "), r.stderr
    assert (built.root / "usr/lib/libreoffice/program/soffice.bin").exists()
    # Chromium's managed policies and LibreOffice without macros, as in the kiosk's own data
    policy = built.root / "etc/chromium/policies/managed/cac-citizen.json"
    image_policy = json.loads(policy.read_text())
    assert image_policy["DeveloperToolsAvailability"] == 2
    assert image_policy == json.loads((KIOSK_DATA / "chromium-policy.json").read_text())
    xcd = (built.root / "etc/libreoffice/registry/cac-citizen.xcd").read_text()
    assert "MacroSecurityLevel" in xcd
    # the users, the sudo rules (valid: a syntax error would lock the kiosk out of them)
    for user in ("cac-agent", "cac-kiosk", "cac-citizen"):
        assert chroot(built, "getent", "passwd", user).returncode == 0, user
    v = chroot(built, "visudo", "-c")
    assert v.returncode == 0 and "cac-citizen: parsed OK" in v.stdout, v.stdout + v.stderr
    assert (built.root / "etc/sudoers.d/cac-citizen").stat().st_mode & 0o777 == 0o440
    kiosk = (built.root / "etc/cac-kiosk/kiosk.toml").read_text()
    assert "[desktop]" in kiosk and 'user = "cac-citizen"' in kiosk
    assert (built.root / "etc/xdg/openbox/cac-rc.xml").exists()
    # the kiosk's own packages can be imported inside the image
    r = chroot(built, "/opt/cac/venv/bin/python", "-c",
               "import kiosk.desktop, kiosk.bar, kiosk.usb; print(kiosk.desktop.CITIZEN_USER)")
    assert (r.returncode, r.stdout.strip()) == (0, "cac-citizen"), r.stderr


@pytest.fixture
def enrolled(built: Built, tmp_path: Path) -> Iterator[Built]:
    with scratch_root(built, tmp_path / "overlay") as root:
        yield replace(built, root=root)


def test_enrol_inside_the_image(enrolled: Built) -> None:
    """The first-boot script as systemd would run it, with the image's own Python,
    systemctl and users; then the agent reads its config as the cac-agent user."""
    built = enrolled
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


def test_print_release_tools_are_installed(built: Built) -> None:
    """Issue 17 on the image: CUPS, and what the agent reads a held job with (pdfinfo for the
    pages, Ghostscript for colour); the agent may read CUPS's spool and release other
    users' jobs (groups lp and lpadmin)."""
    pkgs = ("cups", "cups-client", "poppler-utils", "ghostscript")
    r = chroot(built, "dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *pkgs)
    assert sorted(r.stdout.split("\n")[:-1]) == sorted(f"{p} installed" for p in pkgs)
    groups = chroot(built, "id", "-nG", "cac-agent").stdout.split()
    assert {"lp", "lpadmin"} <= set(groups), groups
    for exe in ("usr/bin/lpstat", "usr/sbin/lpadmin", "usr/bin/pdfinfo", "usr/bin/gs",
                "usr/share/cups/drv/sample.drv"):
        assert (built.root / exe).exists(), exe
    assert "IdleExitTimeout" in (built.root / "etc/cups/cupsd.conf").read_text()
