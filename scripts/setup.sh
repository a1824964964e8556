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
#   - first of all, the labelled data (the model build's input): `--require-data`
#     (scripts/demo.sh) stops here at once when it is missing, with where it must be;
#     without it (scripts/test.sh) a warning.
# Missing servers are only warned about here: tests skip locally and fail under CI=true.
# Each step says what it does, its size and how long it took; pip shows its own progress.
# Exit codes: 0 ready; 66 labelled data missing (--require-data); 1 anything else.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REQUIRE_DATA=0
for arg in "$@"; do
    case "$arg" in
        --require-data) REQUIRE_DATA=1 ;;
        *) echo "ERROR: unknown argument $arg (scripts/setup.sh takes --require-data)" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3.11}"
EXTRAS="${STREAMER_EXTRAS:-dev,train}"
VENV=.venv
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

started="$(date +%s)"
elapsed() { local s=$(( $(date +%s) - started )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
section() { printf '\n=== %s ===  (setup at %s)\n' "$*" "$(elapsed)"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
size_of() { local s; s="$(du -sh "$1" 2>/dev/null | cut -f1)"; echo "${s:-size unknown}"; }

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

section "labelled data (the model build's input)"
# Checked before anything slow: without it the model build would fail after the install.
# The same lookup as the app: $STREAMER_LABELLED_DATA_DIR, else .env, else ../shared/data.
DATA_DIR="${STREAMER_LABELLED_DATA_DIR:-}"
if [ -z "$DATA_DIR" ] && [ -f .env ]; then
    DATA_DIR="$(sed -n 's/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}STREAMER_LABELLED_DATA_DIR=//p' .env \
        | tail -n1 | tr -d "\"'")"
fi
DATA_DIR="${DATA_DIR:-$(cd .. && pwd)/shared/data}"
missing_data=()
for name in tfn-sentiment phrasebank tfn-topic reuters-topics; do
    [ -f "$DATA_DIR/$name/train.csv" ] || missing_data+=("$name/train.csv")
done
if [ "${#missing_data[@]}" -eq 0 ]; then
    echo "found in $DATA_DIR ($(size_of "$DATA_DIR"))"
else
    msg="no labelled data at $DATA_DIR (missing: ${missing_data[*]}); the model build needs tfn-sentiment/, phrasebank/, tfn-topic/ and reuters-topics/, each with a train.csv ('text,label'): put the shared data there, or set STREAMER_LABELLED_DATA_DIR (in the environment or .env) to the folder that holds it"
    if [ "$REQUIRE_DATA" = 1 ]; then
        echo "ERROR: $msg" >&2
        exit 66
    fi
    warn "$msg (the tests that need it skip, or fail under CI=true)"
fi

first_run=0
[ -x "$VENV/bin/python" ] || first_run=1
if [ "$first_run" = 1 ]; then
    echo
    echo "First run on this machine: about 15 minutes on 2 cores. Python packages take about"
    echo "6 of them (about 3 GB to download, mostly torch and its CUDA libraries; about 6 GB"
    echo "installed in $VENV; pip's cache, $PIP_CACHE_DIR, keeps the downloads), the Kafka"
    echo "jars about 1 (55 MB via Maven), and the demo's first model build 5 to 10. Later runs"
    echo "reuse all of it and take seconds."
fi

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
    echo "installing the package with [$EXTRAS] extras (pip's progress follows; the first"
    echo "time about 3 GB to download and about 6 minutes, then a minute or two unpacking)"
    pip_start="$(date +%s)"
    "$VENV/bin/python" -m pip install --progress-bar on -e ".[$EXTRAS]"
    echo "$want" > "$stamp"
    echo "installed the package with [$EXTRAS] extras in $(( $(date +%s) - pip_start ))s ($VENV: $(size_of "$VENV"))"
else
    echo "package up to date with pyproject.toml"
fi
# The Quix Streams peer of `streamer bench pipeline` (and its test) in a folder of its own:
# its pins would move pydantic and confluent-kafka in the venv below what users get.
if [[ ",$EXTRAS," == *",dev,"* ]]; then
    quix="$("$VENV/bin/python" -c 'from streamer.bench.peer import QUIX_PIN; print(QUIX_PIN)')"
    if [ -d "$VENV-peer/quixstreams-$quix.dist-info" ]; then
        echo "Quix Streams $quix found in $VENV-peer"
    else
        rm -rf "$VENV-peer"
        "$VENV/bin/python" -m pip install -q --target "$VENV-peer" "quixstreams==$quix"
        echo "installed Quix Streams $quix in $VENV-peer ($(size_of "$VENV-peer"))"
    fi
fi

section "redis-server, prometheus, docker-compose (promtool: tests/test_prometheus.py; compose config: tests/test_compose.py)"
if { command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; } \
        && [ -x /usr/bin/promtool ] && command -v docker-compose >/dev/null 2>&1; then
    echo "found $(command -v redis-server || echo /usr/bin/redis-server), /usr/bin/promtool, $(command -v docker-compose)"
elif apt_install redis-server prometheus docker-compose; then
    echo "installed redis-server, prometheus and docker-compose (tests/test_compose.py: config only)"
else
    warn "redis-server, prometheus or docker-compose missing and not installable here; run: sudo apt-get install -y redis-server prometheus docker-compose"
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
    echo "ready (${SECONDS}s; $(size_of "$HOME/.cache/streamer/kafka"))"
else
    warn "could not fetch the Kafka jars (see above); local-Kafka tests will skip or fail"
fi

echo
echo "setup done in $(elapsed)"
