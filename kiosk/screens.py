"""The kiosk's screens, built in Python from the app's state for the current language (so a
language change or the larger-text option simply rebuilds the screen; rows are mirrored
for Arabic). Each function returns the screen's body; ``KioskApp.show`` puts it in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kivy.metrics import dp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

from kiosk.i18n import LANG_NAMES, LANGS, fold
from kiosk.model import VOUCHER_ALPHABET, code_complete
from kiosk.widgets import (
    ACCENT,
    BLACK,
    DANGER,
    GOOD,
    MUTED,
    PANEL,
    WARN,
    KButton,
    KLabel,
    Panel,
    hrow,
    vbox,
)

if TYPE_CHECKING:
    from kiosk.app import KioskApp

KEY_DP = 72  # keypad keys
VOUCHER_KEY_DP = 60  # 32 symbols + edit row on an 800 px screen
BIG_DP = 88  # main actions

SEARCH_KEYS = {
    "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوية",
    "zgh": "ⴰⴱⴳⴷⴹⴻⴼⴽⵀⵃⵄⵅⵇⵉⵊⵍⵎⵏⵓⵔⵕⵖⵙⵚⵛⵜⵟⵡⵢⵣⵥ",
    "fr": "ABCDEFGHIJKLMNOPQRSTUVWXYZÉÈÀÇ",
    "en": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
}


def lab(app: KioskApp, text: str, size: float = 24, *, raw: bool = False,
        color: Any = None, **kw: Any) -> KLabel:
    """A label: ``text`` is a msgid (translated) unless ``raw`` (already localised data)."""
    kw.setdefault("auto_height", "height" not in kw and "size_hint_y" not in kw)
    if kw["auto_height"]:
        kw.setdefault("size_hint_y", None)
    if color is not None:
        kw["color"] = color
    return KLabel(src=text if raw else app.L.t(text), rtl=app.L.rtl,
                  font_size=app.fs(size), **kw)


def btn(app: KioskApp, text: str, kid: str, on_press: Callable[[], None], *,
        size: float = 26, height: float = BIG_DP, fill: Any = PANEL, raw: bool = False,
        enabled: bool = True, **kw: Any) -> KButton:
    color = BLACK if fill in (ACCENT, WARN) else (1, 1, 1, 1)
    b = KButton(src=text if raw else app.L.t(text), rtl=app.L.rtl, font_size=app.fs(size),
                kid=kid, fill=list(fill), color=color, enabled=enabled,
                size_hint_y=None, height=max(dp(48), dp(height)), **kw)
    b.bind(on_release=lambda *_: on_press() if b.enabled else None)
    return b


def header(app: KioskApp, title: str, *, lang_button: bool = True,
           raw_title: bool = False) -> BoxLayout:
    items: list[Widget] = [lab(app, title, 30, raw=raw_title, size_hint_y=1,
                               auto_height=False)]
    big = btn(app, "Larger text", "large_text", app.toggle_large_text, size=20, height=56,
              size_hint_x=None, width=dp(190),
              fill=ACCENT if app.large_text else PANEL)
    items.append(big)
    if lang_button:
        items.append(btn(app, "Language", "lang_menu", lambda: app.show("welcome"), size=20,
                         height=56, size_hint_x=None, width=dp(170)))
    return hrow(items, app.L.rtl, size_hint_y=None, height=dp(64))


def page(app: KioskApp, title: str, body: list[Widget], *, lang_button: bool = True,
         footer: list[Widget] | None = None, raw_title: bool = False) -> BoxLayout:
    root = vbox([header(app, title, lang_button=lang_button, raw_title=raw_title)],
                padding=dp(20), spacing=dp(16))
    content = vbox(body, spacing=dp(16))
    root.add_widget(content)
    if footer:
        root.add_widget(hrow(footer, app.L.rtl, size_hint_y=None, height=dp(BIG_DP)))
    return root


# ---------------------------------------------------------------- screens


def welcome(app: KioskApp) -> Widget:
    langs = []
    for code in LANGS:
        b = KButton(src=LANG_NAMES[code], rtl=code == "ar", font_size=app.fs(28),
                    kid=f"lang_{code}", fill=list(ACCENT if code == app.L.lang else PANEL),
                    color=BLACK if code == app.L.lang else (1, 1, 1, 1),
                    size_hint_y=None, height=dp(BIG_DP), align="center")
        b.bind(on_release=lambda _b, c=code: app.choose_language(c))
        langs.append(b)
    body: list[Widget] = [
        lab(app, "Welcome to the Community Access Center", 40, align="center"),
        lab(app, "Choose your language", 22, align="center", color=MUTED),
        hrow(langs, app.L.rtl, size_hint_y=None, height=dp(BIG_DP)),
        Widget(size_hint_y=None, height=dp(12)),
        btn(app, "Start with a voucher", "start_voucher", lambda: app.show("voucher"),
            fill=ACCENT, size=30),
        hrow([btn(app, "Ask the operator", "ask_operator", lambda: app.show("operator")),
              btn(app, "Offline library", "portal", app.open_portal)],
             app.L.rtl, size_hint_y=None, height=dp(BIG_DP)),
        Widget(),
    ]
    return page(app, "Welcome", body, lang_button=False)


def voucher(app: KioskApp) -> Widget:
    code = app.voucher_code
    shown = code or "_____-_____"
    display = KLabel(src=shown, font_size=app.fs(40), align="center", size_hint_y=None,
                     height=dp(64), bg=list(PANEL))
    keys = GridLayout(cols=8, spacing=dp(8), size_hint_y=None)  # 4 rows fit in 800 px
    keys.bind(minimum_height=keys.setter("height"))
    for sym in VOUCHER_ALPHABET:
        k = KButton(src=sym, font_size=app.fs(30), kid=f"key_{sym}", align="center",
                    size_hint_y=None, height=dp(VOUCHER_KEY_DP), fill=list(PANEL))
        k.bind(on_release=lambda _b, s=sym: app.voucher_key(s))
        keys.add_widget(k)
    status = lab(app, app.voucher_status, 24, raw=True, align="center",
                 color=WARN if app.voucher_status_bad else MUTED)
    status.kid = "voucher_status"  # type: ignore[attr-defined]
    edit = hrow([btn(app, "Delete", "key_del", app.voucher_del, height=VOUCHER_KEY_DP),
                 btn(app, "Clear", "key_clear", app.voucher_clear, height=VOUCHER_KEY_DP)],
                app.L.rtl, size_hint_y=None, height=dp(VOUCHER_KEY_DP))
    body: list[Widget] = [lab(app, "Type the code printed on your voucher", 22, align="center"),
                          display, keys, edit, status]
    start = btn(app, "Start", "redeem", app.redeem, fill=ACCENT, size=30,
                enabled=code_complete(code) and not app.redeem_busy
                and app.redeem_blocked_until <= app.mono())
    return page(app, "Start with a voucher", body,
                footer=[btn(app, "Back", "back", lambda: app.show("welcome")), start])


def operator(app: KioskApp) -> Widget:
    body: list[Widget] = [
        Widget(),
        lab(app, "Please go to the counter. The operator will start your session on this "
                 "station.", 32, align="center"),
        lab(app, app.L.t("Station {station}", station=app.station), 40, raw=True,
            align="center", color=ACCENT),
        Widget(),
    ]
    return page(app, "Ask the operator", body,
                footer=[btn(app, "Back", "back", lambda: app.show("welcome"))])


def session(app: KioskApp) -> Widget:
    s = app.session or {}
    remaining = app.countdown.value(app.mono())
    if remaining is None:
        time_title = "Time used"
        time_text = app.L.clock(int(s.get("billed_seconds", 0)))
    else:
        time_title = "Time left"
        time_text = app.L.clock(remaining)
    fee = app.L.money(int(s.get("fee_so_far", 0)), str(s.get("currency", "MAD")))
    t_label = lab(app, time_text, 64, raw=True, align="center")
    f_label = lab(app, fee, 40, raw=True, align="center")
    app.live = {"time": t_label, "fee": f_label}
    tiles = hrow([
        vbox([lab(app, time_title, 24, align="center", color=MUTED), t_label],
             padding=dp(12)),
        vbox([lab(app, "Fee so far", 24, align="center", color=MUTED), f_label],
             padding=dp(12)),
    ], app.L.rtl, size_hint_y=None, height=dp(170))
    body: list[Widget] = [tiles]
    if s.get("paid_by") == "voucher" and s.get("voucher_minutes_left") is not None:
        body.append(lab(app, app.L.t("Voucher: {minutes} min left",
                                     minutes=s["voucher_minutes_left"]), 22, raw=True,
                        align="center", color=MUTED))
    if app.offline_in_session:
        body.append(lab(app, "Connection to the centre's server lost; your time is still "
                             "counted.", 22, align="center", color=WARN))
    apps = [btn(app, a.name, f"app_{a.id}", lambda a=a: app.launch_app(a.id))
            for a in app.cfg.apps]
    apps.append(btn(app, "Offline library", "portal", app.open_portal))
    grid = GridLayout(cols=2, spacing=dp(12), size_hint_y=None)
    grid.bind(minimum_height=grid.setter("height"))
    for b in apps:
        grid.add_widget(b)
    body.extend([grid, Widget()])
    return page(app, "Your session", body,
                footer=[btn(app, "End session", "end", app.ask_end, fill=DANGER)])


def receipt(app: KioskApp) -> Widget:
    r = app.receipt or {}
    rows: list[Widget] = [lab(app, "Session ended", 40, align="center")]

    def line(title: str, value: str, kid: str) -> BoxLayout:
        v = lab(app, value, 32, raw=True, align="end", size_hint_y=1, auto_height=False)
        v.kid = kid  # type: ignore[attr-defined]
        return hrow([lab(app, title, 28, size_hint_y=1, auto_height=False, color=MUTED), v],
                    app.L.rtl, size_hint_y=None, height=dp(64))

    rows.append(line("Duration", app.L.duration(int(r.get("billed_seconds", 0))), "duration"))
    rows.append(line("Fee", app.L.money(int(r.get("fee", 0)), str(r.get("currency", "MAD"))),
                     "fee"))
    if r.get("voucher_minutes_left") is not None:
        rows.append(line("Voucher time left",
                         app.L.t("{minutes} min", minutes=r["voucher_minutes_left"]),
                         "voucher_left"))
    rows.append(lab(app, "Your applications were closed and your files removed. Thank you!",
                    24, align="center", color=MUTED))
    rows.append(Widget())
    return page(app, "Receipt", rows,
                footer=[btn(app, "Done", "done", app.receipt_done, fill=ACCENT)])


def locked(app: KioskApp) -> Widget:
    lock = app.lock or {}
    body: list[Widget] = [Widget(), lab(app, "This station is locked.", 40, align="center")]
    if lock.get("reason"):
        body.append(lab(app, str(lock["reason"]), 28, raw=True, align="center", color=ACCENT))
    body.extend([lab(app, "Please see the operator.", 28, align="center", color=MUTED),
                 Widget()])
    return page(app, "Station locked", body, lang_button=True)


def offline(app: KioskApp) -> Widget:
    wait = max(0, int(app.next_poll - app.mono()))
    retry = lab(app, app.L.t("Trying again in {seconds} s", seconds=wait), 26, raw=True,
                align="center", color=MUTED)
    app.live = {"retry": retry}
    body: list[Widget] = [
        Widget(),
        lab(app, "This station is out of service for a moment.", 40, align="center"),
        lab(app, "It cannot reach the centre's server. Please ask the operator.", 28,
            align="center"),
        retry,
        Widget(),
    ]
    if app.offline_detail:
        body.insert(-1, lab(app, app.offline_detail, 18, raw=True, align="center",
                            color=MUTED))
    return page(app, "Out of service", body,
                footer=[btn(app, "Try again now", "retry", app.poll_now)])


def pin(app: KioskApp) -> Widget:
    display = KLabel(src="●" * len(app.pin_typed) or " ", font_size=app.fs(44),
                     align="center", size_hint_y=None, height=dp(76), bg=list(PANEL))
    keys = GridLayout(cols=3, spacing=dp(8), size_hint_y=None, size_hint_x=None,
                      width=dp(3 * 110))
    keys.bind(minimum_height=keys.setter("height"))
    for sym in "123456789 0<":
        if sym == " ":
            keys.add_widget(Widget(size_hint_y=None, height=dp(KEY_DP)))
            continue
        k = KButton(src="⌫" if sym == "<" else sym, font_size=app.fs(30), kid=f"pin_{sym}",
                    size_hint_y=None, height=dp(KEY_DP), fill=list(PANEL))
        k.bind(on_release=lambda _b, s=sym: app.pin_key(s))
        keys.add_widget(k)
    center = BoxLayout(size_hint_y=None, height=dp(4 * (KEY_DP + 8)))
    center.add_widget(Widget())
    center.add_widget(keys)
    center.add_widget(Widget())
    body: list[Widget] = [lab(app, "Operator PIN", 28, align="center"), display, center,
                          lab(app, app.pin_status, 24, raw=True, align="center", color=WARN),
                          Widget()]
    return page(app, "Exit kiosk", body, lang_button=False,
                footer=[btn(app, "Back", "back", app.pin_cancel),
                        btn(app, "Exit", "pin_ok", app.pin_submit, fill=DANGER)])


def portal(app: KioskApp) -> Widget:
    q = app.portal_query
    field = KLabel(src=q or app.L.t("Search by title"), rtl=app.L.rtl, font_size=app.fs(28),
                   size_hint_y=None, height=dp(64), bg=list(PANEL),
                   color=(1, 1, 1, 1) if q else MUTED, padding=(dp(12), dp(4)))
    keys = GridLayout(cols=10, spacing=dp(6), size_hint_y=None)
    keys.bind(minimum_height=keys.setter("height"))
    letters = SEARCH_KEYS[app.L.lang]
    for ch in (reversed(letters) if app.L.rtl else letters):
        k = KButton(src=ch, rtl=app.L.rtl, font_size=app.fs(24), kid=f"search_{ch}",
                    size_hint_y=None, height=dp(56), fill=list(PANEL))
        k.bind(on_release=lambda _b, c=ch: app.portal_type(c))
        keys.add_widget(k)
    edit = hrow([btn(app, "Space", "search_space", lambda: app.portal_type(" "), height=56),
                 btn(app, "Delete", "search_del", app.portal_del, height=56)],
                app.L.rtl, size_hint_y=None, height=dp(56))
    results = GridLayout(cols=1, spacing=dp(8), size_hint_y=None)
    results.bind(minimum_height=results.setter("height"))
    packages = app.portal_packages
    if packages is None:
        results.add_widget(lab(app, "Loading…", 24, align="center", color=MUTED))
    else:
        shown = [p for p in packages if fold(q) in fold(str(p.get("title", "")))]
        if not packages:
            results.add_widget(lab(app, "No content is available yet.", 26, align="center",
                                   color=MUTED))
        elif not shown:
            results.add_widget(lab(app, "Nothing matches your search.", 26, align="center",
                                   color=MUTED))
        for p in shown:
            results.add_widget(btn(app, str(p.get("title", p.get("id", "?"))),
                                   f"pkg_{p.get('id')}", lambda p=p: app.open_package(p),
                                   raw=True, align="start", height=72))
    scroll = ScrollView(do_scroll_x=False)
    scroll.add_widget(results)
    body: list[Widget] = [field, keys, edit, scroll]
    return page(app, "Offline library", body,
                footer=[btn(app, "Back", "back", app.portal_back)])


def portal_item(app: KioskApp) -> Widget:
    p = app.portal_package or {}
    box = GridLayout(cols=1, spacing=dp(8), size_hint_y=None)
    box.bind(minimum_height=box.setter("height"))
    if p.get("description"):
        box.add_widget(lab(app, str(p["description"]), 24, raw=True, color=MUTED))
    if app.portal_text is not None:
        box.add_widget(lab(app, app.portal_text, 22, raw=True))
    else:
        for f in p.get("files", []):
            title = str(f.get("title") or f.get("path", "?"))
            box.add_widget(btn(app, title, f"file_{f.get('path')}",
                               lambda f=f: app.open_file(f), raw=True, align="start",
                               height=64))
    if app.portal_note:
        box.add_widget(lab(app, app.portal_note, 22, align="center", color=WARN))
    scroll = ScrollView(do_scroll_x=False)
    scroll.add_widget(box)
    return page(app, str(p.get("title", "")), [scroll], raw_title=True,
                footer=[btn(app, "Back", "back", app.portal_item_back)])


BUILDERS: dict[str, Callable[[KioskApp], Widget]] = {
    "welcome": welcome, "voucher": voucher, "operator": operator, "session": session,
    "receipt": receipt, "locked": locked, "offline": offline, "pin": pin, "portal": portal,
    "portal_item": portal_item,
}


def modal_body(app: KioskApp, title: str, text: str, buttons: list[KButton], *,
               raw_text: bool = False, live_key: str | None = None) -> Panel:
    panel = Panel(padding=dp(24), spacing=dp(16), fill=list(PANEL))
    panel.add_widget(lab(app, title, 32, align="center"))
    body = lab(app, text, 26, raw=raw_text, align="center")
    if live_key:
        app.live[live_key] = body
    panel.add_widget(body)
    panel.add_widget(hrow(list(buttons), app.L.rtl, size_hint_y=None, height=dp(BIG_DP)))
    return panel


__all__ = ["BUILDERS", "GOOD", "btn", "lab", "modal_body"]
