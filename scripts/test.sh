#!/usr/bin/env bash
# The project's one test command: setup, lint, type check, tests (real Kafka + Redis).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/test_stack.py -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n=== %s ===\n' "$*"; }

section "setup"
bash scripts/setup.sh

section "ruff"
.venv/bin/ruff check .

section "mypy"
.venv/bin/mypy

section "import directions"
.venv/bin/lint-imports --no-cache

section "pytest"
set +e
# The slowest tests and the reasons for skips, at the end of the log: what to trim when CI
# grows past its time (the aim is well under 45 min).
.venv/bin/pytest -q -p no:cacheprovider --durations=25 -rs "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "ERROR: pytest collected no tests; that counts as a failure" >&2
    exit 1
fi
exit "$rc"
