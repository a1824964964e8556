#!/usr/bin/env bash
# Idempotent setup for development and CI; safe to run again and again.
#   - .venv (python3.11, or $PYTHON) with the package and its extras ($STREAMER_EXTRAS,
#     default dev,train: the tests and the first-run model build need torch, and dev
#     includes what the charts and devstack extras bring, matplotlib and cryptography, for
#     the tests), editable; reinstalled only when pyproject.toml or the extras changed. pip's cache:
#     $PIP_CACHE_DIR keeps torch's large download for the next run.
#   - redis-server, Java 17 and Maven via apt when missing (root or password-less sudo);
#     chromium and chromium-driver too (the dashboard test drives a real headless browser).
#   - the Kafka jars, fetched once into ~/.cache/streamer (Maven's repo: ~/.m2).
# Missing servers are only warned about here: tests skip locally and fail under CI=true.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3.11}"
EXTRAS="${STREAMER_EXTRAS:-dev,train}"
VENV=.venv
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

section() { printf '\n=== %s ===\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

apt_updated=0
apt_update() {
    as_root apt-get update -qq && apt_updated=1
}
# apt-get update only when there are no package lists yet, or an install fails on stale ones.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$apt_updated" = 0 ] && ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
        apt_update || return 1
    fi
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; then
        [ "$apt_updated" = 1 ] && return 1
        apt_update || return 1
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    fi
}

section "python environment ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        echo "ERROR: $PYTHON not found; install Python 3.11 or set PYTHON=/path/to/python3.1x" >&2
        exit 1
    fi
    "$PYTHON" -m venv "$VENV"
    echo "created $VENV with $("$VENV/bin/python" --version)"
else
    echo "using existing $VENV ($("$VENV/bin/python" --version))"
fi
stamp="$VENV/.streamer-setup.sha256"
want="$(cat pyproject.toml <(echo "$EXTRAS") | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] \
        || ! "$VENV/bin/python" -c 'import streamer, pytest' >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
    echo "$want" > "$stamp"
    echo "installed the package with [$EXTRAS] extras"
else
    echo "package up to date with pyproject.toml"
fi

section "redis-server"
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
    echo "found $(command -v redis-server || echo /usr/bin/redis-server)"
elif apt_install redis-server; then
    echo "installed redis-server"
else
    warn "redis-server missing and not installable here; run: sudo apt-get install -y redis-server"
fi

section "java + maven (local Kafka)"
java_ok() {
    command -v java >/dev/null 2>&1 || return 1
    local major
    major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
    [ -n "$major" ] && [ "$major" -ge 17 ]
}
if java_ok && command -v mvn >/dev/null 2>&1; then
    echo "found $(java -version 2>&1 | head -n1), $(mvn -v 2>/dev/null | head -n1 | sed 's/\x1b\[[0-9;]*m//g')"
elif apt_install openjdk-17-jre-headless maven; then
    echo "installed openjdk-17-jre-headless and maven"
else
    warn "need Java >= 17 and Maven for the local Kafka: sudo apt-get install -y openjdk-17-jre-headless maven"
fi

section "chromium + chromium-driver (dashboard test)"
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "found $(chromium --version 2>/dev/null | head -n1), $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
elif apt_install chromium chromium-driver; then
    echo "installed chromium and chromium-driver"
else
    warn "tests/test_dashboard.py needs Debian's browser: sudo apt-get install -y chromium chromium-driver"
fi

section "kafka jars"
SECONDS=0
if "$VENV/bin/python" -m streamer.devstack fetch; then
    echo "ready (${SECONDS}s)"
else
    warn "could not fetch the Kafka jars (see above); local-Kafka tests will skip or fail"
fi
