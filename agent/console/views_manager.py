"""Manager pages: the tariff, operator accounts, the audit trail."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from agent.console.core import PREFIX, Ctx, call, console_view, form_of, page, redirect
from agent.errors import DomainError
from common.httpform import read_form

EXTRA_ROWS = 2  # empty rows offered to add a band or a concession
MAX_ROWS = 20
AUDIT_ROWS = 300

routes = web.RouteTableDef()
_INT = re.compile(r"-?[0-9]{1,12}")


def _num(text: str) -> int | str:
    """An integer when the text is one; else the text, so the tariff check names the key."""
    return int(text) if _INT.fullmatch(text) else text


def tariff_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The config file's ``[tariff]`` table from the form; empty rows are dropped."""
    raw: dict[str, Any] = {key: _num(form.get(key, "")) for key in
                           ("block_minutes", "block_price", "minimum_blocks", "grace_seconds")}
    raw["currency"] = form.get("currency", "")
    bands = []
    for i in range(MAX_ROWS):
        row = [form.get(f"band_{part}_{i}", "") for part in ("from", "to", "price")]
        if any(row):
            bands.append({"from": row[0], "to": row[1], "block_price": _num(row[2])})
    concessions: dict[str, Any] = {}
    for i in range(MAX_ROWS):
        name, pct = form.get(f"conc_name_{i}", ""), form.get(f"conc_pct_{i}", "")
        if name or pct:
            concessions[name] = _num(pct)
    raw["bands"] = bands
    raw["concessions"] = concessions
    return raw


@routes.get("/tariff")
@console_view(manager=True)
async def tariff(ctx: Ctx) -> web.StreamResponse:
    view = await call(ctx.request, ctx.state.service.tariff_view)
    return _tariff_page(ctx, view["tariff"], view)


def _tariff_page(ctx: Ctx, t: dict[str, Any], view: dict[str, Any],
                 status: int = 200) -> web.Response:
    bands = list(t.get("bands", [])) + [{"from": "", "to": "", "block_price": ""}] * EXTRA_ROWS
    concessions = [{"name": k, "pct": v} for k, v in t.get("concessions", {}).items()]
    concessions += [{"name": "", "pct": ""}] * EXTRA_ROWS
    return page(ctx, "tariff.html", status, active="tariff", title=ctx.loc.t("tariff_title"),
                tariff=t, bands=bands[:MAX_ROWS], concessions=concessions[:MAX_ROWS],
                view=view)


@routes.post("/tariff")
@console_view(manager=True)
async def tariff_save(ctx: Ctx) -> web.StreamResponse:
    form = await form_of(ctx)
    raw = tariff_from_form(form)
    svc = ctx.state.service
    try:
        view = await call(ctx.request, svc.set_tariff, raw, f"operator:{ctx.who.name}")
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
        current = await call(ctx.request, svc.tariff_view)
        return _tariff_page(ctx, raw, current, 400)  # keep what was typed
    ctx.flash("ok", ctx.loc.t("ok_tariff", version=view["version"]))
    raise redirect(f"{PREFIX}/tariff")


@routes.get("/operators")
@console_view(manager=True)
async def operators(ctx: Ctx) -> web.StreamResponse:
    accounts = await call(ctx.request, ctx.state.service.operator_list)
    return page(ctx, "operators.html", active="operators", title=ctx.loc.t("operators_title"),
                accounts=accounts)


@routes.post("/operators")
@console_view(manager=True)
async def operator_save(ctx: Ctx) -> web.StreamResponse:
    form = await form_of(ctx)
    name = form.get("name", "")
    try:
        await call(ctx.request, ctx.state.service.operator_save, name,
                   form.get("role", ""), str((await read_form(ctx.request)).get("password", "")),
                   ctx.who.name)
        ctx.flash("ok", ctx.loc.t("ok_operator", name=name))
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
    raise redirect(f"{PREFIX}/operators")


@routes.post("/operators/{name}/{action}")
@console_view(manager=True)
async def operator_action(ctx: Ctx) -> web.StreamResponse:
    form = await form_of(ctx)
    name, action = ctx.request.match_info["name"], ctx.request.match_info["action"]
    svc, actor = ctx.state.service, ctx.who.name
    try:
        if action in ("activate", "deactivate"):
            await call(ctx.request, svc.operator_set_active, name, action == "activate", actor)
        elif action == "role":
            await call(ctx.request, svc.operator_set_role, name, form.get("role", ""), actor)
        else:
            raise web.HTTPNotFound()
        ctx.flash("ok", ctx.loc.t("ok_operator", name=name))
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
    raise redirect(f"{PREFIX}/operators")


@routes.get("/audit")
@console_view(manager=True)
async def audit(ctx: Ctx) -> web.StreamResponse:
    entries = await call(ctx.request, ctx.state.service.audit_entries, None, None, AUDIT_ROWS)
    rows = [{**e, "details_text": json.dumps(e.get("details") or {}, ensure_ascii=False,
                                             sort_keys=True)[:300]} for e in entries]
    return page(ctx, "audit.html", active="audit", title=ctx.loc.t("audit_title"), entries=rows)
