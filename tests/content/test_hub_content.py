"""The hub's content store, its HTTP routes and `cac-hub add-content`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from aiohttp import web
from content_support import STARTER, make_package

from hub.cli import main as hub_main
from hub.content import ContentError, ContentStore, check_path, scan_package
from hub.content import setup as hub_setup


def test_versions_go_up_only_when_something_changed(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    src = tmp_path / "src"
    r1 = store.add(make_package(src, "pkg", {"a.txt": b"one", "sub/b.html": b"<p>two</p>"}))
    assert (r1.version, r1.changed, r1.new_blobs) == (1, True, 2)
    r2 = store.add(src / "pkg")
    assert (r2.version, r2.changed) == (1, False)
    r3 = store.add(make_package(src, "pkg", {"a.txt": b"one", "sub/b.html": b"<p>2</p>"}))
    assert (r3.version, r3.new_blobs) == (2, 1)
    r4 = store.add(make_package(src, "pkg", {"a.txt": b"one!", "sub/b.html": b"<p>2</p>"}))
    assert r4.version == 3
    [entry] = store.packages()
    assert entry["version"] == 3 and entry["file_count"] == 2
    raw = store.manifest_bytes("pkg", 3)
    assert raw is not None and hashlib.sha256(raw).hexdigest() == entry["manifest_sha256"]
    m = json.loads(raw)
    assert {f["path"] for f in m["files"]} == {"a.txt", "sub/b.html"}
    assert next(f for f in m["files"] if f["path"] == "sub/b.html")["media_type"] == \
        "text/html; charset=utf-8"
    # versions older than the one before are pruned, with the blobs only they named
    assert store.manifest_bytes("pkg", 1) is None and store.manifest_bytes("pkg", 2)
    assert not store.blob_path(hashlib.sha256(b"<p>two</p>").hexdigest()).exists()
    assert store.blob_path(hashlib.sha256(b"one!").hexdigest()).exists()


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a\\b", ".hidden", "a//b", "a/./b",
                                 "", "a/../b", "é.txt"])
def test_bad_paths_are_refused(bad: str) -> None:
    with pytest.raises(ContentError):
        check_path(bad)


def test_a_package_dir_must_be_sound(tmp_path: Path) -> None:
    d = make_package(tmp_path, "pkg", {"a.txt": b"x"})
    (d / "link").symlink_to("/etc/passwd")
    with pytest.raises(ContentError, match="symbolic links"):
        scan_package(d)
    (d / "link").unlink()
    (d / "manifest.json").write_text(json.dumps({"id": "Bad Id", "title": "t",
                                                 "language": "fr"}))
    with pytest.raises(ContentError, match="id must match"):
        scan_package(d)
    (d / "manifest.json").unlink()
    with pytest.raises(ContentError, match="no manifest.json"):
        scan_package(d)


def test_starter_content_is_complete_and_marked(tmp_path: Path) -> None:
    ids = set()
    for d in sorted(p for p in STARTER.iterdir() if (p / "manifest.json").is_file()):
        m = scan_package(d)
        ids.add(m["id"])
        stored = json.loads((d / "manifest.json").read_text())
        assert stored["files"] == m["files"], f"run content/refresh_manifests.py ({d.name})"
        for f in m["files"]:
            text = (d / f["path"]).read_text(encoding="utf-8")
            if f["path"].endswith(".html"):
                assert "http://" not in text and "https://" not in text  # self-contained
                if m["language"] == "ar":
                    assert 'dir="rtl"' in text and 'lang="ar"' in text
                if m["id"].startswith("guides-"):
                    assert "EXEMPLE / مثال" in text or "مثال / EXEMPLE" in text
    assert ids == {"sme-toolkit-fr", "sme-toolkit-ar", "guides-admin-fr", "guides-admin-ar"}


async def test_routes_catalogue_304_manifest_and_ranged_blob(tmp_path: Path,
                                                              aiohttp_client) -> None:
    app = web.Application()
    store = hub_setup(app, tmp_path / "store")
    client = await aiohttp_client(app)
    resp = await client.get("/api/v1/content/catalogue")
    assert resp.status == 200 and (await resp.json())["packages"] == []
    data = os.urandom(10_000)
    store.add(make_package(tmp_path / "src", "pkg", {"d.bin": data}))
    resp = await client.get("/api/v1/content/catalogue")
    etag = resp.headers["ETag"]
    body = await resp.read()
    assert etag == f'"{hashlib.sha256(body).hexdigest()}"'
    resp = await client.get("/api/v1/content/catalogue", headers={"If-None-Match": etag})
    assert resp.status == 304 and resp.headers["ETag"] == etag
    resp = await client.get("/api/v1/content/packages/pkg/1")
    assert resp.status == 200 and (await resp.json())["id"] == "pkg"
    assert "immutable" in resp.headers["Cache-Control"]
    for bad in ("/api/v1/content/packages/pkg/2", "/api/v1/content/packages/..%2f/1",
                "/api/v1/content/packages/pkg/x", "/content/blobs/../catalogue.json",
                "/content/blobs/" + "0" * 64):
        assert (await client.get(bad)).status == 404, bad
    sha = hashlib.sha256(data).hexdigest()
    resp = await client.get(f"/content/blobs/{sha}", headers={"Range": "bytes=4000-",
                                                              "Accept-Encoding": "identity"})
    assert resp.status == 206 and await resp.read() == data[4000:]
    assert resp.headers["Content-Range"] == f"bytes 4000-9999/{len(data)}"
    assert "immutable" in resp.headers["Cache-Control"]


def test_cli_add_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'hub_id = "hub-test"\ndata_dir = "{tmp_path / "data"}"\n'
                   'offline_after_seconds = 90\n[mqtt]\nhost = "127.0.0.1"\nport = 1883\n'
                   '[http]\nhost = "127.0.0.1"\nport = 0\n')
    dirs = [str(STARTER / n) for n in ("sme-toolkit-fr", "sme-toolkit-ar", "guides-admin-fr",
                                       "guides-admin-ar")]
    assert hub_main(["add-content", "--config", str(cfg), *dirs]) == 0
    out = capsys.readouterr().out
    assert "sme-toolkit-ar: version 1, 5 files" in out
    assert hub_main(["add-content", "--config", str(cfg), dirs[0]]) == 0
    assert "unchanged (version 1)" in capsys.readouterr().out
    store = ContentStore(tmp_path / "data" / "content")
    assert [p["id"] for p in store.packages()] == sorted(Path(d).name for d in dirs)
    assert hub_main(["add-content", "--config", str(cfg), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no manifest.json" in err
