#!/usr/bin/env bash
# The test command: setup, then ruff, mypy and pytest (default suite: -m "not slow").
# Extra arguments go to pytest, e.g.  ./scripts/test.sh -m slow   or   ./scripts/test.sh -k tariff
# Exits with pytest's status; if pytest passed but ruff or mypy failed, exits 1.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
V="$ROOT/.venv/bin"

step() { printf '\n==> %s\n' "$*"; }

step "setup (scripts/setup.sh test)"
bash "$ROOT/scripts/setup.sh" test || exit $?

cd "$ROOT" || exit 1
export PATH="$V:$PATH" # tests start the console scripts (cac-agent, ...) by name

failed=()

step "ruff check ."
"$V/ruff" check . || failed+=("ruff")

step "mypy agent common wire hub provisioning kiosk"
"$V/mypy" agent common wire hub provisioning kiosk || failed+=("mypy")

pytest_cmd=("$V/pytest" -m "not slow" "$@")
if [ -z "${DISPLAY:-}" ]; then
    if command -v xvfb-run >/dev/null 2>&1 && command -v xauth >/dev/null 2>&1; then
        pytest_cmd=(xvfb-run -a -s "-screen 0 1280x800x24" "${pytest_cmd[@]}")
    else
        echo "test.sh: no DISPLAY and no xvfb-run/xauth: tests that need an X server will fail" >&2
    fi
fi

shown=""
for a in "${pytest_cmd[@]#"$V/"}"; do
    if [[ "$a" == *" "* || -z "$a" ]]; then shown+=" \"$a\""; else shown+=" $a"; fi
done
step "${shown# }"
"${pytest_cmd[@]}"
rc=$?

echo
if [ "$rc" -eq 5 ]; then
    echo "test.sh: FAILED: pytest collected no tests"
elif [ "$rc" -ne 0 ]; then
    echo "test.sh: FAILED: pytest exited $rc${failed:+; also failed: ${failed[*]}}"
elif [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: FAILED: ${failed[*]} (pytest passed)"
    rc=1
else
    echo "test.sh: OK (ruff, mypy, pytest)"
fi
exit "$rc"
