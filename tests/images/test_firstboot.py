"""images/cac_firstboot.py against a fake root directory: finds the bundle, validates it,
installs the agent config, kiosk env and firewall values, enables the services with a real
`systemctl --root`, and disables itself; a bad bundle changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from image_support import (
    BUNDLE_NAME,
    CAC_ID,
    FIRSTBOOT,
    OVERLAY,
    TOKENS,
    agent_toml,
    enrol_json,
    load_firstboot,
    write_bundle,
)

AGENT_GID, KIOSK_GID = 4990, 4991
BUNDLE = BUNDLE_NAME
HAVE_SYSTEMCTL = shutil.which("systemctl") is not None


def fake_root(tmp_path: Path) -> Path:
    """A root with the image's users and units, as build-rootfs.sh leaves it."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/group").write_text(f"root:x:0:\ncac-agent:x:{AGENT_GID}:\n"
                                    f"cac-kiosk:x:{KIOSK_GID}:\n")
    (root / "proc").mkdir()
    (root / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/sda2 ro quiet\n")
    shutil.copytree(OVERLAY / "etc/systemd", root / "etc/systemd")
    if HAVE_SYSTEMCTL:  # enable the first-boot unit as the build does
        subprocess.run(["systemctl", f"--root={root}", "enable", "cac-firstboot.service"],
                       check=True, capture_output=True)
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    extra = [] if HAVE_SYSTEMCTL else ["--no-systemctl"]
    return subprocess.run([sys.executable, str(FIRSTBOOT), "--root", str(root), *extra, *args],
                          capture_output=True, text=True, timeout=60, check=False)


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def wanted(root: Path, target: str) -> set[str]:
    d = root / "etc/systemd/system" / f"{target}.wants"
    return {p.name for p in d.iterdir()} if d.is_dir() else set()


def written(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and "systemd" not in p.parts and p.parts[-2:] != ("proc", "cmdline")}


def test_site_from_boot_partition(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    write_bundle(root / "boot/firmware" / BUNDLE)
    r = run(root)
    assert r.returncode == 0, r.stderr
    assert f"enrolled {CAC_ID} as site (station s1)" in r.stdout

    toml = root / "etc/cac-agent/agent.toml"
    assert toml.read_text() == agent_toml()
    st = toml.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, AGENT_GID)
        assert (root / "etc/cac-kiosk/kiosk.env").stat().st_gid == KIOSK_GID
    assert (root / "etc/cac-agent/ca.crt").read_bytes().startswith(b"-----BEGIN CERT")
    env = env_file(root / "etc/cac-kiosk/kiosk.env")
    assert env == {"CAC_AGENT_URL": "http://127.0.0.1:8081", "CAC_STATION": "s1",
                   "CAC_TOKEN": TOKENS["s1"]}
    assert stat.S_IMODE((root / "etc/cac-kiosk/kiosk.env").stat().st_mode) == 0o640

    fw = (root / "etc/cac/firewall.nft").read_text()
    assert "add element inet cac agent_ports { 8081 }" in fw
    assert "add element inet cac hub_addrs { 10.20.0.5 }" in fw  # an IP literal: only it
    assert "add element inet cac hub_ports { 8080, 8883 }" in fw
    assert "admin_net" not in fw and "web_ports" not in fw  # empty sets: nobody, nothing
    assert (root / "etc/hostname").read_text() == f"{CAC_ID}\n"

    done = json.loads((root / "var/lib/cac-firstboot/done").read_text())
    assert done["role"] == "site" and done["station"] == "s1" and done["cac_id"] == CAC_ID
    assert len(done["bundle_sha256"]) == 64
    assert TOKENS["s1"] not in json.dumps(done)
    if HAVE_SYSTEMCTL:
        assert "cac-agent.service" in wanted(root, "multi-user.target")
        assert "cac-kiosk.service" in wanted(root, "graphical.target")
        assert "cac-firstboot.service" not in wanted(root, "multi-user.target")

    # a second run (next boot): the unit's condition would skip it; the script also does
    again = run(root)
    assert again.returncode == 0 and "already enrolled" in again.stdout


@pytest.mark.skipif(not HAVE_SYSTEMCTL, reason="systemctl is not installed")
def test_firstboot_unit_is_enabled_before_and_disabled_after(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    assert "cac-firstboot.service" in wanted(root, "multi-user.target")
    write_bundle(root / "boot/cac" / BUNDLE)
    assert run(root).returncode == 0
    assert "cac-firstboot.service" not in wanted(root, "multi-user.target")


def test_station_device_from_stick_with_device_conf(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    stick = root / "run/cac-enrol"
    write_bundle(stick / BUNDLE)
    write_bundle(root / "boot/firmware" / "enrol-other-cac.tar.gz",
                 enrol=enrol_json("other-cac"), toml=agent_toml("other-cac"))  # stick wins
    (stick / "cac-device.conf").write_text(
        "# station two, by the window\nrole = station\nstation = s2\nagent = 192.168.10.2\n"
        "lan = 192.168.10.0/24\nadmin = 192.168.10.200/32\ninternet = yes\n")
    r = run(root)
    assert r.returncode == 0, r.stderr
    assert not (root / "etc/cac-agent/agent.toml").exists()  # no agent on a station
    assert env_file(root / "etc/cac-kiosk/kiosk.env") == {
        "CAC_AGENT_URL": "http://192.168.10.2:8081", "CAC_STATION": "s2",
        "CAC_TOKEN": TOKENS["s2"]}
    fw = (root / "etc/cac/firewall.nft").read_text()
    assert "add element inet cac site_agent { 192.168.10.2 . 8081, 192.168.10.2 . 631 }" in fw
    assert "add element inet cac admin_net { 192.168.10.200/32 }" in fw
    assert "add element inet cac web_ports { 80, 443 }" in fw
    assert "agent_ports" not in fw and "hub_addrs" not in fw
    assert (root / "etc/hostname").read_text() == f"{CAC_ID}-s2\n"
    if HAVE_SYSTEMCTL:
        assert "cac-agent.service" not in wanted(root, "multi-user.target")
        assert "cac-kiosk.service" in wanted(root, "graphical.target")


def test_station_takes_the_agent_address_from_the_bundle(tmp_path: Path) -> None:
    """cac-provision writes the agent's LAN address into kiosk/ID.env: no agent= needed."""
    root = fake_root(tmp_path)
    env = b"CAC_AGENT_URL=http://192.168.4.1:8081\nCAC_STATION=s2\nCAC_TOKEN=x\n"
    write_bundle(root / "boot/firmware" / BUNDLE, extra={"kiosk/s2.env": env})
    (root / "proc/cmdline").write_text("quiet cac.role=station cac.station=s2\n")
    r = run(root)
    assert r.returncode == 0, r.stderr
    assert env_file(root / "etc/cac-kiosk/kiosk.env")["CAC_AGENT_URL"] == \
        "http://192.168.4.1:8081"
    assert "site_agent { 192.168.4.1 . 8081, 192.168.4.1 . 631 }" in \
        (root / "etc/cac/firewall.nft").read_text()


def test_kernel_command_line_overrides_the_stick(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    write_bundle(root / "boot/firmware" / BUNDLE)
    (root / "boot/firmware/cac-device.conf").write_text("station=s1\n")
    (root / "proc/cmdline").write_text("ro quiet cac.station=s2 cac.lan=10.1.0.0/16\n")
    assert run(root).returncode == 0
    assert env_file(root / "etc/cac-kiosk/kiosk.env")["CAC_STATION"] == "s2"
    assert "station_lan { 10.1.0.0/16 }" in (root / "etc/cac/firewall.nft").read_text()


def test_hub_by_name_is_restricted_by_port_only(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    write_bundle(root / "boot/firmware" / BUNDLE,
                 toml=agent_toml(mqtt_host="hub.example.org", hub_url=None))
    assert run(root).returncode == 0
    fw = (root / "etc/cac/firewall.nft").read_text()
    assert "hub_addrs { 0.0.0.0/0 }" in fw and "hub_ports { 8883 }" in fw


@pytest.mark.parametrize(("case", "message"), [
    ({"enrol": {**enrol_json(), "format": 2}}, "format must be 1"),
    ({"enrol": {**enrol_json(), "stations": []}}, "stations must be a non-empty list"),
    ({"enrol": {**enrol_json(), "agent_url_port": "8081"}}, "agent_url_port"),
    ({"toml": agent_toml("another-cac")}, "agent.toml is for 'another-cac'"),
    ({"toml": agent_toml(port=9000)}, "http.port differs"),
    ({"toml": agent_toml().replace("block_price = 200", "block_price = -1")},
     "agent.toml: tariff.block_price"),
    ({"toml": "cac_id = \n"}, "not valid TOML"),
    ({"omit": ("enrol.json",)}, "has no enrol.json"),
    ({"extra": {"../etc/passwd": b"x"}}, "unexpected member"),
    ({"extra": {"kiosk/s9.env": b"CAC_STATION=s9\n"}}, "kiosk/s9.env: missing"),
])
def test_bad_bundle_changes_nothing(tmp_path: Path, case: dict[str, Any], message: str) -> None:
    root = fake_root(tmp_path)
    write_bundle(root / "boot/firmware" / BUNDLE, **case)
    before = written(root)
    r = run(root)
    assert r.returncode == 1
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert written(root) == before
    if HAVE_SYSTEMCTL:
        assert "cac-firstboot.service" in wanted(root, "multi-user.target")  # tries again


@pytest.mark.parametrize(("conf", "message"), [
    ("role=station\n", "needs the site agent's address"),
    ("role=station\nagent=site.local\n", "must be an IPv4 address"),
    ("station=s7\n", "station 's7' is not in this bundle"),
    ("lan=192.168.1.0/33\n", "not an IPv4 network"),
    ("colour=blue\n", "bad line"),
    ("internet=maybe\n", "internet must be yes or no"),
])
def test_bad_device_settings_change_nothing(tmp_path: Path, conf: str, message: str) -> None:
    root = fake_root(tmp_path)
    write_bundle(root / "boot/firmware" / BUNDLE)
    (root / "boot/firmware/cac-device.conf").write_text(conf)
    before = written(root)
    r = run(root)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert written(root) == before


def test_no_bundle_exits_3_and_two_bundles_is_an_error(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    r = run(root)
    assert r.returncode == 3 and "insert the stick" in r.stderr
    assert not (root / "var/lib/cac-firstboot/done").exists()
    write_bundle(root / "boot/firmware" / BUNDLE)
    write_bundle(root / "boot/firmware" / "enrol-other.tar.gz")
    r = run(root)
    assert r.returncode == 1 and "several bundles" in r.stderr


def test_not_a_tarball(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    (root / "boot/firmware").mkdir(parents=True)
    (root / "boot/firmware" / BUNDLE).write_bytes(b"not gzip at all")
    r = run(root)
    assert r.returncode == 1 and "not a readable .tar.gz" in r.stderr


def test_symlink_member_is_rejected(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    path = write_bundle(tmp_path / BUNDLE, links={"kiosk/s3.env": "/etc/shadow"})
    r = run(root, "--bundle", str(path))
    assert r.returncode == 1 and "unexpected member 'kiosk/s3.env'" in r.stderr


def test_settings_parsers() -> None:
    firstboot = load_firstboot()
    assert firstboot.cmdline_settings("ro cac.role=station cac.agent=10.0.0.2 quiet") == \
        {"role": "station", "agent": "10.0.0.2"}
    with pytest.raises(firstboot.EnrolError, match="unknown cac.colour"):
        firstboot.cmdline_settings("cac.colour=blue")
    assert firstboot.read_settings("role = site # the box\n\n", "x") == {"role": "site"}
