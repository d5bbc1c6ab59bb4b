"""Console pages of the till (issue 17): the sale grid and the shift (open, count, close)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from agent.console.core import PREFIX, Ctx, call, console_view, form_of, page, redirect
from agent.errors import DomainError
from agent.usecases.till import MAX_CASH
from wire.catalogue import MAX_QUANTITY, UNITS

routes = web.RouteTableDef()

# MAD notes and coins the cash count helps with, in centimes
DENOMINATIONS = (20000, 10000, 5000, 2000, 1000, 500, 200, 100, 50)
MAX_PIECES = 100_000


def _whole(text: str, lo: int, hi: int, code: str, field: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise DomainError(code, f"{field}: must be a whole number from {lo} to {hi}")
    return value


def _centimes(text: str, field: str) -> int:
    """A MAD amount typed at the counter ("150", "150.50", "150,5") as centimes."""
    whole, _, frac = text.strip().replace(",", ".").partition(".")
    if not whole.isascii() or not whole.isdigit() or not (frac == "" or (
            frac.isascii() and frac.isdigit() and len(frac) <= 2)):
        raise DomainError("bad_field", f"{field}: must be an amount like 150 or 150.50")
    value = int(whole) * 100 + int((frac + "00")[:2])
    if value > MAX_CASH:
        raise DomainError("bad_field", f"{field}: too large")
    return value


@routes.get("/till")
@console_view()
async def till(ctx: Ctx) -> web.StreamResponse:
    svc, req = ctx.state.service, ctx.request
    cat = await call(req, svc.catalogue)
    items = svc.till.items
    sessions = await call(req, svc.active_sessions)
    recent = await call(req, svc.recent_sales)
    receipt = next((s for s in recent if s["id"] == req.query.get("receipt")), None)
    try:
        shift = await call(req, svc.current_shift)
    except DomainError:
        shift = None
    tariff = await call(req, svc.tariff_view)
    return page(ctx, "till.html", active="till", title=ctx.loc.t("till_title"),
                items=items, version=cat["version"], sessions=sessions, recent=recent,
                receipt=receipt, shift=shift, currency=tariff["tariff"]["currency"],
                categories=sorted(tariff["tariff"].get("concessions", {})),
                names={it.id: it.label(ctx.loc.lang) for it in items},
                chosen_session=req.query.get("session", ""), max_quantity=MAX_QUANTITY)


@routes.post("/till/sell")
@console_view()
async def sell(ctx: Ctx) -> web.StreamResponse:
    form = await form_of(ctx)
    try:
        quantity = _whole(form.get("quantity", "1") or "1", 1, MAX_QUANTITY, "bad_quantity",
                          "quantity")
        sale = await call(ctx.request, ctx.state.service.sell, form.get("item", ""), quantity,
                          form.get("session") or None, form.get("category") or None,
                          ctx.who.name)
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
        raise redirect(f"{PREFIX}/till") from None
    ctx.flash("ok", ctx.loc.t("ok_sale"))
    raise redirect(f"{PREFIX}/till?" + urlencode({"receipt": sale["id"]}))


@routes.post("/till/{id}/void")
@console_view(manager=True)
async def void(ctx: Ctx) -> web.StreamResponse:
    form = await form_of(ctx)
    reason = form.get("reason", "")[:200]
    if not reason:
        ctx.flash("error", ctx.loc.t("err_reason_required"))
    else:
        try:
            await call(ctx.request, ctx.state.service.void_sale, ctx.request.match_info["id"],
                       reason, ctx.who.name)
            ctx.flash("ok", ctx.loc.t("ok_sale_voided"))
        except DomainError as exc:
            ctx.flash("error", ctx.error_text(exc))
    raise redirect(f"{PREFIX}/till")


@routes.get("/shift")
@console_view()
async def shift(ctx: Ctx) -> web.StreamResponse:
    svc, req = ctx.state.service, ctx.request
    try:
        current = await call(req, svc.current_shift)
    except DomainError:
        current = None
    closed = None
    closed_id = req.query.get("closed")
    if closed_id:
        found = await call(req, svc.ledger.find_record, closed_id)
        closed = found if found and found.get("type") == "shift" else None
    tariff = await call(req, svc.tariff_view)
    return page(ctx, "shift.html", active="shift", title=ctx.loc.t("shift_title"),
                current=current, closed=closed, denominations=DENOMINATIONS,
                currency=tariff["tariff"]["currency"])


@routes.post("/shift/open")
@console_view()
async def open_shift(ctx: Ctx) -> web.StreamResponse:
    form = await form_of(ctx)
    try:
        opening = _centimes(form.get("opening_float", "") or "0", "opening_float")
        await call(ctx.request, ctx.state.service.open_shift, opening, ctx.who.name)
        ctx.flash("ok", ctx.loc.t("ok_shift_open"))
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
    raise redirect(f"{PREFIX}/shift")


@routes.post("/shift/close")
@console_view()
async def close_shift(ctx: Ctx) -> web.StreamResponse:
    """The counted cash is the sum of the notes and coins counted (``n<centimes>`` fields)."""
    form = await form_of(ctx)
    try:
        counted = sum(value * _whole(form.get(f"n{value}", "0") or "0", 0, MAX_PIECES,
                                     "bad_count", "count")
                      for value in DENOMINATIONS)
        rec = await call(ctx.request, ctx.state.service.close_shift, counted, ctx.who.name)
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
        raise redirect(f"{PREFIX}/shift") from None
    ctx.flash("ok", ctx.loc.t("ok_shift_closed"))
    raise redirect(f"{PREFIX}/shift?" + urlencode({"closed": rec["id"]}))


# ---------------------------------------------------------------- the catalogue (manager)

CATALOGUE_ROWS = 60
EXTRA_ROWS = 3


def price_from_form(text: str) -> int | str:
    """A unit price typed in MAD ("1", "1.50", "1,5", "-2") as centimes; anything else is
    passed on as text, so the catalogue's check names the key."""
    sign = -1 if text.strip().startswith("-") else 1
    try:
        return sign * _centimes(text.strip().removeprefix("-"), "price")
    except DomainError:
        return text


