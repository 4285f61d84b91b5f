"""Noise-aware choice: --reevaluate-top K --reevaluate-seeds N retrains the K best configs with new seeds on
validation classes, chooses the best mean, tracks every retraining as a child run, survives Ctrl-C and resume.
(How the champion rule weighs such a version: tests/test_champion.py.)"""

import json
import signal
import subprocess

from conftest import newest_search
from test_lifecycle import RUN, TINY, outcome, runs_of, versions_of


def test_reevaluation_chooses_the_best_mean_and_survives_ctrl_c_and_resume(tmp_path):
    command = [*RUN, *TINY, "--num-samples", "3", "--max-concurrent", "2", "--max-steps", "200", "--eval-every",
               "100", "--reevaluate-top", "2", "--reevaluate-seeds", "2", "--name", "noise", "--seed", "4"]
    driver = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in driver.stdout:
        if line.startswith("re-evaluating the top 2 with 2 new seeds each (4 fits on validation classes)"):
            driver.send_signal(signal.SIGINT)
            break
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, err[-3000:]
    folder = newest_search(tmp_path / "ray_results" / "noise")
    record = json.loads((folder / "izf_search.json").read_text())
    assert record["status"] == "interrupted" and "final" not in record and len(record.get("reevaluations", {})) < 4
    (parent,), children = runs_of(tmp_path)
    assert parent.info.status == "KILLED" and all(c.info.status != "RUNNING" for c in children)
    assert versions_of(tmp_path) == []

    resumed = subprocess.run([*RUN, "--resume", "--name", "noise", "--json"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = outcome(resumed)
    record = json.loads((folder / "izf_search.json").read_text())
    single = {tid: t["last"]["best_h"] for tid, t in record["trials"].items()}
    again = done["reevaluation"]
    # The two best single-seed H were re-evaluated (trials of equal H are the product's to order: tiny trials tie
    # at H 0), and the single-seed choice was the best of them.
    assert sorted((single[t] for t in again), reverse=True) == sorted(single.values(), reverse=True)[:2]
    assert done["single_seed_choice"] in again and single[done["single_seed_choice"]] == max(single.values())
    assert all(a["n_seeds"] == 2 and len(a["h"]) == 2 and 0 <= a["mean_h"] <= 1 for a in again.values())
    assert again[done["chosen_trial"]]["mean_h"] == max(a["mean_h"] for a in again.values())
    assert done["val"]["mean_h"] == again[done["chosen_trial"]]["mean_h"]
    assert sorted(record["reevaluations"]) == sorted(f"{t}-seed{s}" for t in again for s in (5, 6))  # seed 4 + 1, 2

    (parent,), children = runs_of(tmp_path)
    assert parent.info.status == "FINISHED" and all(c.info.status == "FINISHED" for c in children)
    retrained = [c for c in children if c.data.tags.get("izf.role") == "reevaluation"]
    assert sorted(c.data.tags["izf.trial_id"] for c in retrained) == sorted(record["reevaluations"])  # once each
    assert {c.data.tags["reevaluation"] for c in retrained} == set(again)
    assert len(children) - len(retrained) == 3
    assert parent.data.metrics["val_mean_h"] == done["val"]["mean_h"]
    assert parent.data.metrics["val_std_h"] == again[done["chosen_trial"]]["std_h"]
    (version,) = versions_of(tmp_path)
    assert float(version.tags["val_h_mean"]) == done["val"]["mean_h"] and version.tags["val_h_seeds"] == "2"
