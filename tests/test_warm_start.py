"""--warm-start: an earlier search's best points, fitted into this dataset's ranges, are the first trials, and
the sampler's study holds them as its first trials."""

import dataclasses
import json
import subprocess

import optuna
import pytest
from conftest import newest_search
from test_lifecycle import TINY, cli, outcome

from izf.errors import ConfigError
from izf.presets import preset
from izf.training import FitConfig
from record.study import open_storage
from search.cli import main
from search.options import SearchOptions
from search.preparing.sampling import make_sampler
from search.preparing.space import Dims, base_point, bind, space
from search.preparing.warm import SOURCE_ATTRIBUTES, fitted_points, parse_param, study_points, warm_start_points
from tracking import Tracker

SYNTHETIC, TOY = Dims(features=128, attributes=24), Dims(features=4, attributes=2)


def base_of(dataset: str, dims: Dims) -> dict:
    return base_point(space, dims, dataclasses.asdict(FitConfig.from_dict(preset(dataset))))


def a_point(**changes: object) -> dict:
    point = {"depth": 4, "hidden_scale": 0.5, "use_mmd": True, "mmd_weight": 0.05, "mmd_scale": "median",
             "latent_split": 30, "lr": 1e-3, "semantic_weight": 5.0, "use_centralizing": False, "temperature": 0.5,
             "batch_size": 256, "synthetic_per_class": 100}
    return {**point, **changes}


def test_a_point_of_the_same_space_stays_as_it_is_and_duplicates_go():
    base = base_of("synthetic", SYNTHETIC)
    point = a_point()
    assert fitted_points(space, SYNTHETIC, [point, dict(point)], base, {}) == [point]


def test_a_point_from_another_dataset_is_clipped_into_this_ones_ranges():
    base = base_of("toy", TOY)
    (fitted,) = fitted_points(space, TOY, [a_point(latent_split=300, lr=1.0, depth=40)], base, {})
    assert fitted["latent_split"] == 3 and fitted["lr"] == 3e-3 and fitted["depth"] == 10  # the ranges' tops
    assert fitted["mmd_weight"] == 0.05 and fitted["temperature"] == 0.5  # within range: unchanged


def test_questions_the_earlier_point_has_no_answer_for_take_the_base_points():
    base = base_of("synthetic", SYNTHETIC)
    older = {k: v for k, v in a_point().items() if k not in ("mmd_scale", "synthetic_per_class")}
    (fitted,) = fitted_points(space, SYNTHETIC, [older], base, {})
    assert fitted["synthetic_per_class"] == base["synthetic_per_class"]
    assert fitted["mmd_scale"] == base.get("mmd_scale", "fixed")
    # A choice that is no longer offered: the nearest numeric one; --fix wins over the earlier point.
    (fitted,) = fitted_points(space, SYNTHETIC, [a_point(batch_size=300)], base, {"depth": 7})
    assert fitted["batch_size"] == 256 and fitted["depth"] == 7


def test_latent_split_keeps_its_share_of_the_attributes_and_a_zero_mmd_weight_stays_off():
    """24 attributes (synthetic) to 102 (SUN-like): clipping alone made every point 51, the range's bottom."""
    sun_like = Dims(features=2048, attributes=102)
    base = base_of("synthetic", sun_like)
    points = [a_point(latent_split=n, **{SOURCE_ATTRIBUTES: 24}) for n in (12, 24, 36)]
    assert [p["latent_split"] for p in fitted_points(space, sun_like, points, base, {})] == [51, 102, 153]
    # Without the source's dimension (an Optuna storage URL alone): clipped into the range, as before.
    (clipped,) = fitted_points(space, sun_like, [a_point(latent_split=12)], base, {})
    assert clipped["latent_split"] == 51
    # An MMD weight of 0 from a space without the use_mmd switch is the ablation: the MMD stays off.
    older = {k: v for k, v in a_point(mmd_weight=0.0).items() if k != "use_mmd"}
    (fitted,) = fitted_points(space, SYNTHETIC, [older], base_of("synthetic", SYNTHETIC), {})
    assert fitted["use_mmd"] is False and "mmd_weight" not in fitted


def test_a_warm_started_sampler_does_not_draw_its_sources_random_start_again():
    """With the source's seed, the sampler's first random draw after one warm point was the source's first random
    trial: the warm point itself, run twice. The warm search's sampler seed is moved off the source's."""
    base = base_of("synthetic", SYNTHETIC)
    bound = bind(space, SYNTHETIC)

    def asked(seed: int, first: list[dict], n: int) -> list[dict]:
        study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed, 12, {}))
        for point in first:
            study.enqueue_trial(point)
        out = []
        for i in range(n):
            trial = study.ask()
            bound(trial)
            study.tell(trial, i / n)
            out.append(trial.params)
        return out

    source = asked(SearchOptions().sampler_stream, [base], 4)
    warm_points = [source[1]]  # a random start-up point of the source, say its best
    warm = SearchOptions(warm_start_points=warm_points)
    assert warm.sampler_stream != SearchOptions().sampler_stream
    assert source[1] in asked(SearchOptions().sampler_stream, [*warm_points, base], 3)[2:]  # the waste, unmoved
    assert not any(p in source for p in asked(warm.sampler_stream, [*warm_points, base], 5)[2:])
    assert SearchOptions(warm_start_points=warm_points, sampler_seed=0).sampler_stream == 0  # asked for: kept


