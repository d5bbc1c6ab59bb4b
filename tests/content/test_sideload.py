"""USB sideload (issue 21, CONTRACT §1/§10): `cac-hub export-content` writes the signed
content to a stick, `cac-agent import-content` installs it at a CAC that never reached the
hub, with the same checks as a sync; a stick whose files or catalogue were changed installs
nothing; a running agent is not written under. The real commands, as the README runs them."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from agent_support import config_dict
from content_support import STARTER

from agent.content.search import SearchIndex
from common import signing
from provisioning.configs import to_toml

BIN = Path(sys.executable).parent
PACKAGES = ("guides-admin-ar", "sme-toolkit-fr")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=120, check=False, stdin=subprocess.DEVNULL)


def hub_with_content(tmp: Path) -> tuple[Path, str]:
    """A hub that signs (its key made as init-hub makes it) with two starter packages."""
    tmp.mkdir(parents=True, exist_ok=True)
    public = signing.new_key_file(tmp / "content-signing.pem")
    cfg = tmp / "hub.toml"
    cfg.write_text(f'hub_id = "hub-test"\ndata_dir = "{tmp / "data"}"\n'
                   'offline_after_seconds = 90\n[mqtt]\nhost = "127.0.0.1"\nport = 1883\n'
                   '[http]\nhost = "127.0.0.1"\n'
                   f'port = 0\n[content]\nsigning_key_file = "{tmp / "content-signing.pem"}"\n')
    r = run("cac-hub", "add-content", "--config", str(cfg), *(str(STARTER / p) for p in PACKAGES))
    assert r.returncode == 0, r.stderr
    return cfg, public


def agent_config(tmp: Path, public: str | None) -> Path:
    cfg = config_dict(tmp / "agent-data")
    cfg["content"] = {"signing_key": public} if public else {}
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "agent.toml"
    path.write_text(to_toml(cfg))
    return path


def installed(data: Path) -> dict[str, int]:
    return {p.parent.name: json.loads(p.read_bytes())["version"]
            for p in (data / "content" / "packages").glob("*/manifest.json")}


def test_export_to_a_stick_and_import_at_an_offline_cac(tmp_path: Path) -> None:
    hub_toml, public = hub_with_content(tmp_path / "hub")
    stick = tmp_path / "stick"
    stick.mkdir()
    r = run("cac-hub", "export-content", "--config", str(hub_toml), "--out", str(stick))
    assert r.returncode == 0, r.stderr
    assert "exported 2 packages" in r.stdout and "UNSIGNED" not in r.stdout
    assert (stick / "cac-content" / "catalogue.json.sig").is_file()
    assert not (stick / "cac-content.partial").exists()

    agent_toml = agent_config(tmp_path / "cac", public)
    r = run("cac-agent", "import-content", "--config", str(agent_toml), str(stick))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 packages installed" in r.stdout and "warning" not in r.stderr
    data = tmp_path / "cac" / "agent-data"
    assert installed(data) == {p: 1 for p in PACKAGES}
    # byte for byte what the hub published, and found by the search like a synced package
    for pid in PACKAGES:
        m = json.loads((data / "content" / "packages" / pid / "manifest.json").read_bytes())
        for f in m["files"]:
            blob = data / "content" / "blobs" / f["sha256"][:2] / f["sha256"]
            assert blob.read_bytes() == (STARTER / pid / f["path"]).read_bytes()
    idx = SearchIndex(data / "content" / "search.sqlite")
    assert idx.search("بطاقه وطنيه")[0]["path"] == "bitaqa-wataniya.html"
    idx.close()
    # the same stick again: nothing new, still fine
    r = run("cac-agent", "import-content", "--config", str(agent_toml), str(stick))
    assert r.returncode == 0 and "0 packages installed" in r.stdout, r.stdout + r.stderr


def test_a_changed_stick_installs_nothing(tmp_path: Path) -> None:
    hub_toml, public = hub_with_content(tmp_path / "hub")
    good = tmp_path / "good"
    good.mkdir()
    assert run("cac-hub", "export-content", "--config", str(hub_toml),
               "--out", str(good)).returncode == 0
    agent_toml = agent_config(tmp_path / "cac", public)
    data = tmp_path / "cac" / "agent-data"

    def tampered(name: str, change) -> Path:
        d = tmp_path / name
        shutil.copytree(good, d)
        change(d / "cac-content")
        return d

    def swap_file(root: Path) -> None:  # a page of sme-toolkit-fr replaced, manifest as signed
        m = json.loads(next((root / "manifests" / "sme-toolkit-fr").glob("*.json")).read_bytes())
        sha = m["files"][0]["sha256"]
        (root / "blobs" / sha[:2] / sha).write_bytes(b"<html>injected</html>")

    def forge_catalogue(root: Path) -> None:  # the catalogue rewritten, old signature
        cat = json.loads((root / "catalogue.json").read_bytes())
        cat["serial"] = cat.get("serial", 0) + 100
        (root / "catalogue.json").write_text(json.dumps(cat))

    def strip_signatures(root: Path) -> None:
        for sig in root.rglob("*.sig"):
            sig.unlink()

    for name, change in (("forged", forge_catalogue), ("unsigned", strip_signatures)):
        r = run("cac-agent", "import-content", "--config", str(agent_toml),
                str(tampered(name, change)))
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        assert r.stderr.strip().splitlines()[-1].startswith("cac-agent: error: "), r.stderr
        assert installed(data) == {}, name
    # one file swapped: that package is refused, the intact one installs (as in a sync)
    r = run("cac-agent", "import-content", "--config", str(agent_toml),
            str(tampered("swapped", swap_file)))
    assert r.returncode == 1 and "blob" in r.stderr, r.stderr
    assert installed(data) == {"guides-admin-ar": 1}
    # the good stick still installs after the refused ones
    r = run("cac-agent", "import-content", "--config", str(agent_toml), str(good))
    assert r.returncode == 0 and installed(data) == {p: 1 for p in PACKAGES}, r.stderr


def test_bad_sources_and_a_running_agent(tmp_path: Path) -> None:
    hub_toml, public = hub_with_content(tmp_path / "hub")
    agent_toml = agent_config(tmp_path / "cac", public)
    data = tmp_path / "cac" / "agent-data"
    empty = tmp_path / "empty-stick"
    empty.mkdir()
    r = run("cac-agent", "import-content", "--config", str(agent_toml), str(empty))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "no content export" in r.stderr
    r = run("cac-hub", "export-content", "--config", str(hub_toml),
            "--out", str(tmp_path / "not-mounted"))
    assert r.returncode == 2 and "not a directory" in r.stderr
    # the agent holds its data directory: the import refuses and writes nothing
    stick = tmp_path / "stick"
    stick.mkdir()
    assert run("cac-hub", "export-content", "--config", str(hub_toml),
               "--out", str(stick)).returncode == 0
    data.mkdir(parents=True)
    fd = os.open(data / "agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = run("cac-agent", "import-content", "--config", str(agent_toml), str(stick))
    finally:
        os.close(fd)
    assert r.returncode == 2 and "stop it first" in r.stderr
    assert not (data / "content").exists()
    # without a signing key: installed on checksums alone, and it says so
    plain = agent_config(tmp_path / "plain", None)
    r = run("cac-agent", "import-content", "--config", str(plain), str(stick / "cac-content"))
    assert r.returncode == 0 and "checksums only" in r.stderr, r.stderr
