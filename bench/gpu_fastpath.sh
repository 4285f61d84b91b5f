#!/usr/bin/env bash
# The fast-path questions for a GPU machine, after bench/gpu.sh (stages capped at 7.5 minutes in all):
# TF32 (one full SUN-shaped trial with float32 matmuls in TF32: compare its seconds and val H with gpu.sh's trial),
# what a checkpoint costs beside the steps between reports (the default of --checkpoint-every), and whether
# torch.compile pays back its compile time (float32 and bfloat16 subnets).
#
#   bash bench/gpu_fastpath.sh [RESULTS_FILE]   # default: gpu-fastpath.jsonl; JSON lines
#
# Environment: TRIAL_STEPS (default 11000), PYTHON (default .venv/bin/python).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the project, also for a python it is not installed in
out=${1:-gpu-fastpath.jsonl}
python=${PYTHON:-.venv/bin/python}
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA GPU visible to torch; this check is for a GPU machine (set up .venv there first)" >&2
    exit 1
fi
: > "$out"
stage() {
    local limit=$1
    shift
    # Each script's last line is its JSON object; anything else it prints stays on stderr here.
    timeout "$limit" "$python" "$@" 2>/dev/null | tail -n 1 | "$python" -c \
        "import json, sys; print(json.dumps({'command': sys.argv[1], **json.loads(sys.stdin.read())}))" "$*" \
        2>/dev/null | tee -a "$out"
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        echo "{\"stage\": \"failed\", \"limit_s\": $limit, \"args\": \"$*\"}" | tee -a "$out"
    fi
}
stage 150 bench/gpu.py trial --tf32 --steps "${TRIAL_STEPS:-11000}"
stage 60 bench/checkpoint_cost.py
stage 120 bench/compile.py
stage 120 bench/compile.py --subnet-precision bfloat16
