#!/usr/bin/env bash
# Installs the baseline: the newest Prefect 3.x in its own virtualenv, bench/.prefect-venv,
# kept apart from prefect_lite's environment so neither constrains the other's dependencies.
#
#   bash bench/setup_prefect.sh            # install if missing, else keep what is there
#   bash bench/setup_prefect.sh --upgrade  # move to the newest 3.x
#
# Prints the installed Prefect version either way.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON="${PYTHON:-python3}"
venv=".prefect-venv"
spec="prefect>=3,<4"
# Prefect 3.8.x declares no upper bound on FastAPI, and FastAPI >= 0.151 breaks its server
# (Body(min_items=...)); 3.9 pins <0.151 itself. Keep the baseline importable either way.
constraint="fastapi<0.151"

upgrade=false
case "${1:-}" in
    "") ;;
    --upgrade) upgrade=true ;;
    *)
        echo "usage: bash bench/setup_prefect.sh [--upgrade]" >&2
        exit 2
        ;;
esac

installed_version() {
    "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("prefect"))' \
        2>/dev/null
}

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'pass' 2>/dev/null; then
    echo "Creating bench/$venv with $("$PYTHON" --version)"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
fi

version="$(installed_version || true)"
if [[ "$version" == 3.* ]] && ! $upgrade; then
    echo "Prefect $version is already installed in bench/$venv (--upgrade for the newest 3.x)"
else
    echo "Installing $spec into bench/$venv ..."
    "$venv/bin/python" -m pip install -qq --disable-pip-version-check --upgrade "$spec" "$constraint"
    version="$(installed_version)"
fi

"$venv/bin/python" -c 'import prefect' # fails loudly if the install is unusable
echo "prefect $version ($("$venv/bin/python" --version))"
