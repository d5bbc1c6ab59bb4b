"""Full-text search over the installed content packages (SQLite FTS5, one file beside the cache).

A package's text is indexed when it installs and dropped when it is removed or evicted;
``reconcile`` at start mends an index that an older agent, a crash or a lost file left
behind. The text is normalised in Python before FTS5 sees it, word by word and the same way
for the page and the query (``norm_word``):

- Arabic: diacritics (harakat, shadda, sukun, superscript alef) and tatweel removed; alef
  forms (أ إ آ ٱ) to ا; hamza seats (ؤ ئ) to و ي; alef maksura ى to ي; taa marbuta ة to ه;
  the definite article and its clitics (ال وال بال كال فال لل) dropped from the front of a word,
  so «مكتبة» finds «المكتبة»; Arabic-Indic digits to 0-9.
- Latin: accents removed (NFKD without combining marks), œ æ to oe ae, case folded.

Queries are words, never FTS syntax: each word becomes a quoted prefix term, all words must
match (if none does, any word may). Titles weigh ten times the body (bm25). The snippet is
cut from the original text around the first matching word, so it keeps its diacritics.
"""

from __future__ import annotations

import contextlib
import html.parser
import logging
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INDEX_FILE = "search.sqlite"
MAX_QUERY_CHARS = 200
MAX_TEXT_BYTES = 4 * 1024 * 1024  # a page's text beyond this is not indexed
DEFAULT_LIMIT = 20
SNIPPET_CHARS = 160
TEXT_TYPES = ("text/html", "text/plain", "text/markdown", "application/xhtml+xml")
SCHEMA_VERSION = 1

# a word: letters and digits with the marks inside it (harakat, combining accents, tatweel)
WORD_RE = re.compile(r"[\w\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]+")
_AR_MARKS = re.compile(r"[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_AR_FOLD = str.maketrans({
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ؤ": "و", "ئ": "ي", "ى": "ي", "ة": "ه",
    "٠": "0", "١": "1", "٢": "2", "٣": "3", "٤": "4", "٥": "5", "٦": "6", "٧": "7",
    "٨": "8", "٩": "9", "۰": "0", "۱": "1", "۲": "2", "۳": "3", "۴": "4", "۵": "5",
    "۶": "6", "۷": "7", "۸": "8", "۹": "9", "œ": "oe", "æ": "ae", "ß": "ss"})
_AR_ARTICLES = ("وال", "بال", "كال", "فال", "ال", "لل")


class QueryError(ValueError):
    """The search query is not acceptable (too long); the message says why."""


def norm_word(word: str) -> str:
    """One word as the index stores it (see the module doc)."""
    w = _AR_MARKS.sub("", word)
    w = unicodedata.normalize("NFKD", w)
    w = "".join(c for c in w if not unicodedata.combining(c))
    w = w.casefold().translate(_AR_FOLD)
    for art in _AR_ARTICLES:
        if w.startswith(art) and len(w) - len(art) >= 2:
            return w[len(art):]
    return w


def norm_text(text: str) -> str:
    return " ".join(norm_word(m.group()) for m in WORD_RE.finditer(text))


def query_terms(q: str) -> list[str]:
    """The normalised words of a query (empty for an empty or punctuation-only query)."""
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    terms: list[str] = []
    for m in WORD_RE.finditer(q):
        t = norm_word(m.group())
        if t and t not in terms:
            terms.append(t)
    return terms[:16]


def _match_expr(terms: Iterable[str], op: str) -> str:
    # every word quoted (FTS5 strings double their quotes): query text is never syntax
    return f" {op} ".join('"' + t.replace('"', '""') + '"*' for t in terms)


