"""ZIM packages (Kiwix archives: Wikipedia, Wiktionary, guides) read through libzim.

A package whose manifest says ``"kind": "zim"`` holds one ``.zim`` file. It syncs, resumes
and verifies like any blob; before it is installed the archive must open and pass libzim's
own checksum (``Archive.check``), so a truncated file, a file that is not a ZIM or one whose
inner checksum fails is refused and the previous version stays served. Installed, its
articles are served under ``/content/{package}/{article path}`` and its HTML articles go
into the agent's full-text index (agent/content/search.py) like any page, so Arabic and
French are normalised the same way (the ZIM's own Xapian index does not fold Arabic forms).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from libzim.reader import Archive

log = logging.getLogger(__name__)

KIND = "zim"
MEDIA_TYPE = "application/x-zim"
MAX_REDIRECTS = 8
MAX_ARTICLE_BYTES = 32 * 1024 * 1024


class ZimError(ValueError):
    """A ZIM file that cannot be used (the message says why)."""


def is_zim(manifest: dict[str, Any]) -> bool:
    return manifest.get("kind") == KIND


def zim_file(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry of a ZIM package's archive."""
    return dict(manifest["files"][0])


def check_archive(path: Path) -> dict[str, Any]:
    """Open and verify a ZIM file; ``{"title", "language", "main", "articles"}``.
    Raises ZimError for anything that is not a complete, intact ZIM archive."""
    try:
        archive = Archive(str(path))
    except RuntimeError as exc:
        raise ZimError(f"not a readable ZIM file: {exc}") from None
    if archive.has_checksum and not archive.check():
        raise ZimError("the ZIM file's internal checksum does not match (damaged or cut)")
    main = None
    if archive.has_main_entry:
        entry = archive.main_entry
        for _ in range(MAX_REDIRECTS):
            if not entry.is_redirect:
                break
            entry = entry.get_redirect_entry()
        main = entry.path

    def meta(key: str) -> str:
        try:
            return bytes(archive.get_metadata(key)).decode("utf-8", "replace")
        except (RuntimeError, KeyError):
            return ""

    return {"title": meta("Title"), "language": meta("Language"), "main": main,
            "articles": archive.article_count}


class ZimShelf:
    """Open archives by blob path, shared by the serving routes and the indexer (libzim's
    reader is safe to use from several threads; opening is guarded)."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()

    def archive(self, path: Path) -> Any:
        key = str(path)
        with self._lock:
            a = self._open.get(key)
            if a is None:
                a = Archive(key)
                self._open[key] = a
            return a

    def forget(self, path: Path) -> None:
        with self._lock:
            self._open.pop(str(path), None)

    def article(self, path: Path, article: str) -> tuple[bytes, str] | None:
        """(bytes, mimetype) of an article, redirects followed; None if there is none."""
        try:
            a = self.archive(path)
            if not a.has_entry_by_path(article):
                return None
            entry = a.get_entry_by_path(article)
            for _ in range(MAX_REDIRECTS):
                if not entry.is_redirect:
                    break
                entry = entry.get_redirect_entry()
            if entry.is_redirect:
                return None
            item = entry.get_item()
            if item.size > MAX_ARTICLE_BYTES:
                return None
            return bytes(item.content), str(item.mimetype)
        except RuntimeError as exc:
            log.warning("zim %s: cannot read %s: %s", path.name, article, exc)
            return None

    def main_path(self, path: Path) -> str | None:
        try:
            a = self.archive(path)
            if not a.has_main_entry:
                return None
            entry = a.main_entry
            for _ in range(MAX_REDIRECTS):
                if not entry.is_redirect:
                    break
                entry = entry.get_redirect_entry()
            return str(entry.path)
        except RuntimeError:
            return None

    def pages(self, path: Path) -> Iterator[tuple[str, str, bytes, str]]:
        """Every HTML article that is not a redirect: (path, title, bytes, mimetype)."""
        a = self.archive(path)
        for i in range(a.entry_count):
            try:
                entry = a._get_entry_by_id(i)
                if entry.is_redirect:
                    continue
                item = entry.get_item()
                mt = str(item.mimetype)
                if not mt.startswith("text/html") or item.size > MAX_ARTICLE_BYTES:
                    continue
                yield str(entry.path), str(entry.title), bytes(item.content), mt
            except RuntimeError as exc:
                log.warning("zim %s: entry %d unreadable: %s", path.name, i, exc)
