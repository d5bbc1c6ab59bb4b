"""`cac-provision` files: complete configs, 0600 secrets, registry rules, bundle and QR."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
import segno

from agent.config import load_agent_config
from hub.config import load_hub_config
from provisioning.bundle import (
    BundleError,
    bundle_files,
    enrolment_from_files,
    enrolment_from_qr,
    files_from_qr_payload,
    make_qr,
    qr_payload,
    qr_png,
    read_tarball,
)
from provisioning.passwd import verify_password
from tests.provisioning.support import ProvisionedBroker, init_hub, provision, read_toml

CAC = "ma-oriental-oujda-001"


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "hub"
    init_hub(root)
    return root


def one_line_error(r: object, needle: str) -> None:
    assert r.returncode == 1, r.stdout  # type: ignore[attr-defined]
    lines = r.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("cac-provision: error: "), lines
    assert needle in lines[0]
    assert "Traceback" not in r.stderr  # type: ignore[attr-defined]


def secrets_of(root: Path) -> list[str]:
    """Every password and token the provisioning directory hands out."""
    out = [read_toml(root / "hub.toml")["mqtt"]["password"]]
    for toml in root.glob("cacs/*/agent.toml"):
        doc = read_toml(toml)
        out.append(doc["mqtt"]["password"])
        out += [s["token"] for s in doc["stations"]]
    return out


def test_init_hub_and_add_cac_write_complete_configs(root: Path, tmp_path: Path) -> None:
    r = provision("add-cac", "--dir", root, "--cac-id", CAC, "--stations", "3",
                  "--agent-data-dir", str(tmp_path / "agent-data"))
    hub = load_hub_config(root / "hub.toml")  # the real parsers accept both files
    agent = load_agent_config(root / "cacs" / CAC / "agent.toml")
    assert hub.mqtt.username == "hub" and hub.mqtt.port == agent.mqtt.port
    assert agent.cac_id == CAC and agent.mqtt.username == CAC
    assert [s.id for s in agent.stations] == ["s1", "s2", "s3"]
    assert len({s.token for s in agent.stations}) == 3
    assert all(len(s.token) >= 32 for s in agent.stations)
    assert agent.timezone == "Africa/Casablanca"
    t = agent.tariff
    assert (t.currency, t.block_minutes, t.block_price, t.minimum_blocks) == ("MAD", 15, 200, 1)
    assert agent.content.hub_url == f"http://127.0.0.1:{hub.http.port}"
    assert agent.data_dir == tmp_path / "agent-data"
    assert not agent.mqtt.tls and agent.mqtt.ca_file is None
    # the passwords in the configs are the ones the broker's file knows
    passwd = dict(line.split(":", 1) for line in
                  (root / "broker" / "passwd").read_text().splitlines())
    assert set(passwd) == {"hub", CAC}
    assert verify_password(agent.mqtt.password or "", passwd[CAC])
    assert verify_password(hub.mqtt.password or "", passwd["hub"])
    acl = (root / "broker" / "acl").read_text()
    assert f"user {CAC}\n" in acl and f"topic write cac/v1/{CAC}/usage" in acl
    assert str(root.resolve() / "cacs" / CAC / "agent.toml") in r.stdout


def test_broker_config_has_the_settings_the_hub_needs(root: Path) -> None:
    conf = (root / "mosquitto.conf").read_text()
    for line in ["allow_anonymous false", "persistence true", "set_tcp_nodelay true",
                 "max_queued_messages 100000", "max_inflight_messages 100",
                 "persistent_client_expiration 30d", "use_username_as_clientid true",
                 f"password_file {root.resolve()}/broker/passwd",
                 f"acl_file {root.resolve()}/broker/acl",
                 f"persistence_location {root.resolve()}/broker/data/"]:
        assert re.search(f"^{re.escape(line)}$", conf, re.MULTILINE), line
    assert re.search(r"^listener \d+ 127\.0\.0\.1$", conf, re.MULTILINE)


def test_secret_files_are_0600_and_secrets_never_printed(root: Path) -> None:
    outputs = [provision("add-cac", "--dir", root, "--cac-id", c) for c in ("cac-one", "cac-two")]
    outputs.append(provision("revoke-cac", "--dir", root, "--cac-id", "cac-two"))
    outputs.append(provision("add-cac", "--dir", root, "--cac-id", "cac-one", "--replace"))
    secrets = secrets_of(root)
    assert len(secrets) == 1 + 5  # the hub; cac-one's password and 4 tokens
    for r in outputs:
        for s in secrets:
            assert s not in r.stdout and s not in r.stderr
    for name in ["hub.toml", "provision.json", "broker/passwd", "broker/acl",
                 "cacs/cac-one/agent.toml", "cacs/cac-one/enrol-cac-one.tar.gz",
                 "cacs/cac-one/enrol-cac-one.png"]:
        assert mode(root / name) == 0o600, name
    for d in ["broker", "cacs", "cacs/cac-one", "broker/data"]:
        assert mode(root / d) == 0o700, d
    revoked = list((root / "revoked").iterdir())
    assert [p.name.startswith("cac-two-") for p in revoked] == [True]
    assert mode(revoked[0]) == 0o700 and mode(revoked[0] / "agent.toml") == 0o600
    # files that are not secret hold no secret: config, ACL, registry (hashes only)
    for name in ["mosquitto.conf", "broker/acl", "provision.json", "broker/passwd"]:
        text = (root / name).read_text()
        assert not any(s in text for s in secrets), name
    assert mode(root / "mosquitto.conf") == 0o644


def test_add_existing_cac_refuses_unless_replace(root: Path) -> None:
    provision("add-cac", "--dir", root, "--cac-id", CAC)
    toml = root / "cacs" / CAC / "agent.toml"
    before = read_toml(toml)["mqtt"]["password"]
    one_line_error(provision("add-cac", "--dir", root, "--cac-id", CAC, check=False),
                   "already exists")
    assert read_toml(toml)["mqtt"]["password"] == before
    provision("add-cac", "--dir", root, "--cac-id", CAC, "--replace", "--stations", "1")
    doc = read_toml(toml)
    assert doc["mqtt"]["password"] != before and len(doc["stations"]) == 1
    reg = json.loads((root / "provision.json").read_text())
    assert verify_password(doc["mqtt"]["password"], reg["hashes"][CAC])
    assert not verify_password(before, reg["hashes"][CAC])


def test_clear_errors(root: Path, tmp_path: Path) -> None:
    one_line_error(provision("init-hub", "--dir", root, check=False), "already holds")
    one_line_error(provision("revoke-cac", "--dir", root, "--cac-id", "cac-nope", check=False),
                   "no CAC cac-nope")
    provision("add-cac", "--dir", root, "--cac-id", CAC)
    provision("revoke-cac", "--dir", root, "--cac-id", CAC)
    one_line_error(provision("revoke-cac", "--dir", root, "--cac-id", CAC, check=False),
                   "already revoked")
    one_line_error(provision("add-cac", "--dir", root, "--cac-id", "hub", check=False),
                   "hub's broker user")
    one_line_error(provision("add-cac", "--dir", tmp_path / "empty", "--cac-id", CAC,
                             check=False), "init-hub first")
    r = provision("add-cac", "--dir", root, "--cac-id", CAC, "--timezone", "Mars/Olympus",
                  check=False)
    assert r.returncode == 2 and "--timezone" in r.stderr
    # a revoked id may be enrolled again, with new credentials
    provision("add-cac", "--dir", root, "--cac-id", CAC)
    assert CAC not in json.loads((root / "provision.json").read_text())["revoked"]


def test_enrolment_bundle_contents(root: Path) -> None:
    provision("add-cac", "--dir", root, "--cac-id", CAC, "--stations", "2",
              "--agent-host", "192.168.1.10", "--agent-port", "8090")
    files = read_tarball(root / "cacs" / CAC / f"enrol-{CAC}.tar.gz")
    assert list(files) == ["enrol.json", "agent.toml", "kiosk/s1.env", "kiosk/s2.env"]
    agent = read_toml(root / "cacs" / CAC / "agent.toml")
    enrol = json.loads(files["enrol.json"])
    assert enrol == {"format": 1, "cac_id": CAC, "hub_id": "cac-hub",
                     "created_at": enrol["created_at"], "agent_url_port": 8090,
                     "stations": [{"id": s["id"], "token": s["token"]}
                                  for s in agent["stations"]]}
    bundled = read_toml_bytes(files["agent.toml"])
    assert bundled["data_dir"] == "/var/lib/cac-agent"
    assert bundled == agent  # the default data_dir: the same file
    s2 = agent["stations"][1]
    assert files["kiosk/s2.env"].decode() == (
        f"CAC_AGENT_URL=http://192.168.1.10:8090\nCAC_STATION=s2\nCAC_TOKEN={s2['token']}\n")
    import tarfile
    with tarfile.open(root / "cacs" / CAC / f"enrol-{CAC}.tar.gz") as tar:
        assert {m.mode for m in tar.getmembers()} == {0o600}


def read_toml_bytes(data: bytes) -> dict[str, object]:
    import tomllib
    return tomllib.loads(data.decode())


def test_qr_code_carries_the_whole_bundle(root: Path) -> None:
    provision("add-cac", "--dir", root, "--cac-id", CAC)
    files = read_tarball(root / "cacs" / CAC / f"enrol-{CAC}.tar.gz")
    enrolment = enrolment_from_files(files)
    assert bundle_files(enrolment) == files
    payload = qr_payload(enrolment)
    assert payload.startswith("CACENROL1:")
    assert files_from_qr_payload(payload) == files  # byte for byte, secrets included
    # the PNG written is exactly this payload's symbol (no QR decoder here: compare renders)
    png = (root / "cacs" / CAC / f"enrol-{CAC}.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png == qr_png(make_qr(enrolment))
    assert make_qr(enrolment).designator.endswith("-M")
    with pytest.raises(BundleError, match="prefix"):
        enrolment_from_qr("HELLO")
    with pytest.raises(BundleError, match="damaged"):
        enrolment_from_qr("CACENROL1:bm90IHpsaWI")


def test_too_many_stations_for_a_qr_code(root: Path) -> None:
    r = provision("add-cac", "--dir", root, "--cac-id", CAC, "--stations", "120")
    assert "no QR code" in r.stdout
    assert not (root / "cacs" / CAC / f"enrol-{CAC}.png").exists()
    files = read_tarball(root / "cacs" / CAC / f"enrol-{CAC}.tar.gz")
    assert len([f for f in files if f.startswith("kiosk/")]) == 120
    with pytest.raises(segno.DataOverflowError):
        make_qr(enrolment_from_files(files))


def test_files_survive_a_umask_that_would_open_them(root: Path) -> None:
    old = os.umask(0)
    try:
        provision("add-cac", "--dir", root, "--cac-id", CAC)
    finally:
        os.umask(old)
    assert mode(root / "cacs" / CAC / "agent.toml") == 0o600
    assert mode(root / "broker" / "passwd") == 0o600


def test_concurrent_add_cac_loses_nobody(root: Path) -> None:
    import subprocess
    import sys
    ids = [f"cac-par-{i}" for i in range(5)]
    procs = [subprocess.Popen([str(Path(sys.executable).parent / "cac-provision"), "add-cac",
                               "--dir", str(root), "--cac-id", c, "--stations", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for c in ids]
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read() if p.stderr else ""
        if p.stderr:
            p.stderr.close()
    users = {line.split(":", 1)[0] for line in
             (root / "broker" / "passwd").read_text().splitlines()}
    assert users == {"hub", *ids}
    acl = (root / "broker" / "acl").read_text()
    assert all(f"user {c}\n" in acl for c in ids)


def test_broker_files_belong_to_the_broker_user(tmp_path: Path) -> None:
    """As root, Mosquitto drops to user mosquitto before reading its files: hand them over."""
    import pwd
    root = tmp_path / "hub"
    provision("init-hub", "--dir", root)  # no --broker-user: Mosquitto's default
    try:
        want = pwd.getpwnam("mosquitto").pw_uid if os.geteuid() == 0 else os.geteuid()
    except KeyError:
        want = os.geteuid()
    for name in ["broker", "broker/passwd", "broker/acl", "broker/data"]:
        assert (root / name).stat().st_uid == want, name
    assert (root / "hub.toml").stat().st_uid == os.geteuid()
    assert "\nuser " not in (root / "mosquitto.conf").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes Mosquitto drop privileges")
def test_a_dir_the_broker_user_cannot_reach_is_refused_and_nothing_is_written(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """pytest's own tmp dirs are 0700 root, like `mktemp -d` or /root: Mosquitto, dropped to
    user mosquitto, could not open its password file there. Say so, write nothing."""
    private = tmp_path_factory.mktemp("private")  # 0700 parents
    assert mode(private.parent) == 0o700
    r = provision("init-hub", "--dir", private / "hub", check=False)
    one_line_error(r, "cannot enter")
    assert str(private.parent) in r.stderr and "chmod o+x" in r.stderr
    assert not (private / "hub").exists()

    # a hub that was reachable, then its parent was closed: add-cac / revoke-cac refuse too
    root = tmp_path / "hub"
    init_hub(root)
    provision("add-cac", "--dir", root, "--cac-id", CAC)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    os.chmod(tmp_path, 0o700)
    try:
        one_line_error(provision("add-cac", "--dir", root, "--cac-id", "ma-x-y-002",
                                 check=False), "cannot enter")
        one_line_error(provision("revoke-cac", "--dir", root, "--cac-id", CAC, check=False),
                       "cannot enter")
    finally:
        os.chmod(tmp_path, 0o755)
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != ".lock"}
    before.pop(root / ".lock", None)
    assert after == before


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes Mosquitto drop privileges")
def test_the_broker_written_by_init_hub_starts_with_the_default_user(tmp_path: Path) -> None:
    """No --broker-user: the broker drops to `mosquitto` and still reads what it was given."""
    root = tmp_path / "hub"
    init_hub(root)
    broker = ProvisionedBroker(root)
    broker.start()
    try:
        assert "Unable to open" not in broker.log_text()
    finally:
        broker.stop()
