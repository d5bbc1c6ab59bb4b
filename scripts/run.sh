#!/usr/bin/env bash
# The run command: the whole system on this machine, with demo data kept in run-data/.
#   - a Mosquitto broker on 127.0.0.1 (port 1883, or a free one if that is taken);
#   - the hub (cac-hub), and the kiosk of station s1 where there is a DISPLAY, once built;
#   - the agent of the demo CAC "demo-cac-001" in the foreground (stations s1..s3).
# Ctrl-C (or the agent exiting) stops everything this script started, by PID.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" run

cd "$ROOT"
V="$ROOT/.venv/bin"
PY="$V/python"
export PATH="$V:$PATH"
DATA="$ROOT/run-data"
AGENT_TOML="$DATA/agent.toml"
HUB_TOML="$DATA/hub.toml"
mkdir -p "$DATA"
chmod 700 "$DATA" # it holds station tokens and the operator password

say() { printf 'run: %s\n' "$*"; }
warn() { printf 'run: WARNING: %s\n' "$*" >&2; }

# ------------------------------------------------------------------ processes and cleanup

declare -A PIDS=() # name -> pid of what this script started
STOP_ORDER=(kiosk simulator agent hub mosquitto cups)

stop_pid() { # stop_pid NAME PID: SIGTERM, wait up to 10 s, then SIGKILL
    local name="$1" pid="$2" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name (pid $pid) did not stop on SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
    trap - EXIT INT TERM HUP
    local name
    for name in "${STOP_ORDER[@]}"; do
        if [ -n "${PIDS[$name]:-}" ]; then
            say "stopping $name (pid ${PIDS[$name]})"
            stop_pid "$name" "${PIDS[$name]}"
        fi
    done
    if [ -n "${CUPS_PDF_CONF:-}" ]; then rm -f "$CUPS_PDF_CONF"; fi
    if [ -n "${CUPS_DIR:-}" ]; then rm -rf "$CUPS_DIR"; fi
}
trap cleanup EXIT
trap 'echo; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP # the terminal window was closed

# Each program runs in a session of its own: Ctrl-C in the terminal reaches this script only
# (not every program at once), and cleanup stops them in STOP_ORDER, so the agent says
# "offline" to a broker that is still there. setsid execs in place: $! is the program's PID.
DETACH=()
if command -v setsid >/dev/null 2>&1; then DETACH=(setsid); fi

# did a background program exit at once? prints why; "not built yet" is expected for now
check_started() { # check_started NAME PID LOG SECONDS -> 0 if it is still running
    local name="$1" pid="$2" log="$3" secs="$4" i
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        return 0
    fi
    local rc=0
    wait "$pid" 2>/dev/null || rc=$?
    unset "PIDS[$name]"
    if grep -q "not built yet" "$log" 2>/dev/null; then
        say "$(grep -m1 "not built yet" "$log") -- carrying on without it"
    else
        warn "$name exited with status $rc; the end of $log:"
        tail -n 15 "$log" >&2 || true
    fi
    return 1
}

