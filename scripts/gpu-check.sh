#!/usr/bin/env bash
# The GPU check (issue 32): on a machine with a CUDA GPU and nothing else prepared, in one go
# and within 8 minutes (--budget-s), every step timed and its output in gpu-check.log:
#   1. setup: scripts/setup.sh with the gpu extra (onnxruntime-gpu) beside dev,train, and
#      onnxruntime-gpu made the onnxruntime that imports (the CPU package shares its folder);
#   2. environment: driver, CUDA, GPU, torch/onnxruntime/transformers versions;
#   3. bundle: the speed profile's bundle (every variant at the serving lengths, trained on
#      a few hundred rows), built once into the bundle cache and reused after;
#   4. streamer bench models: the PyTorch FP16 + CUDA graphs, ONNX Runtime CUDA FP16 and,
#      where onnxruntime has it, TensorRT rows (and the naive path, for its ratio);
#   5. the local stack (streamer stack up), unless KAFKA_BOOTSTRAP and REDIS_URL name servers;
#   6. one worker end to end (the FP16 teacher on ONNX Runtime CUDA): a warm-up, a
#      burst (throughput), a fixed load at half its rate (latency);
#   7. summary: figures.json (every figure), summary.md (tables, the GPU targets) and the
#      checks that the GPU rows and the worker ran on the GPU.
# --dry-run does every step for real on a CPU, small: no gpu extra (setup as the machine
# has it), the tiny profile, the CPU rows with few texts, a few seconds end to end. CI runs
# it (tests/test_gpu_check.py), so the script is known to work before a GPU is lent.
#
# Usage: bash scripts/gpu-check.sh [--dry-run] [--bundle DIR] [--budget-s SECONDS] [--verbose]
#   --bundle DIR   reuse this complete bundle instead of the cached or built one
#   --budget-s S   the time every step together may take [default: 480; --dry-run 420]
#   --verbose      each step's output on the terminal too, not only in gpu-check.log
# Environment: OUT (the results folder; default test-output/gpu-check-<mode>-<UTC time>),
# KAFKA_BOOTSTRAP and REDIS_URL (servers to use instead of the local stack),
# STREAMER_LABELLED_DATA_DIR (the labelled data: the build and the benchmark's texts),
# STREAMER_EXTRAS and PYTHON (as scripts/setup.sh reads them).
# Exit codes: 0 passed; 1 a step failed (one line on stderr says which and why); 2 usage.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"

MODE=gpu
BUNDLE=""
BUDGET_S=""
VERBOSE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) MODE=dry-run ;;
        --bundle) [ $# -ge 2 ] || { echo "gpu-check: --bundle needs a directory" >&2; exit 2; }
                  BUNDLE="$2"; shift ;;
        --bundle=*) BUNDLE="${1#*=}" ;;
        --budget-s) [ $# -ge 2 ] || { echo "gpu-check: --budget-s needs seconds" >&2; exit 2; }
                    BUDGET_S="$2"; shift ;;
        --budget-s=*) BUDGET_S="${1#*=}" ;;
        -v|--verbose) VERBOSE=1 ;;
        -h|--help) sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
                   exit 0 ;;
        *) echo "gpu-check: unknown argument $1 (bash scripts/gpu-check.sh --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$BUDGET_S" ]; then
    if [ "$MODE" = gpu ]; then BUDGET_S=480; else BUDGET_S=420; fi
fi
case "$BUDGET_S" in
    ''|*[!0-9]*) echo "gpu-check: --budget-s takes whole seconds, not '$BUDGET_S'" >&2; exit 2 ;;
esac

die() {  # one line on stderr, exit 1
    printf 'gpu-check: FAILED: %s\n' "$*" >&2
    exit 1
}

# Before anything is written or installed: what would stop the run later, and a CPU machine
# must not get the gpu extra.
if { [ -n "${KAFKA_BOOTSTRAP:-}" ] && [ -z "${REDIS_URL:-}" ]; } \
        || { [ -z "${KAFKA_BOOTSTRAP:-}" ] && [ -n "${REDIS_URL:-}" ]; }; then
    die "only one of KAFKA_BOOTSTRAP and REDIS_URL is set: set both to use your servers, or neither for the local stack"
fi
if [ -n "$BUNDLE" ] && [ ! -d "$BUNDLE" ]; then
    die "--bundle $BUNDLE is not a directory: give a built bundle, or leave --bundle out to build one"
