#!/usr/bin/env bash
# Build the root filesystem of a CAC device (site box or station) from Debian's packages:
# Debian bookworm (debootstrap --variant=minbase) + the project in /opt/cac/venv + fonts for
# Arabic and Tifinagh + Mosquitto client tools + Xorg and openbox (the kiosk bar over the
# citizen's Chromium and LibreOffice, run as cac-citizen) + nftables,
# with the systemd units, kiosk session, first-boot enrolment and firewall of images/overlay.
#
# Usage (as root):
#   images/build-rootfs.sh --out DIR [--tarball FILE] [--mirror URL] [--suite bookworm]
#                          [--epoch SECONDS] [--constraints FILE] [--extra-packages "a b"]
#
#   --out DIR           where the root filesystem is built (must not exist, or be empty)
#   --tarball FILE      also pack it as a reproducible .tar.gz (sorted, fixed mtime, numeric
#                       owners) and print its size
#   --mirror URL        Debian archive to install from; default: the one this machine's apt
#                       uses (/etc/apt/sources.list*). Give a dated snapshot of the archive
#                       to pin every Debian package to that day.
#   --epoch SECONDS     SOURCE_DATE_EPOCH (default: the time of the project's last git commit)
#   --constraints FILE  pip constraints for the venv (default: the versions installed in the
#                       project's .venv, i.e. the ones the tests ran against)
#   --extra-packages    more Debian packages, e.g. "openssh-server linux-image-amd64"
#
# Needs: root, debootstrap, network to the Debian archive and to PyPI (the wheels are
# downloaded by this machine's pip; the root filesystem installs them offline).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="$(cd "$HERE/.." && pwd)"

OUT="" TARBALL="" MIRROR="" SUITE="bookworm" EPOCH="" CONSTRAINTS="" EXTRA=""
# the device's base system, installed by debootstrap (Priority required/important come with
# minbase)
PACKAGES=(
    systemd systemd-sysv systemd-resolved udev dbus libpam-systemd
    python3 python3-venv ca-certificates tzdata netbase
    fonts-noto-core fonts-dejavu-core
    fonts-material-design-icons-iconfont
    mosquitto-clients nftables sudo
)
# the display stack and the citizen's computer (issue 22), installed with apt-get inside the
# new system: debootstrap's own dependency ordering fails to configure a set this large
# ("Failure while configuring base packages ... libreoffice-writer is at fault")
DESKTOP_PACKAGES=(
    xserver-xorg-core xserver-xorg-input-libinput xserver-xorg-video-fbdev xinit
    libgl1 libegl1 libgl1-mesa-dri libgles2 libmtdev1 libxss1
    openbox xdotool wmctrl x11-xserver-utils x11-utils
    chromium libreoffice-writer libreoffice-calc fonts-crosextra-carlito
    espeak-ng libasound2
    cups cups-client poppler-utils ghostscript
)

say() { printf 'build-rootfs: %s\n' "$*"; }
die() {
    printf 'build-rootfs: error: %s\n' "$*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="${2:?--out needs a directory}"; shift 2 ;;
        --tarball) TARBALL="${2:?--tarball needs a file}"; shift 2 ;;
        --mirror) MIRROR="${2:?--mirror needs a URL}"; shift 2 ;;
        --suite) SUITE="${2:?--suite needs a name}"; shift 2 ;;
        --epoch) EPOCH="${2:?--epoch needs seconds}"; shift 2 ;;
        --constraints) CONSTRAINTS="${2:?--constraints needs a file}"; shift 2 ;;
        --extra-packages) EXTRA="${2:-}"; shift 2 ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

[ -n "$OUT" ] || die "--out DIR is required (see --help)"
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then die "$OUT exists and is not empty"; fi

mirror_from_apt() { # the first Debian archive URI this machine's apt uses for $SUITE
    python3 - "$SUITE" <<'EOF'
import glob, re, sys
suite = sys.argv[1]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split() \
                and fields.get("Enabled", "yes") != "no":
            print(fields["URIs"].split()[0]); sys.exit(0)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            print(words[1]); sys.exit(0)
sys.exit(1)
EOF
}

