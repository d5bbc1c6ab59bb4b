#!/usr/bin/env bash
# Idempotent setup shared by scripts/test.sh and scripts/run.sh:
#   1. finds Python 3.11+ (python3 on PATH, pyenv or Debian's /usr/bin/python3);
#   2. as root, installs the Debian packages the system needs (only when one is missing);
#      not as root, says which apt-get command to run, and stops only if a required one is missing;
#   3. creates .venv and installs the project with its test extras (pip runs again only
#      when pyproject.toml changed: .venv/.cac-pyproject.sha256 holds its sha256).
#
# Usage: scripts/setup.sh [test|run]   (default: test; the test command needs mosquitto)
# Environment: PYTHON=/path/to/python3.x picks the interpreter.
set -euo pipefail

purpose="${1:-test}"
case "$purpose" in
    test | run) ;;
    *)
        echo "usage: scripts/setup.sh [test|run]" >&2
        exit 2
        ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.cac-pyproject.sha256"

say() { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'setup: ERROR: %s\n' "$*" >&2
    exit 1
}

# ------------------------------------------------------------------ Python 3.11+

py_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; }

find_python() {
    local c
    for c in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 /usr/bin/python3; do
        [ -n "$c" ] || continue
        command -v "$c" >/dev/null 2>&1 || continue
        if py_ok "$c"; then
            # resolve pyenv shims and symlinks to the interpreter itself
            "$c" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }
have_apt() { command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; }

apt_install() { # apt_install PKG... (as root; runs apt-get update first)
    say "installing Debian packages: $*"
    apt-get -qq -o DPkg::Lock::Timeout=300 update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "$@"
}

apt_hint() { # the command a root user should run
    printf 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends %s' "$*"
}

PY="$(find_python || true)"
if [ -z "$PY" ] && is_root && have_apt; then
    say "no Python 3.11+ found; trying Debian's python3"
    apt_install python3 python3-venv || true
    PY="$(find_python || true)"
fi
if [ -z "$PY" ]; then
    die "Python 3.11 or newer is required, and none was found (tried \$PYTHON, python3, python3.13,
  python3.12, python3.11, /usr/bin/python3). On Debian 12 run as root:
    $(apt_hint python3 python3-venv)
  or put a Python 3.11+ first on PATH (e.g. with pyenv), or set PYTHON=/path/to/python3.11."
fi
PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# ------------------------------------------------------------------ system packages

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