fi
if [ "$MODE" = gpu ]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        die "no NVIDIA driver here (nvidia-smi not found): run this on a machine with a CUDA GPU, or use --dry-run on a CPU"
    fi
    if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
        die "nvidia-smi lists no GPU ($(nvidia-smi -L 2>&1 | head -n 1)): check the driver, or use --dry-run on a CPU"
    fi
fi

RESULTS="${OUT:-$REPO/test-output/gpu-check-$MODE-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
LOG="$RESULTS/gpu-check.log"
# A folder used before: this run's files only.
rm -rf "$RESULTS/models"
rm -f "$RESULTS"/{environment.json,e2e.json,figures.json,summary.md,worker.log,gpu-check.log}
PY="$REPO/.venv/bin/python"
STREAMER="$REPO/.venv/bin/streamer"

T0="$(date +%s)"
STEP=0
TOTAL=7
STEP_TIMES=()

last_line() {  # the last non-empty line of the log (the failed step's own error)
    grep -v '^[[:space:]]*$' "$LOG" 2>/dev/null | tail -n 1 | cut -c1-600
}

# run_step NAME COMMAND...: COMMAND within what is left of the budget, its output in the log.
# SIGINT at the deadline, so Python steps stop their worker on the way out.
run_step() {
    local name="$1" start took left rc=0
    shift
    STEP=$((STEP + 1))
    left=$(( BUDGET_S - ($(date +%s) - T0) ))
    if [ "$left" -lt 5 ]; then
        die "the ${BUDGET_S} s budget was spent before step '$name' (--budget-s gives more); log: $LOG"
    fi
    printf '[%d/%d] %s\n' "$STEP" "$TOTAL" "$name"
    printf '\n=== [%d/%d] %s: %s (%d s left of the budget) ===\n' \
        "$STEP" "$TOTAL" "$name" "$*" "$left" >>"$LOG"
    start="$(date +%s)"
    if [ "$VERBOSE" = 1 ]; then
        timeout -s INT -k 30 "$left" "$@" 2>&1 | tee -a "$LOG" || rc=$?
    else
        timeout -s INT -k 30 "$left" "$@" >>"$LOG" 2>&1 || rc=$?
    fi
    took=$(( $(date +%s) - start ))
    STEP_TIMES+=(--step "$name=$took")
    if [ "$rc" -ne 0 ]; then
        if [ "$name" = summary ] && [ -f "$RESULTS/summary.md" ]; then
            cat "$RESULTS/summary.md"
        fi
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            die "step '$name' ran past the ${BUDGET_S} s budget after ${took} s (--budget-s gives more); log: $LOG"
        fi
        die "step '$name' (exit $rc after ${took} s): $(last_line); log: $LOG"
    fi
    printf '      done in %d s\n' "$took"
}

skip_step() {  # skip_step NAME WHY: a step with nothing to do, said and counted
    STEP=$((STEP + 1))
    STEP_TIMES+=(--step "$1=0")
    printf '[%d/%d] %s: %s\n' "$STEP" "$TOTAL" "$1" "$2"
    printf '\n=== [%d/%d] %s: %s ===\n' "$STEP" "$TOTAL" "$1" "$2" >>"$LOG"
}

# onnxruntime and onnxruntime-gpu install into one folder, onnxruntime/: the package pip
# wrote last is the one that imports. The gpu extra needs the GPU one.
ort_gpu() {
    local py="$1" mode="$2" version
    has_cuda() {
        "$py" -c 'import sys, onnxruntime as o; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())'
    }
    "$py" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, "providers:", ", ".join(o.get_available_providers()))'
    if [ "$mode" = dry-run ]; then
        echo "dry run: the gpu extra (onnxruntime-gpu) is not installed on a CPU machine"
        return 0
    fi
    has_cuda && return 0
    version="$("$py" -m pip show onnxruntime-gpu 2>/dev/null | sed -n 's/^Version: //p')"
    if [ -z "$version" ]; then
        echo "error: onnxruntime-gpu is not installed: the gpu extra did not install (see above)"
        return 1
    fi
    echo "the CPU onnxruntime shadows onnxruntime-gpu $version: reinstalling onnxruntime-gpu alone"
    "$py" -m pip uninstall -y onnxruntime onnxruntime-gpu
    "$py" -m pip install --no-deps "onnxruntime-gpu==$version"
    if ! has_cuda; then
        echo "error: onnxruntime-gpu $version still lists no CUDA provider"
        return 1
    fi
}

echo "gpu-check ($MODE): results in $RESULTS, log $LOG, budget ${BUDGET_S} s"
: >"$LOG"

