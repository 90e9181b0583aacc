# Shared by .ci/quickstart (README's first command) and .ci/setup (the second one's setup); sourced.
# shellcheck shell=bash
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
t0=${t0:-$(($(date +%s%N) / 1000000))}

step() { printf '[%s %5.1fs] %s\n' "$(basename "$0")" "$(($(date +%s%N) / 1000000 - t0))e-3" "$*"; }

missing_packages() { # package...
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
    done
}

# apt-get install those of the packages not installed yet; APT_NO_RECOMMENDS=1: without Recommends.
install_packages() { # package...
    local missing
    missing=$(missing_packages "$@")
    [ -z "$missing" ] && return 0
    step "apt-get install $(echo $missing)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086  # word-splitting the package list is intended
    apt-get install -y -qq ${APT_NO_RECOMMENDS:+--no-install-recommends} $missing >/dev/null
}

# The interpreter to install into: `python` when pip may install into it (an active venv, pyenv, a
# python.org build; 3.11+), else a venv in .venv made from Debian's python3, whose own site-packages
# PEP 668 closes. Prints the interpreter's path.
pick_python() {
    if command -v python >/dev/null && python - 2>/dev/null <<'PY'; then
import os, sys, sysconfig
import pip  # noqa: F401  (pip must be there)
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if sys.version_info >= (3, 11) and (sys.prefix != sys.base_prefix or not managed) else 1)
PY
        command -v python
        return 0
    fi
    if [ ! -x "$root/.venv/bin/python" ]; then
        install_packages python3-venv >&2
        step "python3 -m venv .venv (no python on PATH that pip may install into)" >&2
        python3 -m venv "$root/.venv"
    fi
    echo "$root/.venv/bin/python"
}

# pip install "$root$2" into $1 unless the same interpreter already installed this checkout with
# this pyproject (stamp $3) and the modules $4... import from it.
install_python_package() { # python extras stamp module...
    local python=$1 extras=$2 stamp=$root/.infra/$3
    shift 3
    local key
    key="$("$python" -c 'import sys; print(sys.executable)') $root $extras $(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] \
        && (cd / && "$python" - "$root/" "$@" <<'PY') 2>/dev/null; then
import importlib, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
import pytest_madengine
sys.exit(not pytest_madengine.__file__.startswith(sys.argv[1]))  # another checkout's editable install
PY
        return 0
    fi
    step "pip install -e '.$extras' ($python)"
    "$python" -m pip install -q --root-user-action=ignore -e "$root$extras"
    mkdir -p "$(dirname "$stamp")"
    echo "$key" >"$stamp"
}