def price_to_form(price: object) -> str:
    """Centimes as the MAD text the form shows ("1.50"); typed text as it was."""
    if isinstance(price, int) and not isinstance(price, bool):
        sign = "-" if price < 0 else ""
        return f"{sign}{abs(price) // 100}.{abs(price) % 100:02d}"
    return str(price)


def catalogue_from_form(form: dict[str, str]) -> list[dict[str, Any]]:
    """The ``[[catalogue]]`` list from the form (prices typed in MAD, kept in centimes);
    empty rows dropped."""
    items: list[dict[str, Any]] = []
    for i in range(CATALOGUE_ROWS):
        row = {k: form.get(f"{k}_{i}", "") for k in ("id", "fr", "ar", "price", "unit")}
        if not any(row[k] for k in ("id", "fr", "ar", "price")):  # a unit is always chosen
            continue
        names = {lang: row[lang] for lang in ("fr", "ar") if row[lang]}
        items.append({"id": row["id"], "name": names, "price": price_from_form(row["price"]),
                      "unit": row["unit"] or "item"})
    return items


def _catalogue_page(ctx: Ctx, items: list[dict[str, Any]], view: dict[str, Any],
                    status: int = 200) -> web.Response:
    blank = {"id": "", "name": {}, "price": "", "unit": "item"}
    rows = ([{**it, "price": price_to_form(it["price"])} for it in items]
            + [blank] * EXTRA_ROWS)[:CATALOGUE_ROWS]
    return page(ctx, "catalogue.html", status, active="catalogue",
                title=ctx.loc.t("catalogue_title"), rows=rows, view=view, units=UNITS)


@routes.get("/catalogue")
@console_view(manager=True)
async def catalogue(ctx: Ctx) -> web.StreamResponse:
    view = await call(ctx.request, ctx.state.service.catalogue)
    return _catalogue_page(ctx, view["catalogue"], view)


@routes.post("/catalogue")
@console_view(manager=True)
async def catalogue_save(ctx: Ctx) -> web.StreamResponse:
    raw = catalogue_from_form(await form_of(ctx))
    svc = ctx.state.service
    try:
        view = await call(ctx.request, svc.set_catalogue, raw, f"operator:{ctx.who.name}")
    except DomainError as exc:
        ctx.flash("error", ctx.loc.t("err_other", message=exc.message))
        current = await call(ctx.request, svc.catalogue)
        return _catalogue_page(ctx, raw, current, 400)  # keep what was typed
    ctx.flash("ok", ctx.loc.t("ok_catalogue", version=view["version"]))
    raise redirect(f"{PREFIX}/catalogue")


# ---------------------------------------------------------------- print release


@routes.get("/print")
@console_view()
async def print_jobs(ctx: Ctx) -> web.StreamResponse:
    svc, req = ctx.state.service, ctx.request
    jobs: list[dict[str, Any]] = []
    down = ""
    if svc.config.printing.cups is None:
        down = ctx.loc.t("print_not_configured")
    else:
        try:
            jobs = await call(req, svc.print_jobs)
        except DomainError as exc:
            down = ctx.loc.t("print_down", message=exc.message)
    prices = {it.id: it.price for it in svc.till.items}
    cfg = svc.config.printing
    for j in jobs:
        j["price"] = prices.get(cfg.color_item if j["color"] else cfg.bw_item, 0) * j["pages"]
    tariff = await call(req, svc.tariff_view)
    return page(ctx, "print.html", active="print", title=ctx.loc.t("print_title"), jobs=jobs,
                down=down, currency=tariff["tariff"]["currency"])


@routes.post("/print/{id}/{action:release|cancel}")
@console_view()
async def print_action(ctx: Ctx) -> web.StreamResponse:
    await form_of(ctx)
    svc, job_id = ctx.state.service, ctx.request.match_info["id"]
    try:
        if ctx.request.match_info["action"] == "release":
            sale = await call(ctx.request, svc.release_print, job_id, ctx.who.name)
            ctx.flash("ok", ctx.loc.t("ok_print_released", pages=sale["quantity"],
                                      amount=ctx.loc.money(sale["amount"], sale["currency"])))
        else:
            await call(ctx.request, svc.cancel_print, job_id, ctx.who.name)
            ctx.flash("ok", ctx.loc.t("ok_print_cancelled"))
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
    raise redirect(f"{PREFIX}/print")