if [ "$MODE" = gpu ]; then
    if [ -z "${PYTHON:-}" ]; then  # setup.sh asks for python3.11; a GPU image may have 3.12
        for candidate in python3.11 python3.12; do
            if command -v "$candidate" >/dev/null 2>&1; then
                export PYTHON="$candidate"
                break
            fi
        done
    fi
    EXTRAS="${STREAMER_EXTRAS:-dev,train}"
    case ",$EXTRAS," in
        *,gpu,*) ;;
        *) EXTRAS="$EXTRAS,gpu" ;;
    esac
    run_step setup env STREAMER_EXTRAS="$EXTRAS" bash scripts/setup.sh --require-data
else
    # The machine's own extras: a CPU machine does not get onnxruntime-gpu.
    run_step setup bash scripts/setup.sh --require-data
fi
printf '\n=== onnxruntime ===\n' >>"$LOG"
ort_gpu "$PY" "$MODE" >>"$LOG" 2>&1 || die "setup: $(last_line); log: $LOG"

if [ "$MODE" = gpu ]; then
    # onnxruntime-gpu loads CUDA and cuDNN by name; torch's wheels bring them as nvidia-*
    # packages, whose folders are not on the loader's path.
    NV_LIBS="$("$PY" -c 'import glob, os, sysconfig; print(":".join(sorted(glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "*", "lib")))))')"
    if [ -n "$NV_LIBS" ]; then
        export LD_LIBRARY_PATH="$NV_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
fi

run_step environment "$PY" -m streamer.bench.gpu_check env --mode "$MODE" \
    --out "$RESULTS/environment.json"

if [ "$MODE" = gpu ]; then PROFILE=speed; THREADS="$(nproc)"; else PROFILE=tiny; THREADS=2; fi
complete() {
    "$PY" -c 'import sys; from pathlib import Path; from streamer.bundle.locate import is_complete_bundle; sys.exit(not is_complete_bundle(Path(sys.argv[1])))' "$1"
}
if [ -n "$BUNDLE" ]; then
    BUNDLE="$(cd "$BUNDLE" && pwd)"
    complete "$BUNDLE" || die "--bundle $BUNDLE is not a complete bundle (no BUILD_COMPLETE, or its manifest does not load): build one with 'streamer models build --profile $PROFILE --out DIR', or leave --bundle out"
    skip_step bundle "reusing $BUNDLE (--bundle)"
else
    BUNDLE="$("$PY" -c 'from streamer.settings import get_settings; print(get_settings().paths.bundles)')/$PROFILE"
    if complete "$BUNDLE"; then
        skip_step bundle "reusing the $PROFILE profile's bundle, $BUNDLE"
    else
        run_step bundle "$STREAMER" models build --profile "$PROFILE" --out "$BUNDLE" \
            --threads "$THREADS" --quiet
    fi
fi

if [ "$MODE" = gpu ]; then
    # The GPU rows, and the naive path for their ratio; the CPU rows are CPU figures.
    run_step "bench models" "$STREAMER" bench models --bundle "$BUNDLE" --out "$RESULTS/models" \
        --no-cpu --texts 1024 --naive-texts 128 --rounds 3
else
    run_step "bench models" "$STREAMER" bench models --bundle "$BUNDLE" --out "$RESULTS/models" \
        --texts 64 --naive-texts 8 --batches 1,8,32 --rounds 1
fi

if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
    skip_step stack "using the servers in KAFKA_BOOTSTRAP ($KAFKA_BOOTSTRAP) and REDIS_URL"
else
    run_step stack "$STREAMER" stack up
fi

if [ "$MODE" = gpu ]; then
    # The teacher in FP16 on ONNX Runtime CUDA: the architecture the model rows measure.
    run_step "end to end" "$PY" -m streamer.bench.gpu_check e2e --bundle "$BUNDLE" \
        --out "$RESULTS/e2e.json" --variant teacher-fp16 --warmup 2000 --burst-s 8 \
        --max-burst 100000 --hold-s 20
else
    run_step "end to end" "$PY" -m streamer.bench.gpu_check e2e --bundle "$BUNDLE" \
        --out "$RESULTS/e2e.json" --warmup 100 --burst-s 2 --hold-s 3
fi

WALL=$(( $(date +%s) - T0 ))
run_step summary "$PY" -m streamer.bench.gpu_check summary --results "$RESULTS" \
    --mode "$MODE" --wall-s "$WALL" "${STEP_TIMES[@]}"
cat "$RESULTS/summary.md"
echo
echo "gpu-check ($MODE): passed in $(( $(date +%s) - T0 )) s (budget ${BUDGET_S} s); results in $RESULTS:"
(cd "$RESULTS" && find . -type f | sort | sed 's|^\./|  |')
