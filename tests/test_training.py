import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from izf import DivergenceError, FitConfig, fit, load_dataset
from izf.errors import ConfigError
from izf.io import load_model, save_model
from izf.metrics import gzsl_scores
from izf.presets import preset

SEEN_BLOBS = torch.tensor([[-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


@pytest.fixture(scope="module")
def toy_split():
    return load_dataset("toy", protocol="test", features="none")


@pytest.fixture(scope="module")
def toy_runs(toy_split):
    config = FitConfig.from_dict({**preset("toy"), "eval_every": 0})
    return {w: fit(toy_split, replace(config, mmd_weight=w)) for w in (0.0, config.mmd_weight, 0.5)}


def _generated_unseen(result, n=2000):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        return result.model.generate(torch.full((n,), 3), generator=g)[:, :2]


def test_toy_softmax_gzsl(toy_runs):
    # (ZSL T1 is 1 by construction here: the toy has one unseen class. GZSL picks among all four.)
    for result in (toy_runs[0.0], toy_runs[preset("toy")["mmd_weight"]]):
        assert result.metrics["softmax_u"] >= 0.9 and result.metrics["softmax_s"] >= 0.9
        assert result.metrics["softmax_h"] >= 0.9
        assert 0.0 <= result.metrics["nbc_h"] <= 1.0


def test_toy_generated_unseen_samples_are_centred_at_the_unseen_blob(toy_runs):
    for weight in (0.0, preset("toy")["mmd_weight"]):
        centre = _generated_unseen(toy_runs[weight]).mean(dim=0)
        assert torch.linalg.norm(centre - torch.tensor([1.0, 1.0])) < 0.25, (weight, centre)


def test_toy_negative_mmd_pushes_generated_unseen_away_from_seen_blobs(toy_runs):
    def distance_to_seen(result):
        return torch.cdist(_generated_unseen(result), SEEN_BLOBS).min(dim=1).values.mean()

    assert distance_to_seen(toy_runs[0.5]) > distance_to_seen(toy_runs[0.0]) + 0.1


def test_synthetic_izf_beats_a_ridge_attribute_regression():
    """A linear map from features to class attributes, nearest class by attributes: the classic ZSL
    baseline. (A softmax over seen classes only would be no baseline: its U, hence H, is 0 by construction.)"""
    split = load_dataset("synthetic", protocol="test")
    result = fit(split, FitConfig.from_dict(preset("synthetic")))
    izf_h = max(result.metrics["nbc_h"], result.metrics["softmax_h"])
    x, y = torch.as_tensor(split.train_x), torch.as_tensor(split.train_y)
    seen_x, seen_y = torch.as_tensor(split.seen_x), torch.as_tensor(split.seen_y)
    unseen_x, unseen_y = torch.as_tensor(split.unseen_x), torch.as_tensor(split.unseen_y)
    att = torch.as_tensor(split.attributes)
    ridge = torch.linalg.solve(x.T @ x + 1.0 * torch.eye(x.shape[1]), x.T @ att[y])

    def nearest_class(features):
        return torch.cdist(features @ ridge, att).argmin(dim=1)

    ridge_h = gzsl_scores(nearest_class(seen_x), seen_y, nearest_class(unseen_x), unseen_y)["h"]
    print(f"IZF H {izf_h:.3f}, ridge H {ridge_h:.3f}")
    assert 0 < ridge_h < izf_h


def test_saved_model_predicts_identically(tmp_path, toy_split):
    result = fit(toy_split, FitConfig(depth=2, hidden=8, steps=30, eval_every=0, synthetic_per_class=30))
    save_model(tmp_path / "m.pt", result, toy_split)
    loaded = load_model(tmp_path / "m.pt")
    raw = toy_split.seen_x  # toy features are unscaled, so these are raw features too
    with torch.no_grad():
        expected = result.classifier.predict(torch.as_tensor(raw)).numpy()
        codes = result.model.encode(torch.as_tensor(raw))[0]
        assert torch.equal(loaded.model.encode(torch.as_tensor(raw))[0], codes)
    assert np.array_equal(loaded.predict(raw), expected)


def test_resume_continues_exactly(toy_split):
    config = FitConfig(depth=2, hidden=8, steps=40, eval_every=20, synthetic_per_class=20, classifier_epochs=2)
    states = []
    full = fit(toy_split, config, checkpoint=states.append)
    resumed = fit(toy_split, config, resume=states[0])
    assert [r["step"] for r in resumed.history] == [20, 40]
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.history[-1]["loss"] == full.history[-1]["loss"]


def test_divergence_raises_a_specific_error(toy_split):
    with pytest.raises(DivergenceError, match=r"diverged at step \d+"):
        fit(toy_split, FitConfig(depth=2, hidden=8, steps=200, lr=1e30, clamp=50.0, eval_every=0, check_every=10))


def test_invalid_options_fail_early():
    with pytest.raises(ConfigError, match="unknown FitConfig option"):
        FitConfig.from_dict({"dpeth": 3})
    with pytest.raises(ConfigError, match="lr must be > 0"):
        FitConfig(lr=0)


@pytest.mark.parametrize(("values", "message"), [
    ({"classifier_epochs": 1.5}, "classifier_epochs must be a whole number, got 1.5"),
    ({"depth": True}, "depth must be a whole number, got True"),
    ({"lr": "abc"}, "lr must be a number, got 'abc'"),
    ({"calibration": float("nan")}, "calibration must be a finite number, got nan"),
    ({"input_noise": float("inf")}, "input_noise must be a finite number, got inf"),
    ({"mmd_widths": [1.0, float("nan")]}, "mmd_widths must be a finite number"),
    ({"mixing": 3}, "mixing must be a string, got 3"),
    ({"latent_split": 0}, "latent_split must be >= 1"),
])
def test_fitconfig_checks_the_type_and_finiteness_of_every_field(values, message):
    """NaN slips through range checks (nan < 0 is False) and JSON gives 1.5 where an int belongs."""
    with pytest.raises(ConfigError, match=message):
        FitConfig.from_dict(values)


def test_fitconfig_takes_ints_for_floats_and_numpy_numbers():
    config = FitConfig.from_dict({"lr": 1, "steps": np.int64(30), "mmd_widths": [1, 2]})
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.steps == 30 and type(config.steps) is int and config.mmd_widths == (1.0, 2.0)


def test_cli_json_last_line():
    out = subprocess.run(
        [sys.executable, "-m", "izf.train", "--dataset", "toy", "--protocol", "test", "--steps", "50",
         "--eval-every", "0", "--json"], capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["dataset"] == "toy" and result["protocol"] == "test"
    for name in ("nbc", "softmax"):
        assert set(result[name]) == {"zsl_t1", "u", "s", "h"}
        assert all(0.0 <= v <= 1.0 for v in result[name].values())


@pytest.mark.parametrize("latent_split", [1, 3])  # fewer (PCA) and more (orthonormal lift) than the 2 attributes
def test_latent_split_other_than_attribute_dim(toy_split, latent_split):
    result = fit(toy_split, FitConfig(depth=2, hidden=8, steps=20, eval_every=0, synthetic_per_class=20,
                                      latent_split=latent_split))
    assert result.model.semantic_dim == latent_split
    with pytest.raises(ConfigError, match="latent_split must be in"):
        fit(toy_split, FitConfig(depth=2, hidden=8, steps=2, latent_split=4))


def test_toy_plot_cli_writes_a_png(tmp_path):
    out = tmp_path / "toy.png"
    subprocess.run([sys.executable, "-m", "izf.train", "--dataset", "toy", "--protocol", "test", "--steps", "60",
                    "--plot", str(out)], capture_output=True, text=True, check=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bfloat16_subnets_train_and_round_trip_through_save_and_load(tmp_path, toy_split):
    config = FitConfig(depth=2, hidden=8, steps=30, eval_every=0, synthetic_per_class=30, subnet_precision="bfloat16")
    result = fit(toy_split, config)
    assert all(np.isfinite(v) for v in result.metrics.values())
    save_model(tmp_path / "m.pt", result, toy_split)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.config.subnet_precision == "bfloat16" and loaded.model.flow.couplings[0].low_precision
    with pytest.raises(ConfigError, match="subnet_precision"):
        FitConfig(subnet_precision="float16")


def test_prototype_classes_have_a_shape_known_before_the_batch(toy_split):
    from izf.evaluate import DeviceSplit
    from izf.training import _prototype_classes

    data = DeviceSplit(toy_split, torch.device("cpu"))
    y = torch.tensor([1, 1, 0, 1])
    assert _prototype_classes(y, data, static_shapes=False).tolist() == [0, 1]
    few_classes = _prototype_classes(y, data, static_shapes=True)  # no more seen classes than samples
    assert few_classes.tolist() == list(range(data.n_seen)) and data.n_seen <= 4
    assert _prototype_classes(y[:1], data, static_shapes=True).tolist() == [1]  # more classes than samples


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dataset", ["toy", "synthetic-sun"])  # every seen class / one row per sample
def test_training_steps_never_wait_for_the_gpu(dataset):
    from izf.evaluate import DeviceSplit
    from izf.training import _start_training, _train_step

    split, config = load_dataset(dataset, protocol="val"), FitConfig(depth=2, hidden=64, mixing="lu")
    device = torch.device("cuda")
    data = DeviceSplit(split, device)
    model, optimizer, g, batches = _start_training(config, data, device)
    _train_step(model, optimizer, data, batches, config, g)  # first step: lazy state, allocations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            terms = _train_step(model, optimizer, data, batches, config, g)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(terms).all()