if [ -z "$MIRROR" ]; then
    MIRROR="$(mirror_from_apt)" || die "no Debian $SUITE archive in /etc/apt/sources.list*: pass --mirror URL"
fi
if [ -z "$EPOCH" ]; then
    EPOCH="$(git -C "$PROJECT" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH="$EPOCH" # also makes Python write hash-based .pyc files
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
VENV_PY="$PROJECT/.venv/bin/python"
[ -x "$VENV_PY" ] || VENV_PY="python3"

start=$(date +%s)
mkdir -p "$OUT"
ROOT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cac-build.XXXXXX")"

MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -l "${MOUNTS[$i]}" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind() { # bind /X of this machine at ROOT/X
    mkdir -p "$ROOT$1"
    mount --bind "$1" "$ROOT$1"
    MOUNTS+=("$ROOT$1")
}

# ------------------------------------------------------------------ 1. Debian

all_packages="$(printf '%s,' "${PACKAGES[@]}")"
say "debootstrap $SUITE from $MIRROR (minbase + ${#PACKAGES[@]} packages)"
debootstrap --variant=minbase --components=main --include="${all_packages%,}" \
    "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    [ -f "$ROOT/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOT/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (the end of its log is above)"
}
# apt inside the device uses the same archive
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$ROOT/etc/apt/sources.list"
bind /proc
bind /sys
bind /dev
bind /dev/pts

# apt inside the chroot resolves names with this machine's resolver (systemd-resolved's
# package has made /etc/resolv.conf its stub link; it is set again in step 3)
rm -f "$ROOT/etc/resolv.conf"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# no service starts inside the chroot while packages install
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
say "apt-get install the display stack and the citizen's apps (${#DESKTOP_PACKAGES[@]} packages${EXTRA:+ + $EXTRA})"
{ chroot "$ROOT" apt-get update -q &&
    chroot "$ROOT" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${DESKTOP_PACKAGES[@]}" $EXTRA; } >"$WORK/apt.log" 2>&1 || {
    tail -n 30 "$WORK/apt.log" >&2
    die "apt-get install inside the root filesystem failed (the end of its log is above)"
}
chroot "$ROOT" apt-get clean
rm -f "$ROOT/usr/sbin/policy-rc.d"

# ------------------------------------------------------------------ 2. the project's venv

say "building the project's wheel"
(cd "$PROJECT" && "$VENV_PY" -m pip wheel -q --no-deps -w "$WORK/wheel" . \
    >"$WORK/wheel.log" 2>&1) || {
    tail -n 30 "$WORK/wheel.log" >&2
    die "pip wheel failed"
}
if [ -z "$CONSTRAINTS" ]; then
    CONSTRAINTS="$WORK/constraints.txt"
    if [ -x "$PROJECT/.venv/bin/python" ]; then
        "$PROJECT/.venv/bin/python" -m pip freeze --exclude-editable 2>/dev/null |
            grep -v -e '^cac-edge' -e '^-e ' >"$CONSTRAINTS" || true
    else
        : >"$CONSTRAINTS"
    fi
