"""Full-text search figures (agent/content/search.py), each beside a baseline of the same run.

1. Index build: MB of page text per second and index size per MB of content, for the
   starter set and for a synthetic corpus of ``--mb`` MB made of the starter pages' own
   Arabic and French words (pages of 2-6 KB), beside the time to read and extract the same
   text without indexing it.
2. Search latency: p50 and p99 over a query mix (Arabic with and without diacritics and
   article, French with and without accents, two-word, misses) on that corpus, beside the
   p99 of an indexed lookup of one page by its path in the same database.

Run: ``.venv/bin/python bench/search.py [--mb 50] [--queries 400]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.content.search import WORD_RE, SearchIndex, extract_text  # noqa: E402

STARTER = Path(__file__).resolve().parent.parent / "content"
QUERIES = ["بطاقه وطنيه", "البِطَاقَةُ", "عقد الازدياد", "مقاول ذاتي", "فاتوره", "دفتر الصندوق",
           "carte identite", "Échéance", "facture", "livre de caisse", "auto-entrepreneur",
           "naissance extrait", "zzzzqx", "خطه عمل", "plan d'affaires", "TVA"]


def p(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def starter_manifests(blobs: Path) -> list[tuple[dict[str, Any], str]]:
    """The starter packages as installed manifests, their files stored by sha256."""
    out = []
    for mpath in sorted(STARTER.glob("*/manifest.json")):
        meta = json.loads(mpath.read_text())
        files = []
        for f in mpath.parent.iterdir():
            if f.name == "manifest.json":
                continue
            data = f.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            (blobs / sha).write_bytes(data)
            media = "text/html; charset=utf-8" if f.suffix == ".html" else "text/csv"
            files.append({"path": f.name, "sha256": sha, "size": len(data),
                          "media_type": media})
        m = {"id": meta["id"], "language": meta["language"], "files": files}
        out.append((m, hashlib.sha256(json.dumps(m).encode()).hexdigest()))
    return out


def synthetic(blobs: Path, mb: int, rng: random.Random) -> list[tuple[dict[str, Any], str]]:
    words: dict[str, list[str]] = {"ar": [], "fr": []}
    for mpath in STARTER.glob("*/manifest.json"):
        lang = json.loads(mpath.read_text())["language"]
        for f in mpath.parent.glob("*.html"):
            _, text = extract_text(f.read_bytes(), "text/html")
            words[lang] += [m.group() for m in WORD_RE.finditer(text)]
    out, total, n = [], 0, 0
    while total < mb * 1024 * 1024:
        lang = "ar" if n % 2 else "fr"
        files = []
        for i in range(100):
            body = " ".join(rng.choice(words[lang]) for _ in range(rng.randint(300, 900)))
            title = " ".join(rng.choice(words[lang]) for _ in range(4))
            html = (f"<html><head><title>{title}</title></head><body><p>{body}</p></body>"
                    "</html>").encode()
            sha = hashlib.sha256(html).hexdigest()
            (blobs / sha).write_bytes(html)
            files.append({"path": f"p{i}.html", "sha256": sha, "size": len(html),
                          "media_type": "text/html; charset=utf-8", "title": title})
            total += len(html)
        m = {"id": f"synthetic-{n}", "language": lang, "files": files}
        out.append((m, hashlib.sha256(json.dumps(m).encode()).hexdigest()))
        n += 1
    return out


def build(index: SearchIndex, pkgs: list[tuple[dict[str, Any], str]], blobs: Path
          ) -> tuple[float, float, float]:
    """(seconds to index, seconds to only read + extract, MB of content)."""
    size = sum(f["size"] for m, _ in pkgs for f in m["files"]) / 1024 / 1024
    t0 = time.perf_counter()
    for m, _ in pkgs:
        for f in m["files"]:
            extract_text((blobs / f["sha256"]).read_bytes(), f["media_type"])
    extract_only = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m, sha in pkgs:
        index.add_package(m, sha, lambda s: blobs / s)
    return time.perf_counter() - t0, extract_only, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=50, help="synthetic corpus size (MB of HTML)")
    ap.add_argument("--queries", type=int, default=400)
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        blobs = Path(tmp) / "blobs"
        blobs.mkdir()
        index = SearchIndex(Path(tmp) / "search.sqlite")
        starter = starter_manifests(blobs)
        secs, extract, mb = build(index, starter, blobs)
        print(f"starter set: {mb:.2f} MB indexed in {secs * 1000:.0f} ms "
              f"(read + extract alone {extract * 1000:.0f} ms)")
        big = synthetic(blobs, args.mb, rng)
        secs, extract, mb = build(index, big, blobs)
        size = index.size_bytes() / 1024 / 1024
        print(f"synthetic corpus: {mb:.1f} MB indexed in {secs:.1f} s = {mb / secs:.1f} MB/s "
              f"(read + extract alone {mb / extract:.1f} MB/s); index {size:.1f} MB = "
              f"{size / mb:.2f} MB per MB of content")
        lat: list[float] = []
        for i in range(args.queries):
            t0 = time.perf_counter()
            index.search(QUERIES[i % len(QUERIES)], "ar" if i % 2 else "fr")
            lat.append(time.perf_counter() - t0)
        db = index._reader()
        base: list[float] = []
        for i in range(args.queries):
            t0 = time.perf_counter()
            db.execute("SELECT title FROM docs WHERE package = ? AND path = ?",
                       (f"synthetic-{i % len(big)}", f"p{i % 100}.html")).fetchall()
            base.append(time.perf_counter() - t0)
        index.close()
    print(f"search over {mb:.0f} MB + starter: p50 {p(lat, 0.5) * 1000:.1f} ms, "
          f"p99 {p(lat, 0.99) * 1000:.1f} ms (one indexed row lookup p99 "
          f"{p(base, 0.99) * 1000:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
