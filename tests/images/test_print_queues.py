"""Issue 17 on the device image: a site box enrolled with `printer = URI` in cac-device.conf
gets one held CUPS queue per station at boot (`cac-firstboot --print-queues`, run by
cac-print-queues.service), its CUPS opened to the station LAN, and `[printing]` plus the print
items in agent.toml; a station prints to the site box (client.conf). The queues are made on a
real cupsd (a private one: tests/cups_support.py) with `lpadmin`, exactly as the unit does; a
job submitted with `lp` waits held, the agent's CUPS code lists it with its pages, and a
release sends it to the "printer": a TCP listener standing in for a socket:// printer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cups_support import FakePrinter, PrivateCups, cups_available, make_pdf
from image_support import BUNDLE_NAME, FIRSTBOOT, OVERLAY, write_bundle

from agent.config import parse_agent_config
from agent.printing import Cups, PrintingConfig

DEBIAN_CUPSD = Path("/etc/cups/cupsd.conf")
HAVE_SYSTEMCTL = shutil.which("systemctl") is not None


def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/cups").mkdir(parents=True)
    (root / "etc/group").write_text("root:x:0:\ncac-agent:x:4990:\ncac-kiosk:x:4991:\n"
                                    "lp:x:7:\n")
    # the image's cupsd.conf is Debian's (the package's conffile); a minimal one without it
    (root / "etc/cups/cupsd.conf").write_text(
        DEBIAN_CUPSD.read_text() if DEBIAN_CUPSD.exists()
        else "Listen localhost:631\nListen /run/cups/cups.sock\nIdleExitTimeout 60\n"
             "<Location />\n  Order allow,deny\n</Location>\n")
    shutil.copytree(OVERLAY / "etc/systemd", root / "etc/systemd")
    if HAVE_SYSTEMCTL:
        subprocess.run(["systemctl", f"--root={root}", "enable", "cac-firstboot.service"],
                       check=True, capture_output=True)
    return root


def firstboot(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    extra = [] if HAVE_SYSTEMCTL else ["--no-systemctl"]
    return subprocess.run([sys.executable, str(FIRSTBOOT), "--root", str(root),
                           "--cmdline", "/dev/null", *extra, *args],
                          capture_output=True, text=True, timeout=120, check=False)


def enrol(root: Path, conf: str, **bundle: object) -> subprocess.CompletedProcess[str]:
    write_bundle(root / "boot/firmware" / BUNDLE_NAME, **bundle)  # type: ignore[arg-type]
    (root / "boot/firmware/cac-device.conf").write_text(conf)
    return firstboot(root)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_site_with_a_printer_gets_queues_settings_and_print_items(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    r = enrol(root, "printer = socket://192.168.1.50:9100\n")
    assert r.returncode == 0, r.stderr
    conf = json.loads((root / "etc/cac/printing.json").read_text())
    assert conf == {"printer": "socket://192.168.1.50:9100",
                    "model": "drv:///sample.drv/generic.ppd", "stations": ["s1", "s2"],
                    "server": "/run/cups/cups.sock"}
    # the agent prints through the local CUPS socket and charges the two print items
    text = (root / "etc/cac-agent/agent.toml").read_text()
    raw = tomllib.loads(text)
    cfg = parse_agent_config(raw)
    assert cfg.printing.cups == "/run/cups/cups.sock"
    prices = {i["id"]: (i["price"], i["unit"]) for i in raw["catalogue"]}
    assert prices == {"print-bw": (100, "page"), "print-color": (300, "page")}
    # CUPS answers the station LAN, never exits idle; the admin pages stay locked
    cupsd = (root / "etc/cups/cupsd.conf").read_text()
    lines = [line.strip() for line in cupsd.splitlines()]
    assert "Port 631" in lines and "Listen localhost:631" not in lines
    assert "IdleExitTimeout 0" in lines and "Listen /run/cups/cups.sock" in lines
    root_loc = cupsd.split("<Location />", 1)[1].split("</Location>", 1)[0]
    assert "Allow @LOCAL" in root_loc
    admin = cupsd.split("<Location /admin>", 1)[1].split("</Location>", 1)[0] \
        if "<Location /admin>" in cupsd else ""
    assert "Allow" not in admin
    assert (root / "etc/cups/lpoptions").read_text() == "Default s1\n"
    fw = (root / "etc/cac/firewall.nft").read_text()
    assert "print_ports { 631 }" in fw and "printer_dst { 192.168.1.50 . 9100 }" in fw
    done = json.loads((root / "var/lib/cac-firstboot/done").read_text())
    assert done["printer"] == "socket://192.168.1.50:9100"
    assert "cac-print-queues.service" in done["enabled"]
    if HAVE_SYSTEMCTL:
        wants = root / "etc/systemd/system/multi-user.target.wants"
        assert (wants / "cac-print-queues.service").is_symlink()  # to /etc/...: not resolved


def test_ipp_printer_is_driverless_and_the_bundles_own_settings_win(tmp_path: Path) -> None:
    from image_support import agent_toml
    root = fake_root(tmp_path)
    own = agent_toml() + ('\n[printing]\ncups = "127.0.0.1:631"\n\n[[catalogue]]\n'
                          'id = "print-bw"\nname = { fr = "N&B" }\nprice = 50\nunit = "page"\n')
    r = enrol(root, "printer = ipp://192.168.1.60/ipp/print\n", toml=own)
    assert r.returncode == 0, r.stderr
    assert json.loads((root / "etc/cac/printing.json").read_text())["model"] == "everywhere"
    raw = tomllib.loads((root / "etc/cac-agent/agent.toml").read_text())
    assert raw["printing"] == {"cups": "127.0.0.1:631"}
    assert {i["id"]: i["price"] for i in raw["catalogue"]} == {"print-bw": 50,
                                                               "print-color": 300}


def test_no_printer_no_queues_and_the_agent_toml_as_bundled(tmp_path: Path) -> None:
    from image_support import agent_toml
    root = fake_root(tmp_path)
    before = (root / "etc/cups/cupsd.conf").read_text()
    r = enrol(root, "role = site\n")
    assert r.returncode == 0, r.stderr
    assert (root / "etc/cac-agent/agent.toml").read_text() == agent_toml()
    assert not (root / "etc/cac/printing.json").exists()
    assert (root / "etc/cups/cupsd.conf").read_text() == before
    assert "print_ports" not in (root / "etc/cac/firewall.nft").read_text()


def test_station_prints_to_the_site_box(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    r = enrol(root, "role = station\nstation = s2\nagent = 192.168.1.10\n")
    assert r.returncode == 0, r.stderr
    assert "ServerName 192.168.1.10:631" in (root / "etc/cups/client.conf").read_text()
    assert (root / "etc/cups/lpoptions").read_text() == "Default s2\n"
    assert "192.168.1.10 . 631" in (root / "etc/cac/firewall.nft").read_text()


@pytest.mark.parametrize(("conf", "message"), [
    ("role = station\nstation = s2\nagent = 192.168.1.10\nprinter = socket://10.0.0.5\n",
     "printer is set on the site box"),
    ("printer = /dev/usb/lp0\n", "printer must be a CUPS device URI"),
    ("printer = socket://10.0.0.5:9100 ; rm -rf /\n", "printer must be a CUPS device URI"),
    ("printer_model = everywhere\n", "printer_model is set but printer is not"),
    ("printer = socket://10.0.0.5\nprinter_model = a b\n", "printer_model must be"),
])
def test_bad_printer_settings_change_nothing(tmp_path: Path, conf: str, message: str) -> None:
    root = fake_root(tmp_path)
    write_bundle(root / "boot/firmware" / BUNDLE_NAME)
    (root / "boot/firmware/cac-device.conf").write_text(conf)
    before = files(root)
    r = firstboot(root)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert files(root) == before


def test_print_queues_without_enrolment_is_one_line(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    r = firstboot(root, "--print-queues", "--cups-server", "127.0.0.1:9")
    assert r.returncode == 1 and "printing.json" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# ---------------------------------------------------------------- on a real cupsd


@pytest.fixture
def printer() -> Iterator[FakePrinter]:
    p = FakePrinter()
    yield p
    p.close()


@pytest.fixture
def cups() -> Iterator[PrivateCups]:
    if not cups_available():
        pytest.skip("CUPS, cups-pdf, poppler and Ghostscript (scripts/setup.sh installs them)")
    c = PrivateCups(())  # no queue yet: cac-firstboot makes them
    yield c
    c.stop()


def wait(what: str, check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_print_queues_on_real_cups_hold_jobs_until_released(
        tmp_path: Path, cups: PrivateCups, printer: FakePrinter) -> None:
    root = fake_root(tmp_path)
    r = enrol(root, f"printer = socket://127.0.0.1:{printer.port}\n")
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    r = firstboot(root, "--print-queues", "--cups-server", cups.host)
    made_in = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "held print queues s1, s2" in r.stdout
    print(f"\nqueues s1, s2 made in {made_in:.1f} s")
    devices = cups.tool("lpstat", "-v")
    for st in ("s1", "s2"):
        assert f"device for {st}: socket://127.0.0.1:{printer.port}" in devices
        opts = cups.tool("lpoptions", "-p", st)
        assert "job-hold-until=indefinite" in opts and "printer-is-shared=true" in opts
    # again (every boot): the queues are updated, not doubled
    assert firstboot(root, "--print-queues", "--cups-server", cups.host).returncode == 0
    assert cups.tool("lpstat", "-v").count("device for") == 2

    # a citizen prints 3 pages at s2: held, listed by the agent's CUPS code with its pages
    job = cups.submit("s2", make_pdf(tmp_path / "three.pdf", 3))
    agent_cups = Cups(PrintingConfig(cups=cups.host, spool_dir=cups.spool))
    held = wait("the held job", lambda: agent_cups.held({"s1", "s2"}))
    assert [(j.id, j.station, j.pages, j.color) for j in held] == [(job, "s2", 3, False)]
    time.sleep(1.0)
    assert printer.jobs == []  # held: nothing reached the printer
    agent_cups.release(job)
    data = wait("the job at the printer", lambda: printer.jobs, 60)
    assert data[0].lstrip(b"\x04\x1b%-12345X@PJL \r\n").startswith(b"%!PS") or \
        b"%!PS" in data[0][:4096], data[0][:200]
    assert data[0].count(b"%%Page:") == 3  # the generic PostScript driver's pages


def test_print_queues_say_so_when_cups_does_not_answer(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    assert enrol(root, "printer = socket://127.0.0.1:9\n").returncode == 0
    r = firstboot(root, "--print-queues", "--cups-server", "127.0.0.1:9")
    assert r.returncode == 1 and "lpadmin -p s1" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
