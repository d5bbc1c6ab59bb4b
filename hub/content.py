"""Offline portal content at the hub: a package store and the HTTP routes CACs sync from.

A *package* is a directory of files plus ``manifest.json`` (CONTRACT: id, version, title,
language, description, files with path/size/sha256/title/media_type). The hub recomputes
every file's size and sha256 itself; the directory's manifest only contributes the
package's metadata and per-file titles.

Layout under ``DATA_DIR/content/``::

    blobs/ab/abcdef...        file bodies, named by sha256 (immutable)
    manifests/{id}/{v}.json   the exact manifest bytes the CACs verify
    catalogue.json            {"format": 1, "packages": [{id, version, title, language,
                              description, manifest_sha256, size, file_count}]}

Routes: ``GET /api/v1/content/catalogue`` (strong ETag = sha256 of the catalogue bytes,
``If-None-Match`` -> 304, so a CAC's poll costs one small round trip),
``GET /api/v1/content/packages/{id}/{version}`` (a manifest) and
``GET /content/blobs/{sha256}`` (a file body; ``Range`` supported, cached forever).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common import signing
from common.durable import atomic_write_bytes
from wire.content import (  # noqa: F401 - re-exported for the hub's callers
    LANGUAGE_RE,
    MANIFEST,
    MAX_FILES,
    MAX_PATH,
    PACKAGE_ID_RE,
    SEGMENT_RE,
    SHA256_RE,
    TEXT_TYPES,
    ContentError,
    check_manifest,
    check_path,
    encode_manifest,
    media_type,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hub.config import HubConfig

KEEP_VERSIONS = 2  # the newest and the one before it (a CAC may be syncing it right now)
CHUNK = 1 << 20


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def scan_package(directory: Path, version: int = 1) -> dict[str, Any]:
    """Build a package's manifest from its directory: metadata and titles from its
    ``manifest.json``, sizes, hashes and media types from the files themselves."""
    if not directory.is_dir():
        raise ContentError(f"{directory} is not a directory")
    try:
        meta = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContentError(f"{directory} has no {MANIFEST} (id, title, language)") from None
    except (OSError, ValueError) as exc:
        raise ContentError(f"{directory / MANIFEST} is not readable JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ContentError(f"{directory / MANIFEST} must hold a JSON object")
    titles = {}
    for f in meta.get("files") or []:
        if isinstance(f, dict) and isinstance(f.get("path"), str):
            titles[f["path"]] = f.get("title")
    files = []
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory).as_posix()
        if rel == MANIFEST or any(part.startswith(".") for part in rel.split("/")):
            continue
        if p.is_symlink():
            raise ContentError(f"{rel}: symbolic links are not allowed in a package")
        if p.is_dir():
            continue
        check_path(rel)
        sha, size = sha256_file(p)
        entry: dict[str, Any] = {"path": rel, "size": size, "sha256": sha,
                                 "media_type": media_type(rel)}
        if titles.get(rel):
            entry["title"] = titles[rel]
        files.append(entry)
    order = {path: i for i, path in enumerate(titles)}  # the directory manifest's order first
    files.sort(key=lambda f: (order.get(f["path"], len(order)), f["path"]))
    manifest = {"id": meta.get("id"), "version": version, "title": meta.get("title"),
                "language": meta.get("language"), "description": meta.get("description", ""),
                "files": files}
    if meta.get("kind", "files") != "files":  # a ZIM package: one .zim file (wire/content.py)
        manifest["kind"] = meta["kind"]
    return check_manifest(manifest)


# ---------------------------------------------------------------- the store


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # readable like any served file; the pid keeps the temp files of hub workers apart
    atomic_write_bytes(path, data, mode=0o644, tag=str(os.getpid()))


@dataclass(frozen=True)
class AddResult:
    id: str
    version: int
    changed: bool
    files: int
    size: int
    new_blobs: int


class ContentStore:
    """Packages by id and version, file bodies by sha256, one catalogue (see module doc).

    With ``signer`` (the hub's Ed25519 key) the catalogue and each manifest get a signature
    file beside them (``.sig``: base64), served in the ``X-Content-Signature`` header; the
    catalogue carries a ``serial`` that grows with every change, so a CAC can refuse an old
    catalogue replayed to it."""

    def __init__(self, root: Path, signer: Ed25519PrivateKey | None = None) -> None:
        self.signer = signer
        self.root = root
        self.blobs = root / "blobs"
        self.manifests = root / "manifests"
        self.catalogue_path = root / "catalogue.json"
        self._cache: tuple[tuple[int, int], bytes, str] | None = None

    def blob_path(self, sha: str) -> Path:
        return self.blobs / sha[:2] / sha

    def catalogue(self) -> tuple[bytes, str]:
        """The catalogue bytes and its strong ETag (re-read when another process wrote it)."""
        try:
            st = self.catalogue_path.stat()
        except FileNotFoundError:
            data = json.dumps({"format": 1, "packages": []}).encode()
            return data, f'"{hashlib.sha256(data).hexdigest()}"'
        key = (st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != key:
            data = self.catalogue_path.read_bytes()
            self._cache = (key, data, f'"{hashlib.sha256(data).hexdigest()}"')
        return self._cache[1], self._cache[2]

    def _serial(self) -> int:
        data, _ = self.catalogue()
        serial = json.loads(data).get("serial", 0)
        return serial if isinstance(serial, int) else 0

    def packages(self) -> list[dict[str, Any]]:
        data, _ = self.catalogue()
        pkgs: list[dict[str, Any]] = json.loads(data)["packages"]
        return pkgs

    def manifest_bytes(self, pid: str, version: int) -> bytes | None:
        try:
            return (self.manifests / pid / f"{version}.json").read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def signature(self, path: Path) -> str | None:
        """The signature stored beside a catalogue or manifest file, if any."""
        try:
            return path.with_name(path.name + ".sig").read_text("ascii").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def _write_signed(self, path: Path, data: bytes, purpose: bytes) -> None:
        if self.signer is not None:  # the signature first: a reader never sees new bytes
            _atomic_write(path.with_name(path.name + ".sig"),  # with no signature at all
                          signing.sign(self.signer, purpose, data).encode())
        _atomic_write(path, data)

    def resign(self) -> int:
        """Sign again every manifest and the catalogue whose signature is missing or not by
        this signer (a new key, content added before the hub had one); the count."""
        if self.signer is None:
            return 0
        public = self.signer.public_key()
        done = 0
        if not self.catalogue_path.exists():  # a new hub: an empty, signed catalogue
            self.root.mkdir(parents=True, exist_ok=True)
            self._write_signed(self.catalogue_path, json.dumps(
                {"format": 1, "packages": [], "serial": 1}).encode(), signing.CATALOGUE)
            done += 1
        files = [(p, signing.MANIFEST) for p in self.manifests.glob("*/*.json")]
        if self.catalogue_path.exists():
            files.append((self.catalogue_path, signing.CATALOGUE))
        for path, purpose in files:
            data = path.read_bytes()
            if not signing.verify(public, purpose, data, self.signature(path)):
                self._write_signed(path, data, purpose)
                done += 1
        return done

    def add(self, directory: Path) -> AddResult:
        """Add a package or replace the one with the same id (its version goes up by one;
        a package whose files and metadata did not change keeps its version)."""
        manifest = scan_package(directory)
        pid = manifest["id"]
        pkgs = self.packages()
        old = next((p for p in pkgs if p["id"] == pid), None)
        if old is not None:
            old_bytes = self.manifest_bytes(pid, old["version"])
            if old_bytes is not None:
                prev = json.loads(old_bytes)
                if {**prev, "version": 0} == {**manifest, "version": 0}:
                    return AddResult(pid, old["version"], False, len(manifest["files"]),
                                     sum(f["size"] for f in manifest["files"]), 0)
            manifest["version"] = old["version"] + 1
        new_blobs = 0
        for f in manifest["files"]:
            dest = self.blob_path(f["sha256"])
            if dest.exists():
                continue
            src = directory / f["path"]
            data = src.read_bytes()
            if hashlib.sha256(data).hexdigest() != f["sha256"]:
                raise ContentError(f"{src} changed while it was being added; try again")
            _atomic_write(dest, data)
            new_blobs += 1
        raw = encode_manifest(manifest)
        self._write_signed(self.manifests / pid / f"{manifest['version']}.json", raw,
                           signing.MANIFEST)
        size = sum(f["size"] for f in manifest["files"])
        entry = {"id": pid, "version": manifest["version"], "title": manifest["title"],
                 "language": manifest["language"], "description": manifest["description"],
                 "manifest_sha256": hashlib.sha256(raw).hexdigest(), "size": size,
                 "file_count": len(manifest["files"])}
        pkgs = [p for p in pkgs if p["id"] != pid] + [entry]
        pkgs.sort(key=lambda p: p["id"])
        self._write_signed(self.catalogue_path, json.dumps(
            {"format": 1, "packages": pkgs, "serial": self._serial() + 1},
            ensure_ascii=False, sort_keys=True).encode(), signing.CATALOGUE)
        self._prune(pid, manifest["version"])
        return AddResult(pid, manifest["version"], True, len(manifest["files"]), size, new_blobs)

    def _prune(self, pid: str, version: int) -> None:
        """Drop manifests older than KEEP_VERSIONS, then blobs no kept manifest names."""
        for p in (self.manifests / pid).glob("*.json"):
            with contextlib.suppress(ValueError):
                if int(p.stem) <= version - KEEP_VERSIONS:
                    p.unlink()
                    p.with_name(p.name + ".sig").unlink(missing_ok=True)
        wanted: set[str] = set()
        for p in self.manifests.glob("*/*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                wanted.update(f["sha256"] for f in json.loads(p.read_bytes())["files"])
        for blob in self.blobs.glob("*/*"):
            if blob.name not in wanted and SHA256_RE.fullmatch(blob.name):
                blob.unlink()


# ---------------------------------------------------------------- HTTP routes

STORE = web.AppKey("content_store", ContentStore)
_VERSION_RE = re.compile(r"[0-9]{1,9}")  # ASCII digits: str.isdigit() takes "²", int() not
IMMUTABLE = "public, max-age=31536000, immutable"


def _etag_matches(request: web.Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    return any(t.strip() in (etag, "*") for t in header.split(",")) if header else False


def _signed(headers: dict[str, str], sig: str | None) -> dict[str, str]:
    if sig:
        headers[signing.HEADER] = sig
    return headers


async def get_catalogue(request: web.Request) -> web.Response:
    store = request.app[STORE]
    data, etag = store.catalogue()
    headers = _signed({"ETag": etag, "Cache-Control": "no-cache"},
                      store.signature(store.catalogue_path))
    if _etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type="application/json", headers=headers)


async def get_manifest(request: web.Request) -> web.Response:
    pid = request.match_info["id"]
    version = request.match_info["version"]
    raw = None
    store = request.app[STORE]
    if PACKAGE_ID_RE.fullmatch(pid) and _VERSION_RE.fullmatch(version):
        raw = store.manifest_bytes(pid, int(version))
    if raw is None:
        return web.json_response({"error": "not_found",
                                  "message": f"no package {pid[:64]!r} version {version[:10]}"},
                                 status=404)
    etag = f'"{hashlib.sha256(raw).hexdigest()}"'
    headers = _signed({"ETag": etag, "Cache-Control": IMMUTABLE},
                      store.signature(store.manifests / pid / f"{int(version)}.json"))
    if _etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=raw, content_type="application/json", headers=headers)


async def get_blob(request: web.Request) -> web.StreamResponse:
    sha = request.match_info["sha"]
    path = request.app[STORE].blob_path(sha) if SHA256_RE.fullmatch(sha) else None
    if path is None or not path.is_file():
        return web.json_response({"error": "not_found", "message": "no such blob"}, status=404)
    # FileResponse answers Range with 206 + Content-Range; blobs have no .gz siblings
    return web.FileResponse(path, headers={"Cache-Control": IMMUTABLE,
                                           "Content-Type": "application/octet-stream"})


def setup(app: web.Application, root: Path,
          signer: Ed25519PrivateKey | None = None) -> ContentStore:
    """Serve the content store under ``root`` from ``app`` (signed with ``signer``)."""
    store = ContentStore(root, signer)
    if signer is not None and store.resign():
        log.info("content catalogue and manifests signed with the hub's key")
    app[STORE] = store
    app.router.add_get("/api/v1/content/catalogue", get_catalogue)
    app.router.add_get("/api/v1/content/packages/{id}/{version}", get_manifest)
    app.router.add_get("/content/blobs/{sha}", get_blob)
    return store


# ---------------------------------------------------------------- `cac-hub add-content`


EXPORT_DIR = "cac-content"  # on the stick: the store's own layout, signatures beside


def _copy_durable(src: Path, dest: Path) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fin, dest.open("wb") as fout:
        shutil.copyfileobj(fin, fout, CHUNK)
        fout.flush()
        os.fsync(fout.fileno())  # a stick may be pulled as soon as the command returns
    return dest.stat().st_size


def export_store(store: ContentStore, out: Path) -> tuple[int, int]:
    """Write the current catalogue, its manifests and their files (with the signature files
    beside) to ``out/cac-content``, replacing an older export there; (packages, bytes).
    The copy is made next to it and renamed into place, so a stick never holds half an
    export under the name the agent reads."""
    if not store.catalogue_path.exists():
        raise ContentError("the hub has no content to export (cac-hub add-content first)")
    final, tmp = out / EXPORT_DIR, out / (EXPORT_DIR + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    total = 0
    files = [store.catalogue_path]
    pkgs = store.packages()
    for pkg in pkgs:
        mpath = store.manifests / pkg["id"] / f"{pkg['version']}.json"
        files.append(mpath)
        manifest = json.loads(mpath.read_bytes())
        files += [store.blob_path(f["sha256"]) for f in manifest["files"]]
    for src in dict.fromkeys(files):  # a blob shared by two packages is copied once
        total += _copy_durable(src, tmp / src.relative_to(store.root))
        sig = src.with_name(src.name + ".sig")
        if sig.exists():
            total += _copy_durable(sig, tmp / sig.relative_to(store.root))
    old = out / (EXPORT_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return len(pkgs), total


def _command(prog: str, description: str, argv: list[str],
             add: Callable[[argparse.ArgumentParser], Any]) -> tuple[argparse.Namespace,
                                                                     HubConfig | None]:
    """A content subcommand's arguments (``--config`` and ``add``'s) and its hub config,
    None when the config is bad (the one-line error is printed)."""
    from hub.config import ConfigError, load_hub_config

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--config", required=True, metavar="HUB.toml")
    add(p)
    args = p.parse_args(argv)
    try:
        return args, load_hub_config(Path(args.config))
    except ConfigError as exc:
        print(f"cac-hub: error: bad config {args.config}: {exc}", file=sys.stderr)
        return args, None


def export_content_main(argv: list[str]) -> int:
    """``cac-hub export-content --config HUB.toml --out DIR``: the published content, signed,
    for a USB stick (``cac-agent import-content`` installs it at a CAC)."""
    args, config = _command(
        "cac-hub export-content",
        "Write every published content package (catalogue, manifests, files and their "
        "signatures) to DIR/cac-content, e.g. a USB stick; a CAC installs it with "
        "'cac-agent import-content' and the same checks as a sync.", argv,
        lambda p: p.add_argument("--out", required=True, metavar="DIR", type=Path))
    if config is None:
        return 2
    if not args.out.is_dir():
        print(f"cac-hub: error: {args.out} is not a directory (mount the stick first)",
              file=sys.stderr)
        return 2
    store = ContentStore(config.data_dir / "content")
    try:
        n, size = export_store(store, args.out)
    except ContentError as exc:
        print(f"cac-hub: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cac-hub: error: cannot write {args.out}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    signed = store.signature(store.catalogue_path) is not None
    print(f"exported {n} packages, {size} bytes, to {args.out / EXPORT_DIR}"
          + ("" if signed else " (UNSIGNED: this hub has no signing key)"))
    return 0


def add_content_main(argv: list[str]) -> int:
    """``cac-hub add-content --config HUB.toml DIR...``: add or replace packages."""
    args, config = _command(
        "cac-hub add-content",
        "Add content packages (directories with a manifest.json giving id, title and "
        "language) to the hub's catalogue; a package with a known id replaces it as the next "
        "version. CACs pick it up at their next sync.", argv,
        lambda p: p.add_argument("dirs", nargs="+", metavar="DIR", type=Path))
    if config is None:
        return 2
    try:
        signer = (signing.load_private(config.signing_key_file)
                  if config.signing_key_file is not None else None)
    except signing.SigningError as exc:
        print(f"cac-hub: error: {exc}", file=sys.stderr)
        return 2
    store = ContentStore(config.data_dir / "content", signer)
    store.resign()
    for d in args.dirs:
        try:
            r = store.add(d)
        except ContentError as exc:
            print(f"cac-hub: error: {d}: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"cac-hub: error: {d}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        state = f"version {r.version}" if r.changed else f"unchanged (version {r.version})"
        print(f"{r.id}: {state}, {r.files} files, {r.size} bytes, {r.new_blobs} new")
    return 0
