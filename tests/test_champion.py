"""The champion rule and the champion challenge (tracking.champion), on a real MLflow registry (sqlite).

The counterexamples are the review's (issue 21); each one fails on the rule before it (compare val_h_mean where
both versions have it, else val_h, in registration order). The challenges retrain real model files' configs."""

import dataclasses
import itertools
import signal
import subprocess
import sys

import pytest
import torch
from mlflow import MlflowClient

from izf.data import Benchmark, load_benchmark, make_split, synthetic, write_xlsa17
from izf.io import model_bytes
from izf.training import FitConfig, fit
from tracking import Tracker
from tracking import promote as promote_cli
from tracking.champion import CHALLENGE_SEED, Measure, challenge_split, promote
from tracking.model import CHAMPION, log_model, register
from tracking.retrain import local_retrainer


def _registry(tmp_path, name: str = "izf-rule") -> MlflowClient:
    client = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", name).client
    client.create_registered_model(name)
    return client


def _version(client: MlflowClient, name: str = "izf-rule", **tags: object) -> str:
    tags = {"data_checksum": "same", "split_seed": 0, **tags}
    return str(client.create_model_version(name, source="file:///nowhere",
                                           tags={k: str(v) for k, v in tags.items()}).version)


def _champion(client: MlflowClient, name: str = "izf-rule") -> str:
    return str(client.get_model_version_by_alias(name, CHAMPION).version)


def test_a_mean_over_new_seeds_beats_a_luckier_single_draw(tmp_path):
    """docs/benchmarks.md's winner's-curse search seed 3: the single-seed choice (val H 87.35, test H 79.20) against
    the noise-aware choice (test H 88.88), whose own single H is lower. The old rule kept the 79.20 model."""
    client = _registry(tmp_path)
    single = _version(client, val_h=0.8735)
    assert promote(client, "izf-rule", single).champion == single
    noise_aware = _version(client, val_h=0.8400, val_h_mean=0.8520, val_h_std=0.01, val_h_seeds=3)
    decision = promote(client, "izf-rule", noise_aware)
    assert decision.moved and _champion(client) == noise_aware
    assert "a mean over new seeds ranks above a single draw" in decision.why
    again = _version(client, val_h=0.90)  # a later, luckier single draw does not take it back either
    assert promote(client, "izf-rule", again).champion == noise_aware


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_rule_is_a_total_order_whatever_the_order_of_registration(tmp_path, order):
    """v1: val_h 0.55 / mean 0.40, v2: val_h 0.50, v3: val_h 0.45 / mean 0.45. The old rule's champion depended on
    the order (v3, or v1 when registered v3, v2, v1); the rule's is always v3's: the better mean."""
    tagsets = [{"val_h": 0.55, "val_h_mean": 0.40}, {"val_h": 0.50}, {"val_h": 0.45, "val_h_mean": 0.45}]
    client = _registry(tmp_path)
    versions = {}
    for i in order:
        versions[i] = _version(client, **tagsets[i])
        promote(client, "izf-rule", versions[i])
    assert _champion(client) == versions[2]
    # The order itself: means first (by value), then single draws; ties go to the older version.
    measures = sorted((Measure.of(client.get_model_version("izf-rule", v)) for v in versions.values()),
                      key=Measure.rank, reverse=True)
    assert [m.version for m in measures] == [versions[2], versions[0], versions[1]]


def test_another_validation_split_is_not_compared_by_the_rule(tmp_path):
    """A search with another --seed chose on other held-out images: its H is not comparable to the champion's,
    so without a challenge the alias stays (the old rule moved it to the higher number)."""
    client = _registry(tmp_path)
    first = _version(client, val_h=0.60, split_seed=0)
    promote(client, "izf-rule", first)
    other = _version(client, val_h=0.70, split_seed=1)
    decision = promote(client, "izf-rule", other)
    assert not decision.moved and _champion(client) == first
    assert "split seed 1" in decision.why and "split seed 0" in decision.why and "--challenge-seeds" in decision.why
    same = _version(client, val_h=0.65, split_seed=0)
    assert promote(client, "izf-rule", same).champion == same  # the same split, measured alike: the rule decides
    unknown = _version(client, val_h=0.99, split_seed="")  # registered before split seeds were recorded
    assert promote(client, "izf-rule", unknown).champion == same


def test_new_data_takes_the_alias_and_says_why(tmp_path):
    client = _registry(tmp_path)
    promote(client, "izf-rule", _version(client, val_h=0.90, data_checksum="aaaa"))
    worse = _version(client, val_h=0.50, data_checksum="bbbb")
    decision = promote(client, "izf-rule", worse)
    assert decision.champion == worse and _champion(client) == worse
    assert decision.why == (f"version {worse} is the champion: the data checksum bbbb differs from the champion's "
                            "(version 1, aaaa): the alias follows the newest data")


