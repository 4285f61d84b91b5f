"""`python -m tracking.reproduce`: a champion retrained from what MLflow holds gives the registered test numbers,
bit for bit on the CPU; other data or other code is refused with one error line."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from izf.data import synthetic, write_res101, write_xlsa17
from tracking.tracker import git_commit

ROOT = Path(__file__).resolve().parents[1]


def _reproduce(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracking.reproduce", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def _clean_checkout() -> bool:
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
    return git_commit() != "unknown" and not changed


def test_a_champion_is_reproduced_exactly_and_other_data_or_code_is_refused(tmp_path):
    bench = synthetic(n_classes=16, n_unseen=4, images_per_class=20, feature_dim=24, attribute_dim=8, seed=3)
    folder = write_xlsa17(dataclasses.replace(bench, name="APY"), tmp_path / "data")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    search = subprocess.run(
        [sys.executable, str(ROOT / "search" / "run.py"), "--dataset", "apy", "--data-root", str(tmp_path / "data"),
         "--num-samples", "2", "--max-steps", "40", "--eval-every", "20", "--final-seeds", "2",
         "--cpus-per-trial", "2", "--mlflow-uri", uri, "--storage-path", str(tmp_path / "rr")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    model = ["models:/izf-apy@champion", "--data-root", str(tmp_path / "data"), "--mlflow-uri", uri]

    if _clean_checkout():
        done = _reproduce(*model)
    else:  # a working tree with changes: the strict check refuses, as it must, and the flag retrains anyway
        refused = _reproduce(*model)
        assert refused.returncode == 1 and refused.stderr.startswith("error: "), refused.stderr
        done = _reproduce(*model, "--allow-code-change")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "retrained 2 seeds on the test protocol (cpu, 2 threads)" in done.stdout
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("test ")]
    assert {r[1] for r in rows} >= {"softmax_u", "softmax_s", "softmax_h", "nbc_h"}
    assert all(r[2] == r[3] and float(r[4]) == 0 for r in rows), done.stdout  # identical, not merely close
    assert done.stdout.rstrip().endswith("reproduced: identical")

    if git_commit() != "unknown":  # the same model, reproduced by code one commit further on
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m",
                        "later"], cwd=clone, check=True)
        later = _reproduce(*model, cwd=clone, env={**os.environ, "PYTHONPATH": str(clone)})
        assert later.returncode == 1 and later.stdout == "", later.stdout + later.stderr
        assert later.stderr.startswith("error: the code is at commit ") and "--allow-code-change" in later.stderr
        assert len(later.stderr.strip().splitlines()) == 1

    write_res101(folder / "res101.mat", bench.features + 0.01, bench.labels)  # one feature file changed
    other_data = _reproduce(*model)
    assert other_data.returncode == 1 and other_data.stderr.startswith("error: the data differ from the search's")
    assert "--data-root" in other_data.stderr
