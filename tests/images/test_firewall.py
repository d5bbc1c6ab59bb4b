"""The image's nftables ruleset: `nft -c -f` (check only, nothing loaded) with the shipped
defaults and with the values cac-firstboot writes for a site and a station device."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from image_support import BUNDLE_NAME, FIRSTBOOT, OVERLAY, write_bundle

RULESET = OVERLAY / "etc/nftables.conf"
DEFAULTS = OVERLAY / "etc/cac/firewall.nft"
NFT = shutil.which("nft") or next(
    (p for p in ("/usr/sbin/nft", "/sbin/nft") if Path(p).exists()), None)


def nft_check(tmp_path: Path, values: str) -> subprocess.CompletedProcess[str]:
    """Check the ruleset with VALUES as its /etc/cac/firewall.nft."""
    if NFT is None:
        pytest.skip("nft (Debian package nftables) is not installed: apt-get install nftables")
    vals = tmp_path / "firewall.nft"
    vals.write_text(values)
    ruleset = tmp_path / "nftables.conf"
    text = RULESET.read_text()
    assert 'include "/etc/cac/firewall.nft"' in text
    ruleset.write_text(text.replace("/etc/cac/firewall.nft", str(vals)))
    r = subprocess.run([NFT, "-c", "-f", str(ruleset)], capture_output=True, text=True,
                       timeout=30, check=False)
    if r.returncode != 0 and "Operation not permitted" in r.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN (run the tests as root)")
    return r


def firstboot_values(tmp_path: Path, conf: str) -> str:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/group").write_text("cac-agent:x:4990:\ncac-kiosk:x:4991:\nlp:x:7:\n")
    (root / "etc/cups").mkdir()
    (root / "etc/cups/cupsd.conf").write_text("Listen localhost:631\n<Location />\n</Location>\n")
    write_bundle(root / "boot/firmware" / BUNDLE_NAME)
    (root / "boot/firmware/cac-device.conf").write_text(conf)
    r = subprocess.run([sys.executable, str(FIRSTBOOT), "--root", str(root), "--no-systemctl",
                        "--cmdline", "/dev/null"], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return (root / "etc/cac/firewall.nft").read_text()


def test_shipped_defaults_are_valid(tmp_path: Path) -> None:
    r = nft_check(tmp_path, DEFAULTS.read_text())
    assert (r.returncode, r.stderr) == (0, "")


def test_site_values_are_valid(tmp_path: Path) -> None:
    values = firstboot_values(tmp_path, "admin=192.168.1.0/24,10.9.9.9\ninternet=yes\n")
    assert "hub_addrs { 10.20.0.5 }" in values
    r = nft_check(tmp_path, values)
    assert (r.returncode, r.stderr) == (0, "")


def test_station_values_are_valid(tmp_path: Path) -> None:
    values = firstboot_values(tmp_path, "role=station\nstation=s2\nagent=192.168.1.2\n")
    assert "site_agent { 192.168.1.2 . 8081, 192.168.1.2 . 631 }" in values
    r = nft_check(tmp_path, values)
    assert (r.returncode, r.stderr) == (0, "")


@pytest.mark.parametrize(("printer", "expect"), [
    ("socket://192.168.1.50:9100", "printer_dst { 192.168.1.50 . 9100 }"),
    ("ipps://printer.example:8443/ipp/print", "printer_ports { 8443 }"),
    ("usb://HP/LaserJet%20M15?serial=1", None),
])
def test_site_with_a_printer_values_are_valid(tmp_path: Path, printer: str,
                                              expect: str | None) -> None:
    values = firstboot_values(tmp_path, f"printer = {printer}\n")
    assert "print_ports { 631 }" in values
    if expect is None:
        assert "printer_dst" not in values and "printer_ports" not in values
    else:
        assert expect in values
    r = nft_check(tmp_path, values)
    assert (r.returncode, r.stderr) == (0, "")


def test_nft_check_rejects_a_bad_value(tmp_path: Path) -> None:
    """The checks above are not vacuous: nft -c refuses a wrong element type."""
    r = nft_check(tmp_path, "add element inet cac station_lan { fd00::/8 }\n")
    assert r.returncode != 0 and "firewall.nft" in r.stderr


def test_everything_not_listed_is_dropped() -> None:
    text = RULESET.read_text()
    for chain in ("input", "forward", "output"):
        assert f"hook {chain} priority filter; policy drop;" in text
    # stations reach only the agent's port, only from the station LAN
    assert "ip saddr @station_lan tcp dport @agent_ports accept" in text
    assert "ip daddr @hub_addrs tcp dport @hub_ports accept" in text
    # the print queues: only from the station LAN, only on a site with a printer
    assert "ip saddr @station_lan tcp dport @print_ports accept" in text