def test_challenge_split_is_shared_or_one_neither_chose_on():
    def measure(split_seed: int | None) -> Measure:
        return Measure("1", "same", split_seed, "single", 0.5, 1)

    assert challenge_split(measure(3), measure(3)) == 3
    assert challenge_split(measure(0), measure(1)) == 2
    assert challenge_split(measure(1), measure(2)) == 0
    assert challenge_split(measure(None), measure(0)) == 1


BENCH = synthetic(n_classes=16, n_unseen=4, images_per_class=20, feature_dim=24, attribute_dim=8, seed=3)
GOOD = {"depth": 2, "hidden": 32, "steps": 200, "eval_every": 0, "synthetic_per_class": 50}
BAD = {**GOOD, "lr": 1e-6, "mmd_weight": 0.0, "semantic_weight": 0.0}  # barely trained


def _model_version(client: MlflowClient, name: str, config: dict, bench: Benchmark = BENCH, **tags: object) -> str:
    """A real registered version: `config` trained on `bench`'s test protocol, logged as the search logs it (its
    artifacts beside the store, not in the current folder)."""
    split = make_split(bench, "test", seed=0)
    result = fit(split, FitConfig(**config, seed=0))
    tracker = Tracker(client.tracking_uri, name)
    run = client.create_run(tracker.experiment_id()).info.run_id
    uri = log_model(client, run, model_bytes(result, split), split.feature_dim)
    client.set_terminated(run)
    return register(client, name, uri, {"data_checksum": bench.checksum(), "split_seed": 0, "parent_run_id": run,
                                        **tags})


def test_a_challenge_moves_the_alias_only_when_the_challenger_wins(tmp_path):
    client = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "izf-challenge").client
    name, calls = "izf-challenge", []
    retrain_here = local_retrainer(BENCH, threads=1, device=torch.device("cpu"))

    def retrain(configs: list[dict], split_seed: int) -> list[float]:
        calls.append((len(configs), split_seed, sorted({c["seed"] for c in configs})))
        return retrain_here(configs, split_seed)

    # The champion: a barely trained config whose single H happened to be high.
    weak = _model_version(client, name, BAD, val_h=0.95)
    assert promote(client, name, weak, retrain=retrain, challenge_seeds=3).champion == weak and not calls
    # A challenger measured differently (a mean over new seeds, lower than the champion's single H): it wins.
    strong = _model_version(client, name, GOOD, val_h=0.50, val_h_mean=0.40, val_h_seeds=2)
    decision = promote(client, name, strong, retrain=retrain, challenge_seeds=3)
    assert calls == [(6, 0, [CHALLENGE_SEED, CHALLENGE_SEED + 1, CHALLENGE_SEED + 2])]
    assert decision.moved and _champion(client, name) == strong and "won its challenge" in decision.why
    tags = client.get_model_version(name, strong).tags
    assert tags["challenge.result"] == "won" and tags["challenge.champion"] == weak
    assert float(tags["challenge.mean_h"]) > float(tags["challenge.champion_mean_h"])
    assert tags["challenge.seeds"] == f"{CHALLENGE_SEED},{CHALLENGE_SEED + 1},{CHALLENGE_SEED + 2}"
    assert client.get_model_version(name, weak).tags[f"challenged_by.{strong}"].startswith("lost: ")
    parent = client.get_run(tags["parent_run_id"])
    assert parent.data.tags["izf.champion_decision"] == decision.why
    assert parent.data.metrics["challenge_mean_h"] == float(tags["challenge.mean_h"])
    # Deciding the winner again (it is the champion now): the same decision, kept on it; nothing retrained.
    again = promote(client, name, strong, retrain=retrain, challenge_seeds=3)
    assert again.why == decision.why and again.champion == strong and not again.moved and len(calls) == 1
    assert client.get_model_version(name, strong).tags["champion_decision"] == decision.why
    # A later version measured as the winner was, and below it, is told the champion stays, and why.
    below = _model_version(client, name, GOOD, val_h=0.45, val_h_mean=0.30, val_h_seeds=2)
    stays = promote(client, name, below, retrain=retrain, challenge_seeds=3)
    assert stays.why.startswith(f"the champion stays: version {strong}'s") and "best measured this way" in stays.why
    assert _champion(client, name) == strong and len(calls) == 1

    # A challenger the rule alone would have preferred (a mean, above the champion's mean): it loses.
    lucky = _model_version(client, name, BAD, val_h=0.99, val_h_mean=0.98, val_h_seeds=2, split_seed=0)
    promote(client, name, lucky, retrain=None)  # no challenge: the rule alone moves it...
    assert _champion(client, name) == lucky
    client.set_registered_model_alias(name, CHAMPION, strong)  # ...so put it back, and challenge
    bad_single = _model_version(client, name, BAD, val_h=0.97)
    decision = promote(client, name, bad_single, retrain=retrain, challenge_seeds=2)
    assert not decision.moved and _champion(client, name) == strong
    assert "lost its challenge against version" in decision.why
    assert client.get_model_version(name, bad_single).tags["challenge.result"] == "lost"
    assert client.get_model_version(name, strong).tags[f"challenged_by.{bad_single}"].startswith("kept: ")
    # The challenge's result is kept: deciding again (a resumed search, tracking.promote) retrains nothing.
    before = len(calls)
    assert promote(client, name, bad_single, retrain=retrain, challenge_seeds=2).why == decision.why
    assert len(calls) == before