port_answers() { # port_answers PORT: something accepts TCP connections on 127.0.0.1:PORT
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() { # wait_port PORT PID SECONDS: until the port answers, while PID lives
    local port="$1" pid="$2" secs="$3" i
    for ((i = 0; i < secs * 20; i++)); do
        port_answers "$port" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# ------------------------------------------------------------------ demo configs (kept)

# Writes run-data/agent.toml and hub.toml the first time (random station tokens, kept after
# that) and run-data/admin-password; on every run, moves the broker, agent and hub ports to
# free ones if their configured ports are taken (editing only those lines of the files).
# Prints: MQTT_PORT HTTP_PORT HUB_PORT
ports="$("$PY" - "$DATA" <<'PY'
import os
import re
import secrets
import socket
import sys
import tomllib
from pathlib import Path

data = Path(sys.argv[1])
agent_toml, hub_toml = data / "agent.toml", data / "hub.toml"


def port_free(port: int) -> bool:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


taken: set[int] = set()


def pick(*preferred: int) -> int:
    """The first preferred port nobody listens on (and not picked yet), else a free one."""
    for port in preferred:
        if port not in taken and port_free(port):
            taken.add(port)
            return port
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in taken:
            taken.add(p)
            return p


def set_key(path: Path, section: str, key: str, value: int) -> None:
    """Set `key = value` inside [section] of a TOML file, leaving every other line alone."""
    lines = path.read_text().splitlines(keepends=True)
    current = ""
    for i, line in enumerate(lines):
        m = re.match(r"\s*\[+\s*([^\]]+?)\s*\]+", line)
        if m:
            current = m.group(1)
        elif current == section and re.match(rf"\s*{key}\s*=", line):
            lines[i] = f"{key} = {value}\n"
            path.write_text("".join(lines))
            return
    raise SystemExit(f"run.sh: no '{key}' in [{section}] of {path}")


def write_new(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


if not agent_toml.exists():
    stations = "".join(
        f'\n[[stations]]\nid = "s{i}"\ntoken = "{secrets.token_hex(16)}"\n' for i in (1, 2, 3)
    )
    write_new(agent_toml, f"""\
# Demo agent config written once by scripts/run.sh; station tokens are random and kept.
# run.sh only changes [mqtt].port and [http].port when those ports are taken.
# Delete run-data/ to start over.
cac_id = "demo-cac-001"
data_dir = "{data / 'agent'}"
timezone = "Africa/Casablanca"

[mqtt]
host = "127.0.0.1"
port = 1883

[http]
host = "127.0.0.1"
port = 8081
{stations}
[tariff]
currency = "MAD"
block_minutes = 15      # time is sold in 15-minute blocks
block_price = 200       # 2.00 MAD per block by day
minimum_blocks = 1
grace_seconds = 60

[[tariff.bands]]        # night: 1.00 MAD per block
from = "20:00"
to = "08:00"
block_price = 100

[tariff.concessions]
student = 50            # percent off

[content]               # the portal content cache syncs from the hub
hub_url = "http://127.0.0.1:8080"
poll_seconds = 60
""")

if not hub_toml.exists():
    write_new(hub_toml, f"""\
# Demo hub config written once by scripts/run.sh (for cac-hub, once it is built).
hub_id = "demo-hub"
data_dir = "{data / 'hub'}"
offline_after_seconds = 90

[mqtt]
host = "127.0.0.1"
port = 1883

[http]
host = "127.0.0.1"
port = 8080
""")

for name in ("admin-password", "tech-password"):
    pw_file = data / name
    if not pw_file.exists():
        write_new(pw_file, secrets.token_urlsafe(12) + "\n")

agent = tomllib.loads(agent_toml.read_text())
hub = tomllib.loads(hub_toml.read_text())
mqtt_port = pick(1883)
http_port = pick(8081, int(agent["http"]["port"]))
hub_port = pick(8080, int(hub["http"]["port"]))
if agent["mqtt"]["port"] != mqtt_port:
    set_key(agent_toml, "mqtt", "port", mqtt_port)
if hub["mqtt"]["port"] != mqtt_port:
    set_key(hub_toml, "mqtt", "port", mqtt_port)
if agent["http"]["port"] != http_port:
    set_key(agent_toml, "http", "port", http_port)
content = agent.get("content")
if content is None:  # a config written before the content cache existed
    with agent_toml.open("a") as f:
        f.write(f'\n[content]\nhub_url = "http://127.0.0.1:{hub_port}"\npoll_seconds = 60\n')
elif content.get("hub_url") != f"http://127.0.0.1:{hub_port}":
    lines = agent_toml.read_text().splitlines(keepends=True)
    agent_toml.write_text("".join(
        f'hub_url = "http://127.0.0.1:{hub_port}"\n' if re.match(r"\s*hub_url\s*=", line)
        else line for line in lines))
if hub["http"]["port"] != hub_port:
    set_key(hub_toml, "http", "port", hub_port)
print(mqtt_port, http_port, hub_port)
PY
)" || {
    echo "run: could not write the demo configs in $DATA (see above)" >&2
    exit 1
}
read -r MQTT_PORT HTTP_PORT HUB_PORT <<<"$ports"
ADMIN_PASSWORD="$(head -n1 "$DATA/admin-password")"
TECH_PASSWORD="$(head -n1 "$DATA/tech-password")"
mkdir -p "$DATA/agent" "$DATA/hub"

if "$V/cac-agent" check-config --config "$AGENT_TOML" >/dev/null 2>"$DATA/check-config.err"; then
    :
elif grep -q "error" "$DATA/check-config.err"; then
    warn "$AGENT_TOML does not pass 'cac-agent check-config':"
    cat "$DATA/check-config.err" >&2
fi

# ------------------------------------------------------------------ broker

MOSQUITTO="$(command -v mosquitto || true)"
for p in /usr/sbin/mosquitto /usr/local/sbin/mosquitto; do
    if [ -z "$MOSQUITTO" ] && [ -x "$p" ]; then MOSQUITTO="$p"; fi
done
BROKER_STATE="not running (mosquitto is not installed)"
if [ -n "$MOSQUITTO" ]; then
    mkdir -p "$DATA/mosquitto"
    {
        echo "# Demo broker config written by scripts/run.sh on every run."
        echo "listener $MQTT_PORT 127.0.0.1"
        echo "allow_anonymous true"
        echo "persistence true"
        echo "persistence_location $DATA/mosquitto/"
        echo "log_dest file $DATA/mosquitto.log"
        echo "log_timestamp_format %Y-%m-%dT%H:%M:%S"
        echo "max_queued_messages 100000"
        # as root mosquitto would switch to user "mosquitto", which cannot write run-data/
        if [ "$(id -u)" -eq 0 ]; then echo "user root"; fi
    } >"$DATA/mosquitto.conf"
    "${DETACH[@]}" "$MOSQUITTO" -c "$DATA/mosquitto.conf" </dev/null >>"$DATA/mosquitto.out" 2>&1 &
    PIDS[mosquitto]=$!
    if wait_port "$MQTT_PORT" "${PIDS[mosquitto]}" 5; then
        BROKER_STATE="mqtt://127.0.0.1:$MQTT_PORT (pid ${PIDS[mosquitto]}, log run-data/mosquitto.log)"
    else
        warn "mosquitto did not start; the end of its log:"
        tail -n 15 "$DATA/mosquitto.log" "$DATA/mosquitto.out" >&2 2>/dev/null || true
        stop_pid mosquitto "${PIDS[mosquitto]}"
        unset "PIDS[mosquitto]"
        BROKER_STATE="not running (it failed to start: see run-data/mosquitto.log)"
    fi
else
    warn "mosquitto is not installed: running without a broker (the agent works offline)"
fi

# ------------------------------------------------------------------ operator account

OPERATOR_STATE="admin / $ADMIN_PASSWORD (role manager)"
if ! printf '%s' "$ADMIN_PASSWORD" | "$V/cac-agent" add-operator --config "$AGENT_TOML" \
    --name admin --role manager --password-stdin >"$DATA/add-operator.log" 2>&1; then
    warn "could not create the demo operator (cac-agent add-operator failed):"
    tail -n 5 "$DATA/add-operator.log" >&2 || true
    OPERATOR_STATE="none (cac-agent add-operator failed: see run-data/add-operator.log)"
fi

# ------------------------------------------------------------------ hub (background)

TECH_STATE="tech / $TECH_PASSWORD (role technician)"
if ! printf '%s\n' "$TECH_PASSWORD" | "$V/cac-hub" add-user --config "$HUB_TOML" \
    --name tech --role technician --password-stdin >"$DATA/add-user.log" 2>&1; then
    warn "could not create the demo technician (cac-hub add-user failed):"
    tail -n 5 "$DATA/add-user.log" >&2 || true
    TECH_STATE="none (cac-hub add-user failed: see run-data/add-user.log)"
fi
# an API token for the demo's programs (a new one each run; the hub keeps only its hash)
API_TOKEN=""
API_STATE="none (cac-hub add-token failed: see run-data/add-token.log)"
if "$V/cac-hub" add-token --config "$HUB_TOML" --name demo --role viewer \
    >"$DATA/add-token.log" 2>&1; then
    API_TOKEN="$(tail -n 1 "$DATA/add-token.log")"
    API_STATE="$API_TOKEN (role viewer; send it as Authorization: Bearer ...)"
    (umask 077 && printf '%s\n' "$API_TOKEN" >"$DATA/api-token")
else
    warn "could not create the demo API token (cac-hub add-token failed):"
    tail -n 5 "$DATA/add-token.log" >&2 || true
fi
# the starter content set (a package already there is only replaced when it changed)
CONTENT_STATE="starter packages from content/ (the agent syncs them within a minute)"
if ! "$V/cac-hub" add-content --config "$HUB_TOML" "$ROOT"/content/*/ \
    >"$DATA/add-content.log" 2>&1; then
    warn "could not publish the starter content (cac-hub add-content failed):"
    tail -n 5 "$DATA/add-content.log" >&2 || true
    CONTENT_STATE="not published (see run-data/add-content.log)"
fi

"${DETACH[@]}" "$V/cac-hub" --config "$HUB_TOML" </dev/null >"$DATA/hub.log" 2>&1 &
PIDS[hub]=$!

# ------------------------------------------------------------------ printing (demo)

# When CUPS and cups-pdf are installed (scripts/setup.sh does it as root), station s1 prints
# to a held queue of a private cupsd on a free loopback port (FIELD-NOTES: a private cupsd
# with a cups-pdf queue): the job waits until the counter releases it at the console's
# Impressions page, then cups-pdf writes the PDF. Its files live in a 0755 directory under
# /tmp (CUPS filters run as lp, who cannot read most home directories).
CUPS_PPD=/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd
CUPSD="$(command -v cupsd || echo /usr/sbin/cupsd)"
LPADMIN="$(command -v lpadmin || echo /usr/sbin/lpadmin)"
PRINT_STATE="no print queue: CUPS is not installed (as root: apt-get install cups printer-driver-cups-pdf poppler-utils)"
if [ -x "$CUPSD" ] && [ -x "$LPADMIN" ] && [ -f "$CUPS_PPD" ] && command -v lpstat >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        PRINT_STATE="no print queue: a private CUPS with cups-pdf needs root here"
    else
        CUPS_DIR="$(mktemp -d /tmp/cac-demo-cups-XXXXXX)"
        chmod 0755 "$CUPS_DIR"
        mkdir -p "$CUPS_DIR"/{etc,spool,tmp,cache,state,log,out,pdfspool}
        chmod 1777 "$CUPS_DIR"/{tmp,out,pdfspool}
        CUPS_PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        CUPS_NAME="cacdemo$CUPS_PORT"
        cat >"$CUPS_DIR/etc/cupsd.conf" <<CONF
Listen 127.0.0.1:$CUPS_PORT
ServerName 127.0.0.1
Browsing No
WebInterface No
DefaultAuthType None
LogLevel warn
<Location />
Order allow,deny
Allow 127.0.0.1
</Location>
<Policy default>
<Limit All>
Order deny,allow
</Limit>
</Policy>
CONF
        cat >"$CUPS_DIR/etc/cups-files.conf" <<CONF
ServerRoot $CUPS_DIR/etc
RequestRoot $CUPS_DIR/spool
TempDir $CUPS_DIR/tmp
CacheDir $CUPS_DIR/cache
StateDir $CUPS_DIR/state
AccessLog $CUPS_DIR/log/access_log
ErrorLog $CUPS_DIR/log/error_log
PageLog $CUPS_DIR/log/page_log
Printcap $CUPS_DIR/printcap
User lp
Group lp
SystemGroup root
FileDevice No
CONF
        CUPS_PDF_CONF="/etc/cups/cups-pdf-$CUPS_NAME.conf"
        printf 'Out %s/out\nSpool %s/pdfspool\nLog %s/log\n' "$CUPS_DIR" "$CUPS_DIR" "$CUPS_DIR" \
            >"$CUPS_PDF_CONF"
        "${DETACH[@]}" "$CUPSD" -f -c "$CUPS_DIR/etc/cupsd.conf" -s "$CUPS_DIR/etc/cups-files.conf" \
            </dev/null >"$DATA/cupsd.log" 2>&1 &
        PIDS[cups]=$!
        queue_ok=""
        for _ in $(seq 1 100); do # a fresh cupsd may drop its first connections
            if lpstat -h "127.0.0.1:$CUPS_PORT" -r >/dev/null 2>&1 &&
                "$LPADMIN" -h "127.0.0.1:$CUPS_PORT" -p s1 -E -v "cups-pdf:/$CUPS_NAME" \
                    -P "$CUPS_PPD" -o job-hold-until-default=indefinite >>"$DATA/cupsd.log" 2>&1; then
                queue_ok=1
                break
            fi
            sleep 0.2
        done
        if [ -n "$queue_ok" ] && "$PY" - "$AGENT_TOML" "127.0.0.1:$CUPS_PORT" "$CUPS_DIR/spool" <<'PY'; then
import re
import sys
import tomllib
from pathlib import Path

path, cups, spool = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
cfg = tomllib.loads(path.read_text())
text = path.read_text()
if "printing" in cfg:  # a config from an earlier run: the private cupsd's new port and spool
    text = re.sub(r'(?m)^cups = ".*"$', f'cups = "{cups}"', text)
    text = re.sub(r'(?m)^spool_dir = ".*"$', f'spool_dir = "{spool}"', text)
else:
    text += f'\n[printing]\ncups = "{cups}"\nspool_dir = "{spool}"\n'
if not any(i.get("id") == "print-bw" for i in cfg.get("catalogue", [])):
    text += ('\n[[catalogue]]\nid = "print-bw"\nname = { fr = "Impression N&B", '
             'ar = "طباعة أبيض وأسود" }\nprice = 100\nunit = "page"\n'
             '\n[[catalogue]]\nid = "print-color"\nname = { fr = "Impression couleur", '
             'ar = "طباعة بالألوان" }\nprice = 300\nunit = "page"\n')
path.write_text(text)
PY
            PRINT_STATE="station s1 prints to a held queue on 127.0.0.1:$CUPS_PORT (lp -h 127.0.0.1:$CUPS_PORT -d s1 FILE); release it at the console's print page"
        else
            warn "the demo print queue could not be set up (see run-data/cupsd.log); going on without it"
            PRINT_STATE="no print queue (see run-data/cupsd.log)"
        fi
    fi
fi

# ------------------------------------------------------------------ agent (foreground)

say "starting cac-agent --config run-data/agent.toml (Ctrl-C stops everything)"
"${DETACH[@]}" "$V/cac-agent" --config "$AGENT_TOML" </dev/null &
PIDS[agent]=$!
if ! wait_port "$HTTP_PORT" "${PIDS[agent]}" 20; then
    rc=0
    wait "${PIDS[agent]}" || rc=$?
    unset "PIDS[agent]"
    warn "cac-agent did not come up on 127.0.0.1:$HTTP_PORT (exit status $rc)"
    exit $((rc == 0 ? 1 : rc))
fi

HUB_STATE="http://127.0.0.1:$HUB_PORT/ (pid ${PIDS[hub]}, log run-data/hub.log)"
check_started hub "${PIDS[hub]}" "$DATA/hub.log" 1 ||
    HUB_STATE="not running (see above and run-data/hub.log)"

# ------------------------------------------------------------------ simulated CACs (background)

SIM_COUNT="${CAC_SIM_COUNT:-5}"
SIM_STATE="not started"
if [ -n "${PIDS[mosquitto]:-}" ] && [ "$SIM_COUNT" -gt 0 ]; then
    "${DETACH[@]}" "$V/cac-simulate" --host 127.0.0.1 --port "$MQTT_PORT" --count "$SIM_COUNT" \
        --prefix ma --regions oriental,souss,rabat </dev/null >"$DATA/simulator.log" 2>&1 &
    PIDS[simulator]=$!
    SIM_STATE="$SIM_COUNT simulated CACs ma-<region>-* (pid ${PIDS[simulator]}, log run-data/simulator.log; CAC_SIM_COUNT=N to change)"
    check_started simulator "${PIDS[simulator]}" "$DATA/simulator.log" 1 ||
        SIM_STATE="not running (see run-data/simulator.log)"
fi

# ------------------------------------------------------------------ kiosk (background)

S1_TOKEN="$("$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["stations"][0]["token"])' "$AGENT_TOML")"
# the citizen's apps (kiosk/desktop.py): as root, Chromium, Writer, Calc and the session
# folder run as the cac-citizen user in /var/lib/cac-citizen/home (recreated every session),
# Chromium with the station's policies (a private copy of /etc/chromium for it only); not as
# root, the same apps as this user with their folders in run-data/citizen, emptied after
# each session. Best under openbox with kiosk/citizen/openbox-rc.xml (the kiosk bar on top).
KIOSK_TOML="$DATA/kiosk.toml"
if [ "$(id -u)" -eq 0 ]; then
    id cac-citizen >/dev/null 2>&1 || useradd --system --user-group \
        --home-dir /var/lib/cac-citizen/home --no-create-home --shell /usr/sbin/nologin \
        --comment "CAC citizen session" cac-citizen
    CHROMIUM_ETC=/var/lib/cac-citizen/chromium-etc # readable by the citizen, outside run-data
    mkdir -p "$CHROMIUM_ETC/policies/managed"
    cp -f "$ROOT/images/overlay/etc/chromium/policies/managed/cac-citizen.json" \
        "$CHROMIUM_ETC/policies/managed/"
    if [ -f /etc/chromium/master_preferences ]; then cp -f /etc/chromium/master_preferences "$CHROMIUM_ETC/"; fi
    chmod 755 /var/lib/cac-citizen
    chmod -R a+rX "$CHROMIUM_ETC"
    cat >"$KIOSK_TOML" <<TOML
# written by scripts/run.sh
[desktop]
policy_dir = "$CHROMIUM_ETC"
TOML
else
    CIT="$DATA/citizen"
    cat >"$KIOSK_TOML" <<TOML
# written by scripts/run.sh (not root: the apps run as $(id -un), folders wiped per session)
[[apps]]
id = "browser"
name = "Web"
command = ["chromium", "--no-first-run", "--disable-sync", "--user-data-dir=$CIT/browser"]
wipe = ["$CIT/browser", "$CIT/Downloads"]

[[apps]]
id = "writer"
name = "Letter / CV (Writer)"
command = ["libreoffice", "-env:UserInstallation=file://$CIT/office", "--nologo", "--norestore", "--writer"]
wipe = ["$CIT/office"]

[[apps]]
id = "calc"
name = "Spreadsheet (Calc)"
command = ["libreoffice", "-env:UserInstallation=file://$CIT/office", "--nologo", "--norestore", "--calc"]
wipe = ["$CIT/office"]
TOML
fi
KIOSK_CMD=(cac-kiosk --agent "http://127.0.0.1:$HTTP_PORT" --station s1 --token "$S1_TOKEN"
    --config "$KIOSK_TOML")
if [ -n "${DISPLAY:-}" ]; then
    "${DETACH[@]}" "$V/cac-kiosk" "${KIOSK_CMD[@]:1}" </dev/null >"$DATA/kiosk-s1.log" 2>&1 &
    PIDS[kiosk]=$!
    KIOSK_STATE="station s1 on DISPLAY $DISPLAY (pid ${PIDS[kiosk]}, log run-data/kiosk-s1.log)"
    check_started kiosk "${PIDS[kiosk]}" "$DATA/kiosk-s1.log" 2 ||
        KIOSK_STATE="not running (see above and run-data/kiosk-s1.log)"
else
    KIOSK_STATE="not started (no DISPLAY); to start one: ${KIOSK_CMD[*]}"
fi

# ------------------------------------------------------------------ addresses

cat <<EOF

================================================================ CAC demo
 console        http://127.0.0.1:$HTTP_PORT/console/   (operator console, French/Arabic)
 agent API      http://127.0.0.1:$HTTP_PORT/api/v1   (pid ${PIDS[agent]})
 operator       $OPERATOR_STATE
                login: POST /api/v1/login {"name": "admin", "password": "..."}
 stations       $("$PY" -c '
import sys, tomllib
stations = tomllib.load(open(sys.argv[1], "rb"))["stations"]
print("\n                ".join("%s  token %s" % (s["id"], s["token"]) for s in stations))
' "$AGENT_TOML")
 broker         $BROKER_STATE
 hub            $HUB_STATE
                dashboard http://127.0.0.1:$HUB_PORT/  technician $TECH_STATE
                fleet API http://127.0.0.1:$HUB_PORT/api/v1/cacs   metrics http://127.0.0.1:$HUB_PORT/metrics
                API token $API_STATE
                e.g. curl -H "Authorization: Bearer \$(cat run-data/api-token)" http://127.0.0.1:$HUB_PORT/api/v1/cacs
 content        $CONTENT_STATE
 printing       $PRINT_STATE
 simulator      $SIM_STATE
 kiosk          $KIOSK_STATE
 data           run-data/ (agent.toml, hub.toml, agent/, logs); delete it to start over
 Ctrl-C stops everything started here.
=========================================================================

EOF

rc=0
wait "${PIDS[agent]}" || rc=$?
unset "PIDS[agent]"
say "cac-agent exited with status $rc"
exit "$rc"
