"""A hub that can face the internet (issue 16), as an installer sets it up: `cac-provision
init-hub --tls` and `add-cac`, the generated broker, `cac-hub` and `cac-agent` as real
processes on 127.0.0.1. The agent syncs signed content over HTTPS (trusting only the CA it
was given); a technician logs in to the dashboard over HTTPS and gets a Secure cookie; the
API answers a token only; and in a real Chromium a published page's <script> cannot act on
the console's origin."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port

from tests.hub.apitoken import add_token_cli, auth
from tests.provisioning.support import (
    BIN,
    Proc,
    ProvisionedBroker,
    init_hub,
    provision,
    read_toml,
    wait_for,
)

CAC = "cac-secure-001"
PASSWORD = "tech-pass-12345"
OP_PASSWORD = "op-pass-12345"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]
EVIL = """<!doctype html><html><head><title>pending</title></head><body><p>lesson</p><script>
const out = {};
try { localStorage.setItem("x", "1"); out.storage = "open"; }
catch (e) { out.storage = "blocked"; }
out.origin = String(self.origin);
fetch("/console/", {credentials: "include"})
  .then(r => r.text())
  .then(t => { out.console = t.includes("/console/logout") ? "read" : "other"; },
        () => { out.console = "blocked"; })
  .finally(() => { document.title = "done " + JSON.stringify(out); });
</script></body></html>"""


class Site:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "hub"
        self.http_port, self.agent_port = free_port(), free_port()
        init_hub(self.root, "--tls", "--http-port", str(self.http_port))
        provision("add-cac", "--dir", self.root, "--cac-id", CAC, "--stations", "1",
                  "--agent-data-dir", tmp / "agent-data", "--agent-bind", "127.0.0.1",
                  "--agent-port", str(self.agent_port))
        self.hub_toml = self.root / "hub.toml"
        self.agent_toml = self.root / "cacs" / CAC / "agent.toml"
        pkg = tmp / "lesson"
        pkg.mkdir()
        (pkg / "index.html").write_text(EVIL)
        (pkg / "manifest.json").write_text(json.dumps(
            {"id": "lesson", "title": "Lesson", "language": "fr"}))
        self.run(BIN / "cac-hub", "add-content", "--config", self.hub_toml, pkg)
        self.run(BIN / "cac-hub", "add-user", "--config", self.hub_toml, "--name", "tech",
                 "--role", "technician", "--password-stdin", stdin=PASSWORD + "\n")
        self.run(BIN / "cac-agent", "add-operator", "--config", self.agent_toml, "--name",
                 "amina", "--role", "manager", "--password-stdin", stdin=OP_PASSWORD + "\n")
        self.broker = ProvisionedBroker(self.root)
        self.broker.start()
        self.hub = Proc(tmp / "hub.log", BIN / "cac-hub", "--config", self.hub_toml)
        self.agent = Proc(tmp / "agent.log", BIN / "cac-agent", "--config", self.agent_toml)
        self.tls = ssl.create_default_context(cafile=str(self.root / "tls" / "ca.crt"))

    @staticmethod
    def run(*args: str | Path, stdin: str | None = None) -> str:
        r = subprocess.run([str(a) for a in args], input=stdin, capture_output=True,
                           text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        return r.stdout

    @property
    def hub_url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    def close(self) -> None:
        self.agent.stop()
        self.hub.stop()
        self.broker.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    try:
        yield s
    finally:
        s.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kw: Any) -> None:
        return None


def fetch(url: str, ctx: ssl.SSLContext | None = None, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def test_https_hub_signed_sync_secure_login_and_sandboxed_content(site: Site) -> None:
    agent_cfg = read_toml(site.agent_toml)
    assert agent_cfg["content"]["hub_url"] == site.hub_url  # https, from add-cac
    assert agent_cfg["content"]["signing_key"]
    hub_cfg = read_toml(site.hub_toml)
    assert hub_cfg["http"]["tls_cert"] and hub_cfg["content"]["signing_key_file"]

    # the agent installs the signed package over HTTPS (its first sync is 5 s after start)
    page_url = f"http://127.0.0.1:{site.agent_port}/content/lesson/index.html"

    def installed() -> bool:
        try:
            return fetch(page_url)[0] == 200
        except OSError:
            return False

    try:
        wait_for(installed, "the lesson synced from the https hub", 60)
    except AssertionError:
        pytest.fail(f"hub:\n{site.hub.text()[-2000:]}\nagent:\n{site.agent.text()[-3000:]}")
    status, headers, body = fetch(page_url)
    assert body.decode() == EVIL and headers["Content-Security-Policy"].startswith("sandbox")
    assert "without a signature check" not in site.agent.text()

    # plain HTTP to the hub's port gets no answer; HTTPS needs the CA the agents have
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        fetch(f"http://127.0.0.1:{site.http_port}/login")
    with pytest.raises(urllib.error.URLError):
        fetch(site.hub_url + "/login", ssl.create_default_context())

    # a dashboard login over HTTPS: the cookie is Secure (and HttpOnly, SameSite=Strict)
    form = urllib.parse.urlencode({"name": "tech", "password": PASSWORD, "next": "/"})
    status, headers, _ = fetch(site.hub_url + "/login", site.tls, form.encode(),
                               {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303, status
    cookie = headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
    session = cookie.split(";", 1)[0]
    assert fetch(site.hub_url + "/api/v1/cacs", site.tls, headers={"Cookie": session})[0] == 200

    # the API: 401 JSON without a token, 200 with one from cac-hub add-token
    status, _, body = fetch(site.hub_url + "/api/v1/cacs", site.tls)
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    token = add_token_cli(site.hub_toml, "scraper", "viewer")
    assert fetch(site.hub_url + "/metrics", site.tls, headers=auth(token))[0] == 200

    # a real Chromium: the operator logged in to the console opens the published page
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     timeout=60_000)
        try:
            page = browser.new_context().new_page()
            base = f"http://127.0.0.1:{site.agent_port}"
            page.goto(base + "/console/login")
            page.fill("input[name=name]", "amina")
            page.fill("input[name=password]", OP_PASSWORD)
            page.click("form[action='/console/login'] button[type=submit]")
            page.wait_for_url(base + "/console/", timeout=15_000)
            same_origin = page.evaluate(
                "fetch('/console/').then(r => r.text()).then(t => t.includes('/console/logout'))")
            assert same_origin, "the console page itself can read the console (control)"
            page.goto(page_url)
            page.wait_for_function("document.title.startsWith('done')", timeout=15_000)
            result = json.loads(page.title()[len("done "):])
        finally:
            browser.close()
    # the script ran, in an opaque origin: no storage, no reading the logged-in console
    assert result == {"storage": "blocked", "origin": "null", "console": "blocked"}, result