def test_the_promote_cli_decides_a_challenge_with_the_local_data(tmp_path, capsys):
    """`python -m tracking.promote` runs a challenge here, on --data-root's files, and refuses other data."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = Tracker(uri, "izf-apy").client
    write_xlsa17(dataclasses.replace(BENCH, name="APY"), tmp_path / "data")
    bench = load_benchmark("apy", root=tmp_path / "data")
    champion = _model_version(client, "izf-apy", GOOD, val_h=0.5, data_checksum=bench.checksum())
    promote(client, "izf-apy", champion)
    challenger = _model_version(client, "izf-apy", GOOD, val_h=0.4, val_h_mean=0.45, val_h_seeds=2,
                                data_checksum=bench.checksum())
    run = client.get_model_version("izf-apy", challenger).tags["parent_run_id"]
    for key, value in (("seed", "0"), ("cpus_per_trial", "1.0")):
        client.log_param(run, key, value)
    flags = ["--dataset", "apy", "--mlflow-uri", uri, "--data-root"]
    assert promote_cli.main([*flags, str(tmp_path)]) == 1  # its main() in this process; the command itself below
    elsewhere = capsys.readouterr().err
    assert elsewhere.startswith("error: ") and "--data-root" in elsewhere and len(elsewhere.splitlines()) == 1
    assert _champion(client, "izf-apy") == champion
    done = subprocess.run([sys.executable, "-m", "tracking.promote", *flags, str(tmp_path / "data"),
                           "--challenge-seeds", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # The same config, the same fresh seeds: equal means, and a tie keeps the champion.
    tags = client.get_model_version("izf-apy", challenger).tags
    assert tags["challenge.mean_h"] == tags["challenge.champion_mean_h"] and tags["challenge.result"] == "lost"
    assert f"the champion stays: version {challenger} lost its challenge" in done.stdout
    assert done.stdout.rstrip().endswith(f"izf-apy@champion -> version {champion}")


def test_a_search_challenges_the_champion_on_ray_and_ctrl_c_leaves_it_undecided(tmp_path):
    """A noise-aware search (a mean over new seeds) against a single-seed champion on the same split: the CLI runs
    the challenge's fits on Ray. SIGINT during the challenge: the search stays finished and its version
    registered, the alias stays, and the console says how to decide; a --resume decides it."""
    from test_lifecycle import RUN, TINY, runs_of, versions_of

    small = [*TINY, "--num-samples", "1", "--max-steps", "80", "--eval-every", "40"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}")
    # Any first champion measured as the search measures (the built-in data, split seed 0, one draw), registered
    # here as a search registers it: the challenge retrains the config its model file holds.
    first = _model_version(client, "izf-synthetic", {**GOOD, "steps": 40}, bench=load_benchmark("synthetic"),
                           val_h=0.5)
    assert promote(client, "izf-synthetic", first).why == f"version {first} is the champion: the first champion"
    driver = subprocess.Popen([*RUN, *small, "--reevaluate-top", "1", "--reevaluate-seeds", "1"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in driver.stdout:
        if line.startswith("champion challenge: the new model's config and the champion's, 3 fresh seeds each"):
            driver.send_signal(signal.SIGINT)
            break
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, err[-3000:]
    assert ("interrupted (SIGINT): the search had finished and izf-synthetic version 2 is registered, but the "
            "champion was not decided (the alias stays where it was); decide it with python -m tracking.promote "
            "--dataset synthetic --version 2") in err
    parents, children = runs_of(tmp_path)
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in parents)
    assert all(r.info.status != "RUNNING" for r in children)
    assert len(versions_of(tmp_path)) == 2 and _champion(client, "izf-synthetic") == "1"
    assert "challenge.result" not in client.get_model_version("izf-synthetic", "2").tags

    resumed = subprocess.run([*RUN, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "champion challenge: the new model's config and the champion's" in resumed.stdout
    tags = client.get_model_version("izf-synthetic", "2").tags
    assert tags["challenge.champion"] == "1" and tags["challenge.split_seed"] == "0"
    decision = tags["champion_decision"]
    assert f"  {decision}" in resumed.stdout.splitlines()
    assert _champion(client, "izf-synthetic") == ("2" if tags["challenge.result"] == "won" else "1")
    assert client.get_run(tags["parent_run_id"]).data.tags["izf.champion_decision"] == decision
    # Deciding again by hand finds the challenge's result and retrains nothing.
    again = subprocess.run([sys.executable, "-m", "tracking.promote", "--dataset", "synthetic", "--version", "2",
                            "--mlflow-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and again.stdout.splitlines()[0] == decision and "challenge:" not in again.stdout
