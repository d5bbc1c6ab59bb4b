"""The citizen's computer (kiosk/desktop.py, kiosk/bar.py): apps as the citizen user in a
home recreated every session, the kiosk bar over them, locked-down Chromium.

The fast tests check the pure parts; the slow ones run real Chromium and LibreOffice under
an Xvfb with openbox of their own (tests/kiosk/desktop_driver.py) and need root (they
switch to the `cac-citizen` user, created here as the image creates it)."""

from __future__ import annotations

import http.server
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_support import TOKENS

from kiosk.client import StationClient
from kiosk.config import parse_config
from kiosk.desktop import (
    CITIZEN_HOME,
    DATA,
    CitizenLauncher,
    DesktopConfig,
    as_citizen,
    default_apps,
    kill_user,
    start_page,
)
from tests.kiosk.kiosk_agent import AgentThread
from wire.config_check import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("desktop_driver.py")
OVERLAY = ROOT / "images" / "overlay"


def test_desktop_config_gives_the_default_apps() -> None:
    cfg = parse_config({"desktop": {}})
    assert [a.id for a in cfg.apps] == ["browser", "writer", "calc", "files"]
    browser = cfg.apps[0].command
    assert browser[0] == "chromium" and "--no-first-run" in browser
    assert browser[-1] == (CITIZEN_HOME / "start.html").as_uri()
    # an explicit [[apps]] list wins over the defaults
    cfg = parse_config({"desktop": {}, "apps": [{"id": "b", "name": "B", "command": ["x"]}]})
    assert [a.id for a in cfg.apps] == ["b"]
    with pytest.raises(ConfigError, match="desktop.user"):
        parse_config({"desktop": {"user": "root"}})
    with pytest.raises(ConfigError, match="desktop.home"):
        parse_config({"desktop": {"home": "/home"}})
    with pytest.raises(ConfigError, match="desktop.colour: unknown key"):
        parse_config({"desktop": {"colour": 1}})


