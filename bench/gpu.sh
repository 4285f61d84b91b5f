#!/usr/bin/env bash
# One-command GPU check on a machine with one GPU (stages capped at 7.75 minutes in all): training steps that never wait
# for the GPU (a test under torch.cuda.set_sync_debug_mode("error")), one full SUN-shaped trial's time and peak memory,
# then 1, 4 and 8 trials packed on the GPU (gpus-per-trial 1, 0.25, 0.125): trials/hour.
#
#   bash bench/gpu.sh [RESULTS_FILE]        # default: gpu-results.jsonl; JSON lines, the last one a summary
#
# Environment: TRIAL_STEPS (default 11000, FitConfig's full trial), PACK_STEPS (default 2000 per packed trial),
# SUBNET_PRECISION (float32, the default, or bfloat16), PYTHON (default .venv/bin/python).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the project, also for a python it is not installed in
out=${1:-gpu-results.jsonl}
python=${PYTHON:-.venv/bin/python}
trial_steps=${TRIAL_STEPS:-11000}
pack_steps=${PACK_STEPS:-2000}
precision=${SUBNET_PRECISION:-float32}
if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA GPU visible to torch; this check is for a GPU machine (set up .venv there first)" >&2
    exit 1
fi
: > "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    | "$python" -c "import json, sys; print(json.dumps({'stage': 'gpu', 'nvidia_smi': sys.stdin.read().strip()}))" \
    | tee -a "$out"
# Stage limits add up to 7.75 minutes: a stage that fails or runs over is recorded as failed and the check goes on.
stage() {
    local limit=$1
    shift
    # Tune prints its own tables to stdout: keep only the stage's JSON line.
    timeout "$limit" "$python" bench/gpu.py "$@" --subnet-precision "$precision" | grep '^{"stage"' | tee -a "$out"
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        echo "{\"stage\": \"failed\", \"limit_s\": $limit, \"args\": \"$*\"}" | tee -a "$out"
    fi
}
timeout 45 "$python" -m pytest -q -p no:cacheprovider tests/test_training.py -k never_wait_for_the_gpu > /dev/null 2>&1
sync_status=$?
echo "{\"stage\": \"no_host_sync\", \"passed\": $([ $sync_status -eq 0 ] && echo true || echo false)}" | tee -a "$out"
stage 150 trial --steps "$trial_steps"
for k in 1 4 8; do
    stage 90 pack --per-gpu "$k" --trials $((2 * k)) --steps "$pack_steps"
done
"$python" - "$out" <<'PY' | tee -a "$out"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
trial = next((r for r in rows if r["stage"] == "trial"), {})
pack = {r["per_gpu"]: r["trials_per_hour"] for r in rows if r["stage"] == "pack"}
ratio = round(pack[8] / pack[1], 2) if 1 in pack and 8 in pack else None
print(json.dumps({"stage": "summary", "one_trial_s": trial.get("seconds"), "peak_gpu_mb": trial.get("peak_gpu_mb"),
                  "trials_per_hour": pack, "packed8_vs_1": ratio,
                  "no_host_sync": next((r["passed"] for r in rows if r["stage"] == "no_host_sync"), None),
                  "goals": {"one_trial_le_30s": trial.get("seconds", 1e9) <= 30,
                            "packed8_ge_5x": ratio is not None and ratio >= 5},
                  "failed_stages": [r["args"] for r in rows if r["stage"] == "failed"]}))
PY