def test_switching_a_branch_off_drops_its_parameters():
    base = base_of("synthetic", SYNTHETIC)
    (fitted,) = fitted_points(space, SYNTHETIC, [a_point(use_mmd=False)], base, {})
    assert fitted["use_mmd"] is False and "mmd_weight" not in fitted and "mmd_scale" not in fitted


def test_mlflow_params_read_back_as_values():
    assert [parse_param(t) for t in ("5", "0.25", "True", "False", "median", "1e-05")] == \
        [5, 0.25, True, False, "median", 1e-05]


def test_study_points_are_the_best_finished_trials_first(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="earlier", storage=url, direction="maximize")
    depth = {"depth": optuna.distributions.IntDistribution(1, 10)}
    for d, value in ((1, 0.2), (2, 0.9), (3, None), (4, 0.5)):
        state = optuna.trial.TrialState.FAIL if value is None else optuna.trial.TrialState.COMPLETE
        study.add_trial(optuna.trial.create_trial(params={"depth": d}, distributions=depth, value=value, state=state))
    assert study_points(url, 2) == [{"depth": 2}, {"depth": 4}]
    optuna.create_study(study_name="another", storage=url)
    with pytest.raises(ConfigError, match="holds 2 studies .* name one as"):
        study_points(url, 2)
    assert len(study_points(f"{url}#earlier", 5)) == 3
    with pytest.raises(ConfigError, match="no study 'nope' there"):
        study_points(f"{url}#nope", 2)


def test_warm_start_from_an_mlflow_experiment_onto_another_dataset(tmp_path, local_ray, monkeypatch, capsys):
    """Both searches are the command's main() in this process, on the module's Ray (the refusals below run the
    command itself)."""
    monkeypatch.chdir(tmp_path)

    def command(*args: str) -> subprocess.CompletedProcess:
        code = main(list(args))
        return subprocess.CompletedProcess(args, code, *capsys.readouterr())

    one_at_a_time = ["--max-concurrent", "1"]  # one Ray worker for both trials (a worker's imports: ~3 CPU-seconds)
    earlier = command(*TINY, "--num-samples", "2", *one_at_a_time, "--max-steps", "40", "--eval-every", "40", "--json")
    assert earlier.returncode == 0, earlier.stderr[-3000:]
    folder = newest_search(tmp_path / "ray_results" / "izf-synthetic")
    trials = json.loads((folder / "izf_search.json").read_text())["trials"].values()
    ranked = [t["sampled"] for t in sorted(trials, key=lambda t: t["last"]["best_h"], reverse=True)]
    # The earlier search's own study, through its folder: its two best points (the sampled values; a trial's
    # config also holds what the space returned, e.g. hidden).
    best = warm_start_points(str(folder), 2, from_mlflow=None)  # a folder: MLflow is not read
    assert all(p.pop(SOURCE_ATTRIBUTES) == 24 for p in best)  # synthetic's attributes, from the folder's record
    assert [{k: r[k] for k in p} for p, r in zip(best, ranked, strict=False)] == best and len(best) == 2

    warm = command("--dataset", "toy", "--warm-start", "izf-synthetic", "--warm-start-top", "2",
                   "--num-samples", "2", *one_at_a_time, "--max-steps", "40", "--eval-every", "40",
                   "--scheduler", "none", "--json")
    assert warm.returncode == 0, warm.stderr[-3000:]
    record = json.loads((newest_search(tmp_path / "ray_results" / "izf-toy") / "izf_search.json").read_text())
    assert record["description"]["warm_start"] == "izf-synthetic" and record["description"]["warm_start_points"] == 2
    # The sampler was told: its study's first two trials are those points, latent_split clipped into toy's
    # range (1..3; it was 12..48 on synthetic), with their results on toy.
    study = optuna.load_study(study_name="izf-toy", storage=open_storage(record["description"]["study"]["storage"]))
    first = [t.params for t in study.trials[:2]]
    assert all(p["latent_split"] <= 3 for p in first)
    assert sorted(map(str, (_without(p, "latent_split") for p in first))) == \
        sorted(map(str, (_without(p, "latent_split") for p in best)))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials[:2])
    assert outcome(warm)["n_trials"] == 2


def test_a_warm_start_with_nothing_to_start_from_is_one_error_line(tmp_path, monkeypatch, capsys):
    """The first refusal is the command itself; the others its main() in this process (the same code, without a
    Python start-up each)."""
    empty = tmp_path / "empty.db"
    optuna.storages.RDBStorage(f"sqlite:///{empty}")  # a storage with its tables and no study
    monkeypatch.chdir(tmp_path)

    def refused(source: str, command: bool = False) -> str:
        if command:
            done = cli(tmp_path, "--warm-start", source)
            code, err = done.returncode, done.stderr
        else:
            code, err = main(["--warm-start", source]), capsys.readouterr().err
        assert code == 1 and err.strip().startswith("error: --warm-start") and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        return err

    assert "no such folder or file, and no MLflow store at" in refused("izf-nothing", command=True)
    for source, message in ((f"sqlite:///{tmp_path / 'none.db'}", "no such file"),
                            (f"journal://{tmp_path / 'none.journal'}", "no such file"),
                            (f"sqlite:///{empty}", "holds 0 studies")):
        assert message in refused(source)
    # Read-only: nothing was created by looking (no mlflow.db, no none.db).
    assert not any((tmp_path / f).exists() for f in ("none.db", "none.journal", "mlflow.db"))
    Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "izf-other").experiment_id()  # a store without that experiment
    assert "no MLflow experiment of that name at sqlite:" in refused("izf-nothing")


def _without(point: dict, key: str) -> dict:
    return {k: v for k, v in sorted(point.items()) if k != key}