def test_apps_run_as_the_citizen_with_a_clean_environment(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("CAC_TOKEN", "station-secret")
    d = DesktopConfig()
    argv = as_citizen(d, ["chromium"])
    assert "env" in argv and "-i" in argv and argv[-1] == "chromium"
    assert not any("station-secret" in a for a in argv)
    assert f"HOME={CITIZEN_HOME}" in argv
    if os.geteuid() == 0:
        assert argv[0] == "setpriv" and "--reuid=cac-citizen" in argv
    else:
        assert argv[:4] == ["sudo", "-n", "-u", "cac-citizen"]


def test_refuses_to_kill_root_or_itself() -> None:
    for uid in (0, os.getuid()):
        with pytest.raises(ValueError, match="refusing"):
            kill_user(uid)


def test_start_page_says_when_the_internet_is_down() -> None:
    pkgs = [{"title": "Boîte à outils PME", "files": [
        {"title": "Facture <modèle>", "url": "/content/sme/facture.html"}]}]
    down = start_page("http://127.0.0.1:8081", False, pkgs)
    assert "Internet indisponible" in down and "الإنترنت غير متاح" in down
    assert 'href="http://127.0.0.1:8081/content/sme/facture.html"' in down
    assert "Facture &lt;modèle&gt;" in down
    assert "indisponible" not in start_page("http://a", True, pkgs)


def test_policies_lock_chromium_down() -> None:
    """The same policy file in the demo/tests (kiosk/citizen) and on the image."""
    pol = json.loads((DATA / "chromium-policy.json").read_text())
    image = json.loads((OVERLAY / "etc/chromium/policies/managed/cac-citizen.json").read_text())
    assert pol == image
    assert pol["DeveloperToolsAvailability"] == 2
    assert pol["ExtensionInstallBlocklist"] == ["*"]
    assert pol["BrowserSignin"] == 0 and pol["PasswordManagerEnabled"] is False
    assert pol["DownloadDirectory"] == str(CITIZEN_HOME / "Downloads")
    assert "file://*" in pol["URLBlocklist"]
    assert pol["URLAllowlist"] == [CITIZEN_HOME.as_uri()]
    xcu = (DATA / "libreoffice-lockdown.xcu").read_text()
    assert '"DisableMacrosExecution" oor:op="fuse" oor:finalized="true"><value>true' in xcu
    # the default apps fit the policies: the browser profile lives in the wiped home
    for app in default_apps(DesktopConfig()):
        for a in app.command:
            if a.startswith("--user-data-dir="):
                assert a.split("=", 1)[1].startswith(str(CITIZEN_HOME))


# ---------------------------------------------------------------- real apps (slow, root)


def _need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.fail(f"missing programs {missing}: run scripts/setup.sh test as root",
                    pytrace=False)


@pytest.fixture(scope="module")
def citizen_display() -> Iterator[str]:
    """An Xvfb with openbox (the station's window manager config) of this test's own."""
    if os.geteuid() != 0:
        pytest.skip("switching to the citizen user needs root")
    _need("Xvfb", "openbox", "xdotool", "wmctrl", "xprop", "xhost", "xwd", "chromium",
          "libreoffice", "setpriv", "unshare")
    if subprocess.run(["id", "cac-citizen"], capture_output=True, check=False).returncode:
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir",
                        str(CITIZEN_HOME), "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "cac-citizen"], check=True)
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        display = f":{f.readline().strip()}"
    wm = subprocess.Popen(["openbox", "--config-file", str(DATA / "openbox-rc.xml")],
                          env={**os.environ, "DISPLAY": display},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield display
    finally:
        wm.terminate()
        wm.wait(10)
        xvfb.terminate()
        xvfb.wait(10)


@pytest.fixture(scope="module")
def policy_dir() -> Iterator[Path]:
    """What /etc/chromium holds on the image, bind-mounted for the citizen's Chromium only."""
    d = Path(tempfile.mkdtemp(prefix="cac-chromium-etc-"))
    os.chmod(d, 0o755)
    if Path("/etc/chromium/master_preferences").is_file():
        shutil.copy("/etc/chromium/master_preferences", d)
    (d / "policies" / "managed").mkdir(parents=True)
    shutil.copy(OVERLAY / "etc/chromium/policies/managed/cac-citizen.json",
                d / "policies" / "managed")
    for p in (d / "policies", d / "policies" / "managed"):
        os.chmod(p, 0o755)
    yield d
    shutil.rmtree(d)


@pytest.fixture(scope="module")
def download_url() -> Iterator[str]:
    """A page on 127.0.0.1 that sends a PDF as an attachment."""
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/emploi.html":  # a page the citizen visits
                page = b"<!doctype html><title>Offres d'emploi</title><h1>Emploi</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            body = b"%PDF-1.4\n% formulaire\n%%EOF\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Disposition", 'attachment; filename="formulaire.pdf"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/formulaire.pdf"
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow
def test_citizen_session_with_real_chromium_and_libreoffice(
        citizen_display: str, policy_dir: Path, download_url: str, kiosk_env: dict[str, str],
        artifacts: Path) -> None:
    out = artifacts / "desktop"
    shutil.rmtree(out, ignore_errors=True)
    env = {**kiosk_env, "DISPLAY": citizen_display}
    r = subprocess.run([sys.executable, str(DRIVER), "desktop", str(out), citizen_display,
                        str(policy_dir), download_url], capture_output=True, text=True,
                       timeout=400, check=False, env=env, stdin=subprocess.DEVNULL)
    result_file = out / "result.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    times = out / "times.json"
    print(times.read_text() if times.is_file() else "no times")
    assert r.returncode == 0 and result.get("ok"), (
        f"desktop scenario failed: {result.get('error')}\n{r.stderr[-4000:]}")


def test_usb_sticks_are_found_and_files_copied(tmp_path: Path) -> None:
    from kiosk.usb import copy_files, removable_mounts

    sysfs = tmp_path / "sys"
    for disk, removable in (("sda", "0"), ("sdb", "1"), ("mmcblk0", "1")):
        (sysfs / disk).mkdir(parents=True)
        (sysfs / disk / "removable").write_text(removable + "\n")
    mounts = ("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /media/cl\\040USB vfat rw 0 0\n"
              "/dev/mmcblk0p1 /media/sd vfat rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n")
    assert removable_mounts(mounts, sysfs) == [Path("/media/cl USB"), Path("/media/sd")]
    home, stick = tmp_path / "home", tmp_path / "stick"
    (home / "Documents").mkdir(parents=True)
    stick.mkdir()
    (home / "Documents" / "cv.odt").write_text("CV")
    (home / "Documents" / "link").symlink_to("/etc/passwd")
    copied = copy_files(sorted((home / "Documents").iterdir()), home, stick)
    assert copied == [stick / "CAC-1" / "Documents" / "cv.odt"]
    assert copy_files([home / "Documents" / "cv.odt"], home, stick)[0].parts[-3] == "CAC-2"


def test_toolkit_templates_open_in_the_office_suite() -> None:
    from kiosk.desktop import office_module

    base = "http://127.0.0.1:8081/content/sme-toolkit-fr"
    assert office_module(f"{base}/livre-de-caisse.csv", "text/csv; charset=utf-8") == "calc"
    assert office_module(f"{base}/facture.html", "text/html; charset=utf-8") == "writer"
    assert office_module("http://a/content/guides-admin-fr/cin.html", "text/html") is None
    assert office_module("http://a/content/x/guide.pdf", "application/pdf") is None


def test_start_page_follows_the_agents_uplink(tmp_path: Path) -> None:
    """The agent probes the internet (here a listener of this test on 127.0.0.1); the kiosk
    asks the agent (GET /stations/s1/uplink) and the browser's start page says when the
    internet is down, rewritten when the browser opens."""
    net = socket.create_server(("127.0.0.1", 0))
    net.listen(16)
    port = net.getsockname()[1]
    agent = AgentThread(tmp_path / "agent", uplink={
        "probe": [f"127.0.0.1:{port}"], "interval_seconds": 1, "timeout_seconds": 1})
    try:
        home = tmp_path / "var/lib/cac-citizen/home"
        home.mkdir(parents=True)
        me = pwd.getpwuid(os.getuid()).pw_name
        launcher = CitizenLauncher((), DesktopConfig(user=me, home=home))
        launcher.client = StationClient(agent.url, "s1", TOKENS["s1"])

        def wait_for(up: bool) -> None:
            deadline = time.monotonic() + 15
            while launcher.uplink() is not up:
                assert time.monotonic() < deadline, f"the agent never saw the uplink {up}"
                time.sleep(0.1)

        wait_for(True)
        assert "Internet disponible" in launcher.make_start_page()
        (home / "start.html").write_text(launcher.make_start_page())
        net.close()  # the internet goes down during the day
        wait_for(False)
        launcher.refresh_start_page()  # as launch("browser") does
        page = (home / "start.html").read_text()
        assert "Internet indisponible" in page and "الإنترنت غير متاح" in page
    finally:
        net.close()
        agent.close()