class _TextOf(html.parser.HTMLParser):
    """The visible text and the <title> of an HTML page (scripts and styles skipped)."""

    SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
    BLOCK = frozenset({"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4",
                       "h5", "h6", "section", "article", "header", "footer", "table", "ul",
                       "ol", "dt", "dd", "blockquote", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        (self.title if self._in_title else self.parts).append(data)


def extract_text(raw: bytes, media_type: str) -> tuple[str, str]:
    """(title, text) of a page; ("", "") for a type that is not text."""
    base, _, params = media_type.partition(";")
    if base.strip().lower() not in TEXT_TYPES:
        return "", ""
    charset = "utf-8"
    m = re.search(r"charset=([\w.-]+)", params, re.IGNORECASE)
    if m:
        charset = m.group(1)
    try:
        text = raw[:MAX_TEXT_BYTES].decode(charset, errors="replace")
    except LookupError:
        text = raw[:MAX_TEXT_BYTES].decode("utf-8", errors="replace")
    if "html" in base:
        p = _TextOf()
        p.feed(text)
        p.close()
        title = " ".join("".join(p.title).split())
        body = re.sub(r"[ \t\r\f\v]+", " ", "".join(p.parts))
        body = re.sub(r"\s*\n\s*", "\n", body).strip()
        return title, body
    return "", text.strip()


def snippet(text: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of the original text around the first word that matches a
    term (as a prefix, after normalisation), cut at word boundaries, with … where cut."""
    flat = " ".join(text.split())
    if not flat:
        return ""
    hit = 0
    for m in WORD_RE.finditer(flat):
        w = norm_word(m.group())
        if any(w.startswith(t) for t in terms):
            hit = m.start()
            break
    start = max(0, hit - width // 3)
    if start:
        space = flat.rfind(" ", 0, start)
        start = space + 1 if space >= 0 else start
    end = min(len(flat), start + width)
    if end < len(flat):
        space = flat.rfind(" ", start + 1, end)
        end = space if space > hit else end
    return ("…" if start else "") + flat[start:end].strip() + ("…" if end < len(flat) else "")


class SearchIndex:
    """The index file: written from the content cache's I/O thread, read from any thread
    (SQLite WAL: a search never waits for a package being indexed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._connect()
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a lost index is rebuilt by reconcile
        return db

    def _migrate(self) -> None:
        db = self._writer
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            db.executescript("""
                DROP TABLE IF EXISTS packages; DROP TABLE IF EXISTS docs;
                DROP TABLE IF EXISTS docs_fts;
                CREATE TABLE packages (id TEXT PRIMARY KEY, manifest_sha TEXT NOT NULL,
                                       language TEXT NOT NULL);
                CREATE TABLE docs (id INTEGER PRIMARY KEY, package TEXT NOT NULL,
                                   path TEXT NOT NULL, lang TEXT NOT NULL,
                                   title TEXT NOT NULL, body TEXT NOT NULL);
                CREATE INDEX docs_package ON docs (package);
                CREATE VIRTUAL TABLE docs_fts USING fts5(title, body,
                                                         tokenize = 'unicode61');
            """)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, check_same_thread=False)
            self._local.db = db
        return db

    def close(self) -> None:
        with self._lock:
            self._writer.close()
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()

    # ---------------------------------------------------------------- writing

    def indexed(self) -> dict[str, str]:
        """package id -> the manifest sha256 its index was built from."""
        with self._lock:
            return dict(self._writer.execute("SELECT id, manifest_sha FROM packages"))

    def add_package(self, manifest: dict[str, Any], manifest_sha: str,
                    blob_path: Callable[[str], Path],
                    pages: Iterable[tuple[str, str, bytes, str]] | None = None) -> int:
        """(Re)index one installed package; returns the number of pages indexed. ``pages``
        ((path, title, bytes, media type), e.g. a ZIM's articles) replaces the manifest's
        files. A file that cannot be read is skipped (logged): the rest is still found."""
        pid = manifest["id"]
        lang = str(manifest.get("language", ""))
        rows = []
        for path, given_title, raw, media in pages or self._files(manifest, blob_path):
            title, body = extract_text(raw, media)
            if not title and not body:
                continue
            rows.append((path, lang, given_title or title or path, body))
        with self._lock:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                self._drop(db, pid)
                for path, flang, title, body in rows:
                    cur = db.execute(
                        "INSERT INTO docs (package, path, lang, title, body) "
                        "VALUES (?, ?, ?, ?, ?)", (pid, path, flang, title, body))
                    db.execute("INSERT INTO docs_fts (rowid, title, body) VALUES (?, ?, ?)",
                               (cur.lastrowid, norm_text(title), norm_text(body)))
                db.execute("INSERT INTO packages (id, manifest_sha, language) VALUES (?, ?, ?)",
                           (pid, manifest_sha, lang))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(rows)

    @staticmethod
    def _files(manifest: dict[str, Any], blob_path: Callable[[str], Path]
               ) -> Iterator[tuple[str, str, bytes, str]]:
        for f in manifest["files"]:
            media = str(f.get("media_type", ""))
            if media.partition(";")[0].strip().lower() not in TEXT_TYPES:
                continue  # never read a video or an archive just to find it is not text
            try:
                with blob_path(f["sha256"]).open("rb") as fh:
                    raw = fh.read(MAX_TEXT_BYTES)
            except OSError as exc:
                log.warning("search: cannot read %s/%s: %s", manifest["id"], f["path"], exc)
                continue
            yield f["path"], str(f.get("title") or ""), raw, media

    @staticmethod
    def _drop(db: sqlite3.Connection, pid: str) -> None:
        db.execute("DELETE FROM docs_fts WHERE rowid IN (SELECT id FROM docs WHERE package = ?)",
                   (pid,))
        db.execute("DELETE FROM docs WHERE package = ?", (pid,))
        db.execute("DELETE FROM packages WHERE id = ?", (pid,))

    def drop_package(self, pid: str) -> None:
        with self._lock:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                self._drop(db, pid)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def reconcile(self, installed: dict[str, dict[str, Any]], shas: dict[str, str],
                  blob_path: Callable[[str], Path],
                  pages_of: Callable[[dict[str, Any]], Iterable[tuple[str, str, bytes, str]]
                                     | None] = lambda _m: None) -> None:
        """Make the index hold exactly the installed packages at their installed versions."""
        have = self.indexed()
        for pid in set(have) - set(installed):
            self.drop_package(pid)
        for pid, m in installed.items():
            if have.get(pid) != shas[pid]:
                t0 = time.monotonic()
                n = self.add_package(m, shas[pid], blob_path, pages_of(m))
                log.info("search: indexed %s (%d pages) in %.2f s", pid, n,
                         time.monotonic() - t0)

    # ---------------------------------------------------------------- reading

    def search(self, q: str, lang: str | None = None,
               limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """``[{"package", "path", "title", "snippet", "lang"}]``, best first: pages in ``lang``
        before others, then by bm25 with titles weighted. Raises QueryError for a query
        that is too long; an empty or punctuation-only query finds nothing."""
        terms = query_terms(q)
        if not terms:
            return []
        db = self._reader()
        rows: list[tuple[Any, ...]] = []
        for op in ("AND", "OR") if len(terms) > 1 else ("AND",):
            rows = db.execute(
                "SELECT d.package, d.path, d.title, d.body, d.lang "
                "FROM docs_fts JOIN docs d ON d.id = docs_fts.rowid "
                "WHERE docs_fts MATCH ? "
                "ORDER BY (d.lang = ?) DESC, bm25(docs_fts, 10.0, 1.0) LIMIT ?",
                (_match_expr(terms, op), lang or "", limit)).fetchall()
            if rows:
                break
        return [{"package": pkg, "path": path, "title": title,
                 "snippet": snippet(body, terms) if body else "", "lang": dlang}
                for pkg, path, title, body, dlang in rows]

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += Path(str(self.path) + suffix).stat().st_size
        return total
