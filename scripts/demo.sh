#!/usr/bin/env bash
# The main job: set everything up (idempotent), then start the local Kafka + Redis,
# a worker, stream the demo market data and print the summary. Safe to run twice.
# Extra arguments go to `streamer run-demo` (see `streamer run-demo --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --require-data  # stops at once, with the fix, when the labelled data is missing
exec .venv/bin/streamer run-demo "$@"
