"""ZIM packages (issue 21): a Kiwix archive built here with libzim.writer, published by the
hub, synced and verified by the agent, its articles served under /content/{package}/... and
found by the full-text search (Arabic and French); a damaged or false ZIM is refused and the
installed version stays served."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from content_support import Hub
from libzim.writer import Creator, Hint, Item, StringProvider  # type: ignore[attr-defined]

ARTICLES = {
    "A/Sante": ("Santé publique", "fr",
                "<p>Les centres de santé offrent la vaccination gratuite des enfants.</p>"),
    "A/Ecole": ("École rurale", "fr",
                "<p>L'inscription à l'école primaire se fait au mois de juin.</p>"),
    "A/Siha": ("الصحة العامة", "ar",
               "<p>تقدم المراكز الصِّحِّيَّة التلقيح المجاني للأطفال في كل إقليم.</p>"),
}


class Page(Item):  # type: ignore[misc]
    def __init__(self, path: str, title: str, html: str) -> None:
        super().__init__()
        self._path, self._title, self._html = path, title, html

    def get_path(self) -> str:
        return self._path

    def get_title(self) -> str:
        return self._title

    def get_mimetype(self) -> str:
        return "text/html"

    def get_contentprovider(self) -> StringProvider:
        return StringProvider(self._html)

    def get_hints(self) -> dict:
        return {Hint.FRONT_ARTICLE: True}


def build_zim(path: Path, extra: str = "") -> Path:
    with Creator(str(path)).config_indexing(True, "fra") as c:
        c.set_mainpath("A/Sante")
        for p, (title, lang, body) in ARTICLES.items():
            html = (f'<html lang="{lang}"><head><title>{title}</title></head>'
                    f"<body><h1>{title}</h1>{body}{extra}</body></html>")
            c.add_item(Page(p, title, html))
        for k, v in {"Title": "Guides de test", "Language": "fra", "Name": "test_guides",
                     "Creator": "CAC", "Publisher": "CAC", "Date": "2026-12-03",
                     "Description": "Un petit ZIM de test"}.items():
            c.add_metadata(k, v)
    return path


def zim_package(root: Path, zim: Path, pid: str = "zim-guides") -> Path:
    d = root / pid
    d.mkdir(parents=True, exist_ok=True)
    (d / "guides.zim").write_bytes(zim.read_bytes())
    (d / "manifest.json").write_text(json.dumps(
        {"id": pid, "title": "Guides (Kiwix)", "language": "fr", "kind": "zim"}))
    return d


async def test_zim_round_trip_hub_agent_kiosk(hub: Hub, agent_factory, tmp_path: Path) -> None:
    zim = build_zim(tmp_path / "g.zim")
    hub.store.add(zim_package(tmp_path / "pkgs", zim))
    a, cache, close = await agent_factory(hub.url)
    st = await cache.sync()
    assert st["error"] is None and st["installed"] == 1, st
    # the listing enters the archive by its main page
    status, listing = await a.op("GET", "/content")
    pkg = listing["packages"][0]
    assert pkg["kind"] == "zim" and [f["url"] for f in pkg["files"]] == [
        "/content/zim-guides/A/Sante"]
    # articles are served from inside the archive; a path it does not hold is 404
    resp = await a.client.get("/content/zim-guides/A/Siha")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "التلقيح المجاني" in await resp.text()
    assert (await a.client.get("/content/zim-guides/A/Nope")).status == 404
    # the archive file itself is still served like any blob (a Kiwix reader can take it)
    resp = await a.client.get("/content/zim-guides/guides.zim")
    assert resp.status == 200 and await resp.read() == zim.read_bytes()
    # the full-text search finds its articles, Arabic written without diacritics or article
    for q, path in (("صحيه تلقيح", "A/Siha"), ("vaccination enfants", "A/Sante"),
                    ("ECOLE primaire", "A/Ecole")):
        status, hits = await a.op("GET", f"/content/search?q={quote(q)}")
        assert status == 200 and hits and hits[0]["path"] == path, (q, hits)
        assert hits[0]["url"] == f"/content/zim-guides/{path}"
    await close()


async def test_a_damaged_or_false_zim_is_refused_and_the_old_one_stays(
        hub: Hub, agent_factory, tmp_path: Path) -> None:
    good = build_zim(tmp_path / "g.zim")
    hub.store.add(zim_package(tmp_path / "pkgs", good))
    a, cache, close = await agent_factory(hub.url)
    await cache.sync()
    assert cache.installed["zim-guides"]["version"] == 1
    for bad in (good.read_bytes()[: good.stat().st_size // 2],  # cut in half
                b"this is not a zim at all" * 100):                 # not a ZIM
        d = zim_package(tmp_path / "pkgs", good)
        (d / "guides.zim").write_bytes(bad)
        hub.store.add(d)
        st = await cache.sync(force=True)
        assert "refused" in (st["error"] or ""), st
        # version 1 stays installed and served, and still found
        assert cache.installed["zim-guides"]["version"] == 1
        resp = await a.client.get("/content/zim-guides/A/Ecole")
        assert resp.status == 200 and "juin" in await resp.text()
        status, hits = await a.op("GET", "/content/search?q=juin")
        assert hits and hits[0]["path"] == "A/Ecole"
    assert cache.status()["rejected"] >= 2
    await close()
