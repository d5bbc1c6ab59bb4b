"""cac-firstboot: apply an enrolment bundle from `cac-provision add-cac` on a device's first boot.

Installed in the image as /usr/local/sbin/cac-firstboot, run once by cac-firstboot.service
with the project's venv Python (so it checks agent.toml with the agent's own parser).

Where the bundle comes from, first found wins: a USB stick labelled CAC-ENROL (mounted
read-only at /run/cac-enrol), /boot/firmware, /boot/cac, /boot. Exactly one
`enrol-*.tar.gz` must be there. Beside it, an optional `cac-device.conf` (KEY=VALUE lines)
says what this device is; kernel command line parameters `cac.KEY=VALUE` override it:

  role      site (default): the agent and one kiosk on this box;
            station: only a kiosk, pointing at the site agent over the LAN
  station   which station's kiosk runs here (default: the first station in the bundle)
  agent     station role: the site agent's IPv4 address (default: the address in the
            bundle's kiosk/STATION.env, if it is a LAN address and not 127.0.0.1)
  lan       the station LAN, comma-separated IPv4 networks allowed to reach the agent
            (default: 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16)
  admin     comma-separated IPv4 networks allowed to ssh in (default: none)
  internet  yes: the kiosk may browse the web (tcp 80, 443 out); default no
  printer   site role: the CUPS device URI of the centre's printer (ipp://192.168.1.50/ipp/print,
            socket://192.168.1.50:9100, usb://...); every station then prints to a held
            queue of its own on the site box (named like the station), released or cancelled
            at the counter (agent/printing.py). Default: no print queues
  printer_model  the queues' driver, as `lpadmin -m` takes it (`lpinfo -m` lists them);
            default `everywhere` (driverless IPP) for ipp:// and ipps://, else the generic
            PostScript driver drv:///sample.drv/generic.ppd

Then it installs /etc/cac-agent/agent.toml (0640 root:cac-agent) and ca.crt beside it,
/etc/cac-kiosk/kiosk.env (0640 root:cac-kiosk), the firewall's site values
(/etc/cac/firewall.nft), the hostname, the print settings (site: /etc/cac/printing.json for
cac-print-queues.service, the CUPS server opened to the station LAN, [printing] and the two
print items added to agent.toml unless the bundle has them; station: /etc/cups/client.conf
naming the site box), writes /var/lib/cac-firstboot/done, enables the services and disables
itself. Nothing is written unless the bundle and settings are valid.
Exit status: 0 done, 1 nothing applied (the error is printed on one line), 3 no bundle yet.

`cac-firstboot --print-queues` (run by cac-print-queues.service at every boot of a site box
with a printer) makes or updates the stations' held queues from /etc/cac/printing.json with
`lpadmin`; it exits 1 with one line when CUPS or the printer does not answer (the unit
retries every minute).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from common.durable import atomic_write_bytes
from common.ids import CAC_ID_RE, STATION_ID_PATTERN, STATION_ID_RE

PROG = "cac-firstboot"
STICK_LABEL = "CAC-ENROL"
STICK_MOUNT = "run/cac-enrol"
SEARCH_DIRS = (STICK_MOUNT, "boot/firmware", "boot/cac", "boot")
DEVICE_CONF = "cac-device.conf"
DONE = "var/lib/cac-firstboot/done"
MAX_MEMBER_BYTES = 1024 * 1024
DEFAULT_LAN = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
KIOSK_KEYS = ("CAC_AGENT_URL", "CAC_STATION", "CAC_TOKEN")
SETTINGS = ("role", "station", "agent", "lan", "admin", "internet", "printer", "printer_model")
PRINTING_CONF = "etc/cac/printing.json"
CUPSD_CONF = "etc/cups/cupsd.conf"
CUPS_SOCKET = "/run/cups/cups.sock"
CUPS_PORT = 631
PRINTER_URI_RE = re.compile(r"(ipps?|socket|lpd|usb|https?|dnssd)://[^\s'\"]{1,250}")
PRINTER_MODEL_RE = re.compile(r"[A-Za-z0-9:/._+-]{1,200}")
GENERIC_PPD = "drv:///sample.drv/generic.ppd"
# the agent's price list gains these when the device has a printer and the bundle none
PRINT_ITEMS = (
    ("print-bw", "Impression N&B", "طباعة أبيض وأسود", 100),
    ("print-color", "Impression couleur", "طباعة ملونة", 300),
)
EXIT_NO_BUNDLE = 3
MOUNT, UMOUNT = "/usr/bin/mount", "/usr/bin/umount"
SYSTEMCTL = shutil.which("systemctl") or "/usr/bin/systemctl"


class EnrolError(Exception):
    """One line for the console: what is wrong and what to do."""


@dataclass
class Bundle:
    path: Path
    sha256: str
    enrol: dict[str, Any]
    agent_toml: str
    ca_crt: bytes | None
    kiosk_env: dict[str, dict[str, str]] = field(default_factory=dict)  # station id -> env


@dataclass(frozen=True)
class Device:
    role: str
    station: str
    agent: str | None
    lan: tuple[str, ...]
    admin: tuple[str, ...]
    internet: bool
    printer: str | None = None
    printer_model: str | None = None


# ---------------------------------------------------------------- finding the bundle


def find_bundle(root: Path, dirs: Sequence[str]) -> Path | None:
    for d in dirs:
        base = root / d
        if not base.is_dir():
            continue
        found = sorted(base.glob("enrol-*.tar.gz"))
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise EnrolError(f"several bundles in {base} ({names}): leave only this device's")
        if found:
            return found[0]
    return None


@contextlib.contextmanager
def stick_mounted(root: Path) -> Iterator[None]:
    """Mount the CAC-ENROL stick read-only (real system only) for the duration."""
    device = Path("/dev/disk/by-label") / STICK_LABEL
    target = root / STICK_MOUNT
    mounted = False
    if root == Path("/") and device.exists() and not os.path.ismount(target):
        target.mkdir(parents=True, exist_ok=True)
        rc = subprocess.run(  # noqa: S603 - fixed program, our own arguments
            [MOUNT, "-o", "ro,nosuid,nodev,noexec", str(device), str(target)],
            check=False).returncode
        mounted = rc == 0
    try:
        yield
    finally:
        if mounted:
            subprocess.run([UMOUNT, str(target)], check=False)  # noqa: S603


# ---------------------------------------------------------------- reading the bundle


def _env_file(text: str, name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise EnrolError(f"{name}: bad line {line!r} (want KEY=VALUE)")
        env[key] = value.strip().strip('"').strip("'")
    missing = [k for k in KIOSK_KEYS if k not in env]
    if missing:
        raise EnrolError(f"{name}: missing {', '.join(missing)}")
    return env


def read_bundle(path: Path) -> Bundle:
    """Read and check every member in memory; nothing is extracted to disk."""
    try:
        raw = path.read_bytes()
        files: dict[str, bytes] = {}
        with tarfile.open(path, "r:gz") as tar:
            for m in tar.getmembers():
                name = PurePosixPath(m.name)
                if m.isdir():
                    continue
                if not m.isfile() or name.is_absolute() or ".." in name.parts:
                    raise EnrolError(f"{path.name}: unexpected member {m.name!r}")
                if m.size > MAX_MEMBER_BYTES:
                    raise EnrolError(f"{path.name}: member {m.name} is too large")
                f = tar.extractfile(m)
                if f is not None:
                    files[str(PurePosixPath(*[p for p in name.parts if p != "."]))] = f.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise EnrolError(f"{path.name} is not a readable .tar.gz bundle: {exc}") from None
    for need in ("enrol.json", "agent.toml"):
        if need not in files:
            raise EnrolError(f"{path.name} has no {need}: make it with 'cac-provision add-cac'")
    try:
        enrol = json.loads(files["enrol.json"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnrolError(f"enrol.json is not valid JSON: {exc}") from None
    check_enrol(enrol)
    try:
        agent_toml = files["agent.toml"].decode()
    except UnicodeDecodeError:
        raise EnrolError("agent.toml is not UTF-8") from None
    bundle = Bundle(path, hashlib.sha256(raw).hexdigest(), enrol, agent_toml,
                    files.get("ca.crt"))
    for name, data in files.items():
        m = re.fullmatch(rf"kiosk/({STATION_ID_PATTERN})\.env", name)
        if m:
            bundle.kiosk_env[m.group(1)] = _env_file(data.decode(errors="replace"), name)
    check_agent_toml(bundle)
    return bundle


def check_enrol(enrol: object) -> None:
    if not isinstance(enrol, dict):
        raise EnrolError("enrol.json must be a JSON object")
    if enrol.get("format") != 1:
        raise EnrolError(f"enrol.json: format must be 1, got {enrol.get('format')!r} "
                         "(a newer cac-provision? update the image)")
    for key in ("cac_id", "hub_id"):
        if not isinstance(enrol.get(key), str) or not CAC_ID_RE.fullmatch(enrol[key]):
            raise EnrolError(f"enrol.json: {key} must match [a-z0-9-]{{3,64}}")
    port = enrol.get("agent_url_port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise EnrolError("enrol.json: agent_url_port must be a port number 1..65535")
    stations = enrol.get("stations")
    if not isinstance(stations, list) or not stations:
        raise EnrolError("enrol.json: stations must be a non-empty list")
    for i, s in enumerate(stations):
        if not (isinstance(s, dict) and isinstance(s.get("id"), str)
                and STATION_ID_RE.fullmatch(s["id"]) and isinstance(s.get("token"), str)
                and s["token"]):
            raise EnrolError(f"enrol.json: stations[{i}] must be {{\"id\", \"token\"}}")


def _agent_config_checked(text: str) -> dict[str, Any]:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnrolError(f"agent.toml is not valid TOML: {exc}") from None
    try:  # the agent's own checks, when this runs with the project's Python
        from agent.config import ConfigError, parse_agent_config
    except ImportError:
        parse_agent_config = None
    if parse_agent_config is not None:
        try:
            parse_agent_config(raw)
        except ConfigError as exc:
            raise EnrolError(f"agent.toml: {exc}") from None
    return raw


def check_agent_toml(bundle: Bundle) -> None:
    raw = _agent_config_checked(bundle.agent_toml)
    if raw.get("cac_id") != bundle.enrol["cac_id"]:
        raise EnrolError(f"agent.toml is for {raw.get('cac_id')!r} but enrol.json for "
                         f"{bundle.enrol['cac_id']!r}")
    http = raw.get("http")
    if isinstance(http, dict) and http.get("port", bundle.enrol["agent_url_port"]) \
            != bundle.enrol["agent_url_port"]:
        raise EnrolError("agent.toml http.port differs from enrol.json agent_url_port")


# ---------------------------------------------------------------- what this device is


def read_settings(text: str, source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in SETTINGS:
            raise EnrolError(f"{source}: bad line {line!r} (keys: {', '.join(SETTINGS)})")
        out[key] = value.strip()
    return out


def cmdline_settings(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep and key.startswith("cac."):
            if key[4:] not in SETTINGS:
                raise EnrolError(f"kernel command line: unknown {key} "
                                 f"(known: {', '.join('cac.' + s for s in SETTINGS)})")
            out[key[4:]] = value
    return out


def _nets(value: str, key: str) -> tuple[str, ...]:
    nets = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        try:
            nets.append(str(ipaddress.IPv4Network(part, strict=False)))
        except ValueError:
            raise EnrolError(f"{key}: {part!r} is not an IPv4 network like 192.168.1.0/24") \
                from None
    return tuple(nets)


def _bundle_agent_host(bundle: Bundle, station: str) -> str | None:
    """The agent's LAN address if the bundle's kiosk env names one (not loopback)."""
    url = bundle.kiosk_env.get(station, {}).get("CAC_AGENT_URL", "")
    m = re.fullmatch(r"https?://([0-9.]+)(:\d+)?/?", url)
    with contextlib.suppress(ValueError):
        if m and not ipaddress.IPv4Address(m.group(1)).is_loopback:
            return m.group(1)
    return None


def decide_device(settings: dict[str, str], bundle: Bundle) -> Device:
    role = settings.get("role", "site")
    if role not in ("site", "station"):
        raise EnrolError(f"role must be site or station, got {role!r}")
    ids = [s["id"] for s in bundle.enrol["stations"]]
    station = settings.get("station", ids[0])
    if station not in ids:
        raise EnrolError(f"station {station!r} is not in this bundle (it has {', '.join(ids)})")
    agent = settings.get("agent") or None
    if role == "station":
        agent = agent or _bundle_agent_host(bundle, station)
        if agent is None:
            raise EnrolError("a station device needs the site agent's address: "
                             "agent=IP in cac-device.conf or cac.agent=IP on the kernel line")
        try:
            agent = str(ipaddress.IPv4Address(agent))
        except ValueError:
            raise EnrolError(f"agent must be an IPv4 address, got {agent!r}") from None
    internet = settings.get("internet", "no").lower()
    if internet not in ("yes", "no"):
        raise EnrolError(f"internet must be yes or no, got {internet!r}")
    lan = _nets(settings["lan"], "lan") if "lan" in settings else DEFAULT_LAN
    if not lan:
        raise EnrolError("lan must name at least one network")
    printer, model = _printer(settings, role)
    return Device(role, station, agent, lan, _nets(settings.get("admin", ""), "admin"),
                  internet == "yes", printer, model)


def _printer(settings: dict[str, str], role: str) -> tuple[str | None, str | None]:
    printer = settings.get("printer") or None
    model = settings.get("printer_model") or None
    if printer is None:
        if model is not None:
            raise EnrolError("printer_model is set but printer is not")
        return None, None
    if role != "site":
        raise EnrolError("printer is set on the site box (the stations print to its queues)")
    if not PRINTER_URI_RE.fullmatch(printer):
        raise EnrolError(f"printer must be a CUPS device URI like ipp://192.168.1.50/ipp/print "
                         f"or socket://192.168.1.50:9100, got {printer!r}")
    if model is None:
        model = "everywhere" if printer.startswith(("ipp://", "ipps://")) else GENERIC_PPD
    if not PRINTER_MODEL_RE.fullmatch(model):
        raise EnrolError(f"printer_model must be a model name as lpinfo -m lists it, "
                         f"got {model!r}")
    return printer, model


# ---------------------------------------------------------------- printing


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def site_agent_toml(bundle: Bundle, device: Device) -> str:
    """The bundle's agent.toml; on a site with a printer, plus ``[printing]`` on the local
    CUPS and the two print items, each unless the bundle already has it (checked again with
    the agent's own parser)."""
    text = bundle.agent_toml
    if device.printer is None:
        return text
    raw = tomllib.loads(text)
    add: list[str] = []
    if "printing" not in raw:
        add.append(f"[printing]  # added by {PROG}: this site box has a printer\n"
                   f"cups = {_toml_str(CUPS_SOCKET)}\n")
    have = {i.get("id") for i in raw.get("catalogue", []) if isinstance(i, dict)}
    for item, fr, ar, price in PRINT_ITEMS:
        if item not in have:
            add.append(f"[[catalogue]]  # added by {PROG}; the manager sets the price\n"
                       f"id = {_toml_str(item)}\nname = {{ fr = {_toml_str(fr)}, "
                       f"ar = {_toml_str(ar)} }}\nprice = {price}\nunit = \"page\"\n")
    if not add:
        return text
    out = text.rstrip("\n") + "\n\n" + "\n".join(add)
    _agent_config_checked(out)
    return out


def printing_conf(bundle: Bundle, device: Device) -> str:
    return json.dumps({"printer": device.printer, "model": device.printer_model,
                       "stations": [s["id"] for s in bundle.enrol["stations"]],
                       "server": CUPS_SOCKET}, indent=1) + "\n"


def cupsd_for_the_lan(text: str) -> str:
    """Debian's cupsd.conf opened to the station LAN (the firewall admits only that): CUPS
    on every address (``Port 631``), ``Allow @LOCAL`` (the networks of this box's
    interfaces) at ``/``, and no idle exit (stations reach it over TCP, not its socket)."""
    out: list[str] = []
    in_root = idle = False
    for line in text.splitlines():
        word = line.strip()
        local_tcp = word.startswith("Listen") and word.split()[-1] in ("localhost:631",
                                                                        "127.0.0.1:631")
        if local_tcp or word.startswith("Port "):
            line = f"Port {CUPS_PORT}"
        elif word.startswith("IdleExitTimeout"):
            line, idle = "IdleExitTimeout 0", True
        elif word == "<Location />":
            in_root = True
        elif in_root and word == "Allow @LOCAL":
            continue
        elif in_root and word == "</Location>":
            out.append("  Allow @LOCAL")
            in_root = False
        out.append(line)
    if not idle:
        out.append("IdleExitTimeout 0")
    if f"Port {CUPS_PORT}" not in out:
        out.insert(0, f"Port {CUPS_PORT}")
    return "\n".join(out) + "\n"


def _printer_target(uri: str) -> tuple[str | None, int | None]:
    """The printer's IPv4 address (None for a name) and TCP port (None: USB, DNS-SD)."""
    u = urlsplit(uri)
    port = {"ipp": 631, "ipps": 631, "socket": 9100, "lpd": 515, "http": 80,
            "https": 443}.get(u.scheme)
    if port is None:
        return None, None
    with contextlib.suppress(ValueError):
        port = u.port or port
    try:
        return str(ipaddress.IPv4Address(u.hostname or "")), port
    except ValueError:
        return None, port


def _unit_exists(root: Path, unit: str) -> bool:
    return any((root / d / unit).exists() for d in
               ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system"))


# ---------------------------------------------------------------- writing


def _gid(root: Path, group: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in (root / "etc/group").read_text().splitlines():
            parts = line.split(":")
            if len(parts) >= 3 and parts[0] == group:
                return int(parts[2])
    return None


def write_file(root: Path, rel: str, data: bytes, mode: int, group: str | None = None) -> None:
    """Atomic write owned by root:GROUP (the group is looked up in ROOT/etc/group)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    owner: tuple[int, int] | None = None
    if group is not None:
        gid = _gid(root, group)
        if gid is None:
            raise EnrolError(f"group {group} does not exist in {root / 'etc/group'}: "
                             "is this the CAC image?")
        owner = (0, gid)
    try:
        atomic_write_bytes(path, data, mode=mode, owner=owner)
    except PermissionError:
        if owner is None or root == Path("/"):
            raise
        print(f"{PROG}: warning: cannot chown {path} (not root)", file=sys.stderr)
        atomic_write_bytes(path, data, mode=mode)


def kiosk_env(bundle: Bundle, device: Device) -> str:
    port = bundle.enrol["agent_url_port"]
    host = "127.0.0.1" if device.role == "site" else device.agent
    token = next(s["token"] for s in bundle.enrol["stations"] if s["id"] == device.station)
    env = dict(bundle.kiosk_env.get(device.station, {}))
    env.update({"CAC_AGENT_URL": f"http://{host}:{port}", "CAC_STATION": device.station,
                "CAC_TOKEN": token})
    return "".join(f"{k}={v}\n" for k, v in sorted(env.items()))


def _hub_target(agent_toml: str) -> tuple[list[str], list[int]]:
    """The hub's IPv4 address (if the config names one, else any) and ports."""
    raw = tomllib.loads(agent_toml)
    mqtt = raw.get("mqtt", {})
    hosts = [str(mqtt.get("host", ""))]
    ports = {int(mqtt.get("port", 1883))}
    hub_url = raw.get("content", {}).get("hub_url")
    if isinstance(hub_url, str):
        m = re.fullmatch(r"(https?)://(\[[^\]]+\]|[^:/]+)(?::(\d+))?(/.*)?", hub_url)
        if m:
            hosts.append(m.group(2))
            ports.add(int(m.group(3) or (443 if m.group(1) == "https" else 80)))
    addrs: list[str] = []
    for h in hosts:
        try:
            addrs.append(str(ipaddress.IPv4Address(h)))
        except ValueError:  # a name (resolved at run time) or IPv6: restrict by port only
            return ["0.0.0.0/0"], sorted(ports)
    return sorted(set(addrs)), sorted(ports)


def firewall_values(bundle: Bundle, device: Device) -> str:
    """Elements for the named sets of /etc/nftables.conf (an empty set matches nothing)."""
    port = bundle.enrol["agent_url_port"]
    sets: dict[str, list[str]] = {
        "station_lan": list(device.lan),
        "admin_net": list(device.admin),
        "web_ports": ["80", "443"] if device.internet else [],
    }
    if device.role == "site":
        hub_addrs, hub_ports = _hub_target(bundle.agent_toml)
        sets.update(agent_ports=[str(port)], hub_addrs=hub_addrs,
                    hub_ports=[str(p) for p in hub_ports])
        if device.printer is not None:
            sets["print_ports"] = [str(CUPS_PORT)]
            addr, pport = _printer_target(device.printer)
            if pport is not None and addr is not None:
                sets["printer_dst"] = [f"{addr} . {pport}"]
            elif pport is not None:
                sets["printer_ports"] = [str(pport)]
    else:  # the kiosk reaches the site's agent, the citizen's apps its print queues
        sets.update(site_agent=[f"{device.agent} . {port}", f"{device.agent} . {CUPS_PORT}"])
    lines = [f"# written by {PROG} for {bundle.enrol['cac_id']} ({device.role} "
             f"{device.station}); included by /etc/nftables.conf"]
    for name in sorted(sets):
        if sets[name]:
            lines.append(f"add element inet cac {name} {{ {', '.join(sets[name])} }}")
    return "\n".join(lines) + "\n"


def systemctl(root: Path, *args: str) -> None:
    cmd = [SYSTEMCTL, *args] if root == Path("/") else [SYSTEMCTL, f"--root={root}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise EnrolError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def apply(root: Path, bundle: Bundle, device: Device, *, use_systemctl: bool) -> None:
    cac_id = bundle.enrol["cac_id"]
    agent_text = site_agent_toml(bundle, device)  # checked before anything is written
    cupsd = None
    if device.role == "site" and device.printer is not None:
        try:
            cupsd = cupsd_for_the_lan((root / CUPSD_CONF).read_text())
        except OSError:
            raise EnrolError(f"printer is set but {root / CUPSD_CONF} cannot be read: "
                             "is CUPS in this image?") from None
    if device.role == "site":
        write_file(root, "etc/cac-agent/agent.toml", agent_text.encode(), 0o640, "cac-agent")
        if bundle.ca_crt is not None:
            write_file(root, "etc/cac-agent/ca.crt", bundle.ca_crt, 0o644)
    if cupsd is not None:
        write_file(root, CUPSD_CONF, cupsd.encode(), 0o640, "lp")
        write_file(root, PRINTING_CONF, printing_conf(bundle, device).encode(), 0o644)
    if device.role == "station":  # the citizen's apps print to the site box's queue
        write_file(root, "etc/cups/client.conf",
                   f"# written by {PROG}: print to the site box\n"
                   f"ServerName {device.agent}:{CUPS_PORT}\n".encode(), 0o644)
    if device.role == "station" or device.printer is not None:
        write_file(root, "etc/cups/lpoptions", f"Default {device.station}\n".encode(), 0o644)
    write_file(root, "etc/cac-kiosk/kiosk.env", kiosk_env(bundle, device).encode(), 0o640,
               "cac-kiosk")
    write_file(root, "etc/cac/firewall.nft", firewall_values(bundle, device).encode(), 0o644)
    host = cac_id if device.role == "site" else f"{cac_id}-{device.station}"
    write_file(root, "etc/hostname", (host[:63].rstrip("-") + "\n").encode(), 0o644)
    units = ["cac-agent.service", "cac-kiosk.service"] if device.role == "site" \
        else ["cac-kiosk.service"]
    if device.printer is not None:
        units.append("cac-print-queues.service")
    # a station prints through the site box: no CUPS server of its own
    no_cups = [u for u in ("cups.path", "cups.socket", "cups.service")
               if device.role == "station" and _unit_exists(root, u)]
    if use_systemctl:
        systemctl(root, "enable", *units)
        systemctl(root, "disable", "cac-firstboot.service")
        if no_cups:
            systemctl(root, "disable", *no_cups)
        if root == Path("/") and Path("/run/systemd/system").is_dir():  # booted with systemd:
            # this boot gets the firewall's new values and starts what was enabled
            systemctl(root, "reload-or-restart", "--no-block", "nftables.service")
            if no_cups:
                systemctl(root, "stop", "--no-block", *no_cups)
            elif cupsd is not None:  # cups.service ran before: it reads its new config
                systemctl(root, "try-restart", "cups.service")
            systemctl(root, "start", "--no-block", *units)
    summary = {"cac_id": cac_id, "hub_id": bundle.enrol["hub_id"], "role": device.role,
               "station": device.station, "agent": device.agent,
               "printer": device.printer,
               "bundle": bundle.path.name, "bundle_sha256": bundle.sha256,
               "enabled": units, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    write_file(root, DONE, (json.dumps(summary, indent=1) + "\n").encode(), 0o644)


# ---------------------------------------------------------------- the print queues


def lpadmin(server: str, *args: str) -> None:
    tool = shutil.which("lpadmin") or "/usr/sbin/lpadmin"
    try:
        done = subprocess.run([tool, "-h", server, *args], capture_output=True,  # noqa: S603
                              text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnrolError(f"lpadmin {' '.join(args[:2])}: {exc}") from None
    if done.returncode != 0:
        msg = " ".join(line for line in (done.stderr or done.stdout).splitlines()
                       if "deprecated" not in line)
        raise EnrolError(f"lpadmin {' '.join(args[:2])} on {server}: {msg.strip()[:300]}")


def make_print_queues(root: Path, server: str | None) -> str:
    """One held queue per station of /etc/cac/printing.json, shared with the station LAN."""
    try:
        conf = json.loads((root / PRINTING_CONF).read_text())
        printer, model, stations = conf["printer"], conf["model"], conf["stations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EnrolError(f"{root / PRINTING_CONF}: {exc} (written at enrolment when "
                         "cac-device.conf has printer =)") from None
    if not (isinstance(printer, str) and PRINTER_URI_RE.fullmatch(printer)
            and isinstance(model, str) and PRINTER_MODEL_RE.fullmatch(model)
            and isinstance(stations, list)
            and all(isinstance(x, str) and STATION_ID_RE.fullmatch(x) for x in stations)):
        raise EnrolError(f"{root / PRINTING_CONF}: want printer (a device URI), model and "
                         "stations (station ids)")
    server = server or os.environ.get("CUPS_SERVER") or conf.get("server") or CUPS_SOCKET
    for st in stations:  # -p again on an existing queue updates it
        lpadmin(server, "-p", st, "-E", "-v", printer, "-m", model,
                "-D", f"CAC station {st}", "-L", "collect at the counter",
                "-o", "job-hold-until-default=indefinite", "-o", "printer-is-shared=true",
                "-o", "printer-error-policy=retry-job")
    return f"held print queues {', '.join(stations)} on {printer} ({model})"


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description="Apply a CAC enrolment bundle once.")
    p.add_argument("--root", default="/", help="the system to enrol (tests: a directory)")
    p.add_argument("--bundle", help="this bundle file instead of searching for one")
    p.add_argument("--cmdline", help="kernel command line file (default ROOT/proc/cmdline)")
    p.add_argument("--wait", type=float, default=0.0,
                   help="seconds to wait for a bundle to appear (slow USB sticks)")
    p.add_argument("--no-systemctl", action="store_true",
                   help="write files only; enable no service")
    p.add_argument("--print-queues", action="store_true",
                   help="make or update the stations' held print queues from "
                        f"/{PRINTING_CONF} (cac-print-queues.service), then exit")
    p.add_argument("--cups-server", help="with --print-queues: this CUPS server "
                                         f"(default {CUPS_SOCKET})")
    args = p.parse_args(argv)
    root = Path(args.root)
    if args.print_queues:
        try:
            print(f"{PROG}: {make_print_queues(root, args.cups_server)}")
        except EnrolError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        if (root / DONE).exists():
            print(f"{PROG}: already enrolled ({root / DONE}); nothing to do")
            return 0
        deadline = time.monotonic() + args.wait
        with stick_mounted(root):
            while True:
                path = Path(args.bundle) if args.bundle else find_bundle(root, SEARCH_DIRS)
                if path is not None or time.monotonic() >= deadline:
                    break
                time.sleep(2)
            if path is None:
                print(f"{PROG}: no enrol-*.tar.gz found on a stick labelled {STICK_LABEL} nor "
                      "in /boot/firmware, /boot/cac, /boot: insert the stick and reboot",
                      file=sys.stderr)
                return EXIT_NO_BUNDLE
            bundle = read_bundle(path)
            settings: dict[str, str] = {}
            conf = path.parent / DEVICE_CONF
            if conf.is_file():
                settings.update(read_settings(conf.read_text(), DEVICE_CONF))
        cmdline = Path(args.cmdline) if args.cmdline else root / "proc/cmdline"
        if cmdline.is_file():
            settings.update(cmdline_settings(cmdline.read_text()))
        device = decide_device(settings, bundle)
        apply(root, bundle, device, use_systemctl=not args.no_systemctl)
    except EnrolError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{PROG}: enrolled {bundle.enrol['cac_id']} as {device.role} "
          f"(station {device.station}) from {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