find_mosquitto() {
    command -v mosquitto 2>/dev/null && return 0
    local p
    for p in /usr/sbin/mosquitto /usr/local/sbin/mosquitto; do
        if [ -x "$p" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# venv needs ensurepip, which Debian ships separately (python3-venv / python3.X-venv)
venv_pkg=""
if [ ! -x "$VENV/bin/python" ] && ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(readlink -f "$PY")" = "$(readlink -f /usr/bin/python3 2>/dev/null)" ]; then
        venv_pkg="python3-venv"
    elif [[ "$(readlink -f "$PY")" == /usr/bin/* ]]; then
        venv_pkg="python${PYVER}-venv"
    else
        die "$PY cannot create a virtual environment (its ensurepip module is missing).
  Use a complete Python 3.11+ build, or Debian's: $(apt_hint python3 python3-venv)
  then run again (PYTHON=/usr/bin/python3 picks it)."
    fi
fi

# the project's system packages: mosquitto for the broker (tests, run), xvfb/xauth/GL/fonts
# for the Kivy kiosk under a virtual X server (libxss1: X idle time, libmtdev1: touch input),
# chromium for the browser tests of web pages, nftables and systemd for checking the device
# image's firewall and units, debootstrap for building the image (slow tests); xwininfo and
# xwd also for the run command's test (its window on the display, a screenshot); the citizen's
# desktop (kiosk/desktop.py, kiosk/bar.py): openbox, xdotool, wmctrl, xprop/xwininfo
# (x11-utils), xhost (x11-xserver-utils), xwd for screenshots (x11-apps), LibreOffice;
# the kiosk's icons (Material Icons font: without it, words only) and its voice (espeak-ng:
# without it, the listen button plays only recorded files); systemd-container (systemd-nspawn)
# and dnsmasq-base (DHCP on the test's private network) to boot the built image (slow tests);
# the till's print release (issue 17): CUPS with a PDF printer for the tests, pdfinfo
# (poppler-utils) for page counts and Ghostscript for colour; postgresql: the server the
# hub store's tests start (tests/pgserver.py; [store] url)
wanted_pkgs=(mosquitto mosquitto-clients xvfb xauth libgl1-mesa-dri fonts-noto-core
    fonts-dejavu-core fonts-material-design-icons-iconfont espeak-ng chromium libxss1 libmtdev1
    nftables systemd debootstrap systemd-container dnsmasq-base
    openbox xdotool wmctrl x11-utils x11-xserver-utils x11-apps libreoffice-writer
    libreoffice-calc cups printer-driver-cups-pdf poppler-utils ghostscript postgresql)
if [ -n "$venv_pkg" ]; then wanted_pkgs+=("$venv_pkg"); fi

missing=()
if have_apt; then
    for p in "${wanted_pkgs[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if is_root; then
        if ! apt_install "${missing[@]}"; then
            warn "installing all of (${missing[*]}) failed; retrying with the essential ones only"
            essential=()
            for p in mosquitto "$venv_pkg"; do
                if [ -n "$p" ] && ! pkg_installed "$p"; then essential+=("$p"); fi
            done
            if [ "${#essential[@]}" -gt 0 ]; then
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                    -o DPkg::Lock::Timeout=300 "${essential[@]}" || true
            fi
        fi
        still=()
        for p in "${missing[@]}"; do
            if ! pkg_installed "$p"; then still+=("$p"); fi
        done
        [ "${#still[@]}" -eq 0 ] || warn "still missing after apt-get: ${still[*]} (some features will not work)"
    else
        warn "these Debian packages are missing: ${missing[*]}
  To install them, run as root (e.g. with sudo):
    $(apt_hint "${missing[@]}")"
    fi
fi

# what really matters is the binaries, whoever installed them
if [ -n "$venv_pkg" ] && ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
    die "$PY cannot create a virtual environment: Debian package $venv_pkg is missing.
  Run as root: $(apt_hint "$venv_pkg")"
fi
if ! find_mosquitto >/dev/null; then
    if [ "$purpose" = test ]; then
        die "the mosquitto broker is required by the tests and is not installed.
  Run as root: $(apt_hint mosquitto mosquitto-clients)"
    else
        warn "mosquitto is not installed: the system will run without an MQTT broker (the agent works offline).
  To get one, run as root: $(apt_hint mosquitto mosquitto-clients)"
    fi
fi

# ------------------------------------------------------------------ .venv

if [ -e "$VENV" ] && ! py_ok "$VENV/bin/python"; then
    warn "$VENV is broken or older than Python 3.11; recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $PY (Python $PYVER)"
    "$PY" -m venv "$VENV" || die "'$PY -m venv $VENV' failed (see above)"
fi

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        "$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
    fi
}

want_hash="$(sha256_of "$ROOT/pyproject.toml")"
have_hash="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want_hash" != "$have_hash" ] || [ ! -x "$VENV/bin/pytest" ] || [ ! -x "$VENV/bin/cac-agent" ]; then
    say "installing the project into .venv (pip install -e '.[test]')"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    rm -f "$STAMP"
    log="$VENV/pip-install.log" # pip and setuptools talk a lot even with -q: shown on failure
    if ! {
        "$VENV/bin/python" -m pip install -q --upgrade pip &&
            (cd "$ROOT" && "$VENV/bin/python" -m pip install -q -e '.[test]')
    } >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "pip install -e '.[test]' failed (the end of $log is above)"
    fi
    printf '%s\n' "$want_hash" >"$STAMP"
fi
say "ready: $VENV (Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))"