fi
# wheels are fetched here, with this machine's pip and its settings (index, proxy, CA);
# the root filesystem installs them with no network
say "downloading the dependencies' wheels"
"$VENV_PY" -m pip download -q --only-binary=:all: -d "$WORK/wheel" -c "$CONSTRAINTS" \
    "$WORK"/wheel/*.whl >"$WORK/download.log" 2>&1 || {
    tail -n 30 "$WORK/download.log" >&2
    die "pip download failed"
}
mkdir -p "$ROOT/tmp/cac-install"
cp "$WORK"/wheel/*.whl "$ROOT/tmp/cac-install/"

say "installing the project and its dependencies into /opt/cac/venv"
chroot "$ROOT" /usr/bin/python3 -m venv /opt/cac/venv
chroot "$ROOT" env PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_CONFIG_FILE=/dev/null \
    /opt/cac/venv/bin/pip install -q --no-cache-dir --no-index \
    --find-links /tmp/cac-install cac-edge >"$WORK/pip.log" 2>&1 || {
    tail -n 30 "$WORK/pip.log" >&2
    die "pip install inside the root filesystem failed"
}
chroot "$ROOT" /opt/cac/venv/bin/pip freeze --all >"$ROOT/opt/cac/requirements.lock" 2>/dev/null

# ------------------------------------------------------------------ 3. users, files, units

say "users, units, kiosk session, first-boot, firewall"
chroot "$ROOT" useradd --system --user-group --home-dir /var/lib/cac-agent --no-create-home \
    --shell /usr/sbin/nologin --comment "CAC site agent" cac-agent
chroot "$ROOT" useradd --system --user-group --home-dir /var/lib/cac-kiosk --no-create-home \
    --shell /usr/sbin/nologin --comment "CAC station kiosk" cac-kiosk
# the kiosk's voice (the listen button) plays on the sound card: ALSA's devices are group audio
chroot "$ROOT" usermod --append --groups audio cac-kiosk
# print release (agent/printing.py): the agent reads the held jobs' spooled files (CUPS's spool
# is root:lp 0710, its files 0640) and releases or cancels other users' jobs (CUPS's
# SystemGroup lpadmin, through its local socket)
chroot "$ROOT" usermod --append --groups lp,lpadmin cac-agent
# the citizen's apps: a user of their own, whose home is recreated for every session
chroot "$ROOT" useradd --system --user-group --home-dir /var/lib/cac-citizen/home \
    --no-create-home --shell /usr/sbin/nologin --comment "CAC citizen session" cac-citizen
install -d -m 0755 "$ROOT/var/lib/cac-citizen"
cp -a "$HERE/overlay/." "$ROOT/"
chmod 0440 "$ROOT/etc/sudoers.d/cac-citizen"
install -m 0755 "$HERE/cac_firstboot.py" "$ROOT/usr/local/sbin/cac-firstboot"
install -m 0644 "$HERE/README.md" "$ROOT/opt/cac/README.md"
install -d -m 0750 -o root -g "$(chroot "$ROOT" getent group cac-agent | cut -d: -f3)" \
    "$ROOT/etc/cac-agent"
install -d -m 0750 -o root -g "$(chroot "$ROOT" getent group cac-kiosk | cut -d: -f3)" \
    "$ROOT/etc/cac-kiosk"
chroot "$ROOT" systemctl enable -q cac-firstboot.service nftables.service \
    systemd-networkd.service systemd-resolved.service
chroot "$ROOT" systemctl set-default -q graphical.target
# an empty machine-id: systemd makes the device's own at its first boot
: >"$ROOT/etc/machine-id"
echo cac-device >"$ROOT/etc/hostname"
# names resolve through systemd-resolved on the device
ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"

# ------------------------------------------------------------------ 4. clean, pack

for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}"; done
MOUNTS=()
rm -rf "$ROOT/tmp/cac-install" "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/lib/dpkg/*-old "$ROOT/var/cache/ldconfig/aux-cache"
find "$ROOT/var/log" -type f -exec truncate -s 0 {} +
find "$ROOT/tmp" "$ROOT/var/tmp" -mindepth 1 -delete

secs=$(($(date +%s) - start))
say "root filesystem: $ROOT ($(du -sh --apparent-size "$ROOT" | cut -f1) apparent, built in ${secs} s)"
if [ -n "$TARBALL" ]; then
    say "packing $TARBALL"
    tar --sort=name --mtime="@$EPOCH" --clamp-mtime --numeric-owner --xattrs \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$ROOT" -cf - . | gzip -n -6 >"$TARBALL"
    say "image tarball: $TARBALL $(stat -c %s "$TARBALL") bytes ($(du -h "$TARBALL" | cut -f1)), sha256 $(sha256sum "$TARBALL" | cut -d' ' -f1)"
fi
say "done in $(($(date +%s) - start)) s"
