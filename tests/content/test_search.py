"""Full-text search over installed packages (CONTRACT §10): Arabic and French found however
the query is written, ranked, with snippets from the original text; indexed on install,
dropped on eviction and removal, mended at start; bad queries are 400 or empty, never 500."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest
from agent_support import TOKENS
from content_support import STARTER, Hub

from agent.content.search import SearchIndex, norm_text, norm_word, query_terms, snippet


def page_package(root: Path, pid: str, files: dict[str, bytes],
                 titles: dict[str, str] | None = None) -> Path:
    """A package directory whose manifest names the files' titles (as the starter set does)."""
    d = root / pid
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    (d / "manifest.json").write_text(json.dumps({
        "id": pid, "title": pid, "language": "fr",
        "files": [{"path": n, "title": t} for n, t in (titles or {}).items()]}))
    return d


def withdraw(hub: Hub, pid: str) -> None:
    """The hub's catalogue without ``pid`` (as if a technician unpublished it)."""
    path = hub.store.catalogue_path
    cat = json.loads(path.read_bytes())
    cat["packages"] = [p for p in cat["packages"] if p["id"] != pid]
    path.write_text(json.dumps(cat))


def damage(index: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    index.write_bytes(b"this is not a database" * 100)


async def search(a, q: str, **params: str) -> tuple[int, object]:
    qs = "&".join([f"q={quote(q)}"] + [f"{k}={quote(v)}" for k, v in params.items()])
    return await a.op("GET", f"/content/search?{qs}")


def test_arabic_and_french_normalisation() -> None:
    # diacritics, tatweel, alef forms, hamza seats, alef maksura, taa marbuta, the article
    assert norm_word("الْمَكْتَبَةُ") == norm_word("مكتبه") == "مكتبه"
    assert norm_word("إستمارة") == norm_word("استماره") == norm_word("أستمارة")
    assert norm_word("مـــدرســة") == norm_word("مدرسه")
    assert norm_word("مسؤول") == norm_word("مسوول")
    assert norm_word("هيئة") == norm_word("هييه")
    assert norm_word("مستشفى") == norm_word("مستشفي")
    assert norm_word("بالبطاقة") == norm_word("البطاقة") == norm_word("بطاقه")
    assert norm_word("٢٠٢٦") == "2026"
    assert norm_word("Élève") == norm_word("eleve") == "eleve"
    assert norm_word("cœur") == "coeur"
    assert norm_text("Carte d'identité nationale") == "carte d identite nationale"
    # a word that is only the article is kept, not emptied
    assert norm_word("ال") == "ال"


def test_query_is_words_never_syntax() -> None:
    assert query_terms('carte" OR NEAR(x) * -identité') == [
        "carte", "or", "near", "x", "identite"]
    assert query_terms("!!! ... ؟؟") == []
    with pytest.raises(ValueError, match="longer than 200"):
        query_terms("a" * 201)


def test_snippet_keeps_the_original_text_around_the_hit() -> None:
    text = ("مقدمة طويلة " * 30) + "يجب تجديد البِطاقة الوطنية قبل انتهاء صلاحيتها" + (" خاتمة" * 30)
    s = snippet(text, query_terms("بطاقه"))
    assert "البِطاقة" in s  # the diacritic of the page survives
    assert s.startswith("…") and s.endswith("…") and len(s) <= 170


async def test_search_finds_text_inside_pages_in_both_languages(hub: Hub, agent_factory
                                                                ) -> None:
    for pid in ("guides-admin-ar", "guides-admin-fr", "sme-toolkit-fr"):
        hub.store.add(STARTER / pid)
    a, cache, close = await agent_factory(hub.url)
    await cache.sync()

    # French without accents and in another case than the page ("Extrait d'acte de naissance")
    status, hits = await search(a, "ACTE naissance")
    assert status == 200 and hits, hits
    assert hits[0]["package"] == "guides-admin-fr"
    assert hits[0]["path"] == "extrait-naissance.html"
    assert hits[0]["url"] == "/content/guides-admin-fr/extrait-naissance.html"
    assert "naissance" in hits[0]["snippet"].lower()

    # a word that is only in a page's body ("Échéance"), typed without its accents
    status, hits = await search(a, "echeance")
    assert status == 200 and [h["path"] for h in hits] == ["facture.html"], hits
    assert "Échéance" in hits[0]["snippet"]

    # Arabic written without the article, with a plain alef and haa for taa marbuta
    status, hits = await search(a, "بطاقه وطنيه", lang="ar")
    assert status == 200 and hits, hits
    assert hits[0]["package"] == "guides-admin-ar"
    assert hits[0]["path"] == "bitaqa-wataniya.html"
    assert hits[0]["lang"] == "ar"
    # the same with full diacritics
    status, hits2 = await search(a, "البِطَاقَةُ الوَطَنِيَّةُ")
    assert status == 200 and [h["path"] for h in hits2][:1] == ["bitaqa-wataniya.html"]
    # a page in the asked language comes first
    status, hits = await search(a, "auto entrepreneur", lang="fr")
    assert hits and hits[0]["lang"] == "fr"
    await close()


async def test_title_outranks_body(hub: Hub, agent_factory, tmp_path: Path) -> None:
    pkg = page_package(tmp_path / "pkgs", "rank", {
        "a.html": b"<html><body><p>Le formulaire est ici. Rien d'autre.</p></body></html>",
        "b.html": b"<html><body><p>Une page sur autre chose.</p></body></html>",
    }, {"a.html": "Divers", "b.html": "Formulaire de demande"})
    hub.store.add(pkg)
    a, cache, close = await agent_factory(hub.url)
    await cache.sync()
    status, hits = await search(a, "formulaire")
    assert status == 200 and [h["path"] for h in hits] == ["b.html", "a.html"]
    await close()


async def test_scripts_styles_and_non_text_are_not_indexed(hub: Hub, agent_factory,
                                                           tmp_path: Path) -> None:
    pkg = page_package(tmp_path / "pkgs", "mixed", {
        "p.html": (b"<html><head><style>.zebracss{}</style><script>var secretvar=1"
                   b"</script></head><body>visible words</body></html>"),
        "data.bin": b"zebrabinary " * 10,
    })
    hub.store.add(pkg)
    a, cache, close = await agent_factory(hub.url)
    await cache.sync()
    for q in ("zebracss", "secretvar", "zebrabinary"):
        assert await search(a, q) == (200, []), q
    status, hits = await search(a, "visible")
    assert [h["path"] for h in hits] == ["p.html"]
    await close()


async def test_index_follows_install_removal_and_restart(hub: Hub, agent_factory,
                                                         tmp_path: Path) -> None:
    hub.store.add(STARTER / "guides-admin-fr")
    hub.store.add(STARTER / "sme-toolkit-fr")
    data = tmp_path / "agent"
    a, cache, close = await agent_factory(hub.url, data_dir=data)
    await cache.sync()
    assert (await search(a, "naissance"))[1]
    # the hub withdraws the package: the agent removes it and it is no longer found
    withdraw(hub, "guides-admin-fr")
    await cache.sync(force=True)
    assert "guides-admin-fr" not in cache.installed
    assert await search(a, "naissance") == (200, [])
    await close()

    # an index lost or damaged while the agent was down is rebuilt at start
    hub.store.add(STARTER / "guides-admin-fr")
    a, cache, close = await agent_factory(hub.url, data_dir=data)
    await cache.sync()
    await close()
    damage(data / "content" / "search.sqlite")
    a, cache, close = await agent_factory(None, data_dir=data)
    status, hits = await search(a, "naissance")
    assert status == 200 and hits and hits[0]["package"] == "guides-admin-fr"
    await close()


async def test_bad_queries_and_tokens(hub: Hub, agent_factory) -> None:
    hub.store.add(STARTER / "guides-admin-fr")
    a, cache, close = await agent_factory(hub.url)
    await cache.sync()
    status, body = await search(a, "x" * 201)
    assert status == 400 and body["error"] == "bad_field" and "200" in body["message"]
    assert await search(a, "") == (200, [])
    assert await search(a, "?!.،؛") == (200, [])
    for q in ('"', "AND", "carte*", "NEAR(carte identite)", "^carte", "carte:x", "(", "-"):
        status, body = await search(a, q)
        assert status == 200 and isinstance(body, list), (q, body)
    assert (await search(a, "x", limit="0"))[0] == 400
    assert (await search(a, "x", limit="many"))[0] == 400
    assert (await search(a, "x", lang="a'b"))[0] == 400
    # no token, a wrong one, a station token without its station: 401; with it: 200
    assert (await a.req("GET", "/content/search?q=carte"))[0] == 401
    assert (await a.req("GET", "/content/search?q=carte", "nope"))[0] == 401
    assert (await a.req("GET", "/content/search?q=carte", TOKENS["s1"]))[0] == 401
    assert (await a.req("GET", "/content/search?q=carte&station=s2", TOKENS["s1"]))[0] == 403
    status, hits = await a.req("GET", "/content/search?q=carte&station=s1", TOKENS["s1"])
    assert status == 200 and hits
    await close()


def test_index_file_is_rebuilt_on_schema_change(tmp_path: Path) -> None:
    path = tmp_path / "search.sqlite"
    idx = SearchIndex(path)
    idx.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    idx = SearchIndex(path)
    assert idx.indexed() == {} and idx.search("x") == []
    idx.close()
