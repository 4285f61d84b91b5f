#!/usr/bin/env bash
# Wall time of `ray up cluster-local.yaml`, of a search on that cluster and of `ray down`, as
# tests/test_ray_up.py measures them (an sshd on 127.0.0.1 in private namespaces; needs root):
#   bash bench/ray_up.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M') UTC"
for _ in $(seq "${1:-1}"); do
    IZF_REQUIRE_RAY_UP=1 .venv/bin/python -m pytest -q -s -p no:warnings tests/test_ray_up.py | grep -E "^ray up:|passed|failed"
done
