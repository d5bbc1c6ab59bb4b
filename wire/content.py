"""Content package manifests: the pure checks the hub (publisher) and agent (cache) share.

A manifest: {"id", "version", "title", "language", "description", "files": [{"path", "size",
"sha256", "title", "media_type"}], "kind": optional "files" | "zim"}. See hub/content.py
(publishing) and agent/content.py (the verified cache).
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
from typing import Any

PACKAGE_ID_RE = re.compile(r"[a-z0-9-]{1,64}")
LANGUAGE_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
SEGMENT_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
MANIFEST = "manifest.json"
MAX_FILES = 10_000
MAX_PATH = 512

TEXT_TYPES = {".html": "text/html", ".htm": "text/html", ".csv": "text/csv",
              ".txt": "text/plain", ".css": "text/css", ".md": "text/markdown",
              ".svg": "image/svg+xml", ".json": "application/json",
              ".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg",
              ".jpeg": "image/jpeg", ".webp": "image/webp", ".mp4": "video/mp4",
              ".mp3": "audio/mpeg", ".ods": "application/vnd.oasis.opendocument.spreadsheet",
              ".odt": "application/vnd.oasis.opendocument.text", ".zim": "application/x-zim"}
KINDS = ("files", "zim")  # a package of files, or one Kiwix ZIM archive


class ContentError(ValueError):
    """A package directory or manifest is not acceptable; the message says why."""


def media_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    mt = TEXT_TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    if mt.startswith("text/") or mt in ("application/json", "image/svg+xml"):
        mt += "; charset=utf-8"
    return mt


def check_path(path: object) -> str:
    """A manifest file path: relative, posix, no ``..``, no dot-files, no backslashes."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH:
        raise ContentError(f"bad file path {path!r}")
    parts = path.split("/")
    if not all(SEGMENT_RE.fullmatch(p) for p in parts):
        raise ContentError(f"bad file path {path!r}: segments are [A-Za-z0-9._-], "
                           "not starting with a dot")
    return path


def check_manifest(m: object) -> dict[str, Any]:
    """Validate a manifest (as sent by the hub or read from a package); raises ContentError."""
    if not isinstance(m, dict):
        raise ContentError("a manifest must be a JSON object")
    pid = m.get("id")
    if not isinstance(pid, str) or not PACKAGE_ID_RE.fullmatch(pid):
        raise ContentError(f"manifest id must match [a-z0-9-]{{1,64}}, got {pid!r}")
    version = m.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ContentError(f"{pid}: version must be a positive integer")
    for key in ("title", "language"):
        if not isinstance(m.get(key), str) or not m[key].strip():
            raise ContentError(f"{pid}: {key!r} is required")
    if not LANGUAGE_RE.fullmatch(m["language"]):
        raise ContentError(f"{pid}: language must be a code like 'ar' or 'fr'")
    if not isinstance(m.get("description", ""), str):
        raise ContentError(f"{pid}: description must be a string")
    files = m.get("files")
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise ContentError(f"{pid}: files must be a non-empty list (at most {MAX_FILES})")
    seen: set[str] = set()
    for f in files:
        if not isinstance(f, dict):
            raise ContentError(f"{pid}: each file must be an object")
        path = check_path(f.get("path"))
        if path in seen:
            raise ContentError(f"{pid}: file {path!r} listed twice")
        seen.add(path)
        size = f.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ContentError(f"{pid}: {path}: size must be a non-negative integer")
        if not isinstance(f.get("sha256"), str) or not SHA256_RE.fullmatch(f["sha256"]):
            raise ContentError(f"{pid}: {path}: sha256 must be 64 lowercase hex digits")
        if not isinstance(f.get("media_type"), str) or not f["media_type"]:
            raise ContentError(f"{pid}: {path}: media_type is required")
        if "title" in f and f["title"] is not None and not isinstance(f["title"], str):
            raise ContentError(f"{pid}: {path}: title must be a string")
    kind = m.get("kind", "files")
    if kind not in KINDS:
        raise ContentError(f"{pid}: kind must be one of {', '.join(KINDS)}")
    if kind == "zim" and (len(files) != 1 or not files[0]["path"].endswith(".zim")):
        raise ContentError(f"{pid}: a ZIM package holds exactly one .zim file")
    return m


def encode_manifest(m: dict[str, Any]) -> bytes:
    """The canonical bytes of a manifest (what the catalogue's manifest_sha256 covers)."""
    return json.dumps(m, ensure_ascii=False, sort_keys=True, indent=1).encode() + b"\n"
