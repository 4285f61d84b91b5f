import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from izf import DivergenceError, FitConfig, fit, load_dataset, train
from izf.device import check_precision, cpu_flags, fast_bfloat16
from izf.errors import ConfigError
from izf.io import load_model, save_model
from izf.metrics import gzsl_scores
from izf.presets import preset
from izf.training import build_model

SEEN_BLOBS = torch.tensor([[-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


@pytest.fixture(scope="module")
def toy_split():
    return load_dataset("toy", protocol="test", features="none")


@pytest.fixture(scope="module")
def toy_runs(toy_split):
    # 700 of the preset's 1,500 steps: every toy assertion below holds from 450 on (measured), in half the time.
    config = FitConfig.from_dict({**preset("toy"), "eval_every": 0, "steps": 700})
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
    full = fit(toy_split, config, report=lambda row, state: states.append(state()))
    resumed = fit(toy_split, config, resume=states[0])
    assert [r["step"] for r in resumed.history] == [20, 40]
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.history[-1]["loss"] == full.history[-1]["loss"]


def test_evaluating_does_not_change_what_is_trained(toy_split):
    """How often a fit evaluates (a search's --eval-every, ASHA's reports) leaves the trained model as it is."""
    config = FitConfig(depth=2, hidden=8, steps=40, synthetic_per_class=20, classifier_epochs=2)
    often, once = fit(toy_split, replace(config, eval_every=10)), fit(toy_split, replace(config, eval_every=0))
    assert len(often.history) == 4 and len(once.history) == 1
    for (name, a), b in zip(often.model.state_dict().items(), once.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert often.metrics == once.metrics  # the evaluation at step 40 too: its own stream, seeded from (seed, step)


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
    ({"centres": "class"}, r"centres must be one of \('batch', 'training'\), got 'class'"),
    ({"mmd_scale": "mean"}, r"mmd_scale must be one of \('fixed', 'median'\), got 'mean'"),
    ({"prototypes_per_step": -1}, "prototypes_per_step must be >= 0"),
    ({"prototypes_per_step": 8}, "prototypes_per_step > 0 needs centres='training'"),
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


def test_cli_test_protocol_measures_once_and_calls_it_test(capsys):
    """In this process, through the command's main() (test_cli_json_last_line runs it as `python -m izf.train`)."""
    run = ["--dataset", "toy", "--steps", "40"]
    assert train.main([*run, "--protocol", "test"]) == 0
    (line,) = capsys.readouterr().err.strip().splitlines()  # once, at the end, whatever the preset's eval_every
    assert line.startswith("step     40") and "test H" in line and "val H" not in line and "best" not in line
    assert train.main([*run, "--eval-every", "20"]) == 0
    val = capsys.readouterr().err
    assert [x.split()[1] for x in val.strip().splitlines()] == ["20", "40"] and "best" in val
    assert train.main([*run, "--protocol", "test", "--eval-every", "20"]) == 1
    assert capsys.readouterr().err.startswith("error: --eval-every: the test protocol measures once")


@pytest.mark.parametrize("latent_split", [1, 3])  # fewer (PCA) and more (orthonormal lift) than the 2 attributes
def test_latent_split_other_than_attribute_dim(toy_split, latent_split):
    result = fit(toy_split, FitConfig(depth=2, hidden=8, steps=20, eval_every=0, synthetic_per_class=20,
                                      latent_split=latent_split))
    assert result.model.semantic_dim == latent_split
    with pytest.raises(ConfigError, match="latent_split must be in"):
        fit(toy_split, FitConfig(depth=2, hidden=8, steps=2, latent_split=4))


def test_toy_plot_cli_writes_a_png(tmp_path):
    out = tmp_path / "toy.png"
    assert train.main(["--dataset", "toy", "--protocol", "test", "--steps", "60", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not fast_bfloat16(torch.device("cpu")), reason="this CPU has neither avx512_bf16 nor amx_bf16 "
                    "(test_bfloat16_is_refused_where_the_hardware_would_emulate_it runs instead)")
def test_bfloat16_subnets_train_and_round_trip_through_save_and_load(tmp_path, toy_split):
    config = FitConfig(depth=2, hidden=8, steps=30, eval_every=0, synthetic_per_class=30, subnet_precision="bfloat16")
    result = fit(toy_split, config)
    assert all(np.isfinite(v) for v in result.metrics.values())
    save_model(tmp_path / "m.pt", result, toy_split)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.config.subnet_precision == "bfloat16" and loaded.model.flow.couplings[0].low_precision
    with pytest.raises(ConfigError, match="subnet_precision"):
        FitConfig(subnet_precision="float16")


def test_bfloat16_is_refused_where_the_hardware_would_emulate_it(toy_split, monkeypatch):
    config = FitConfig(depth=2, hidden=8, steps=2, eval_every=0, synthetic_per_class=5, subnet_precision="bfloat16")
    if not fast_bfloat16(torch.device("cpu")):  # this machine's CPU, whichever it is
        with pytest.raises(ConfigError, match="this CPU has neither amx_bf16 nor avx512_bf16"):
            fit(toy_split, config)
    monkeypatch.setattr("izf.device.cpu_flags", lambda: frozenset({"avx2", "fma"}))
    with pytest.raises(ConfigError, match=r"about 100x slower than float32; use subnet_precision='float32'"):
        fit(toy_split, config)
    fit(toy_split, replace(config, subnet_precision="float32"))
    monkeypatch.setattr("izf.device.cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    check_precision("bfloat16", torch.device("cpu"))


def test_cpu_flags_are_the_ones_lscpu_reports():
    assert cpu_flags("processor : 0\nflags : fpu avx2 avx512_bf16\n") == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags("no flags here") == frozenset()
    lscpu = shutil.which("lscpu")
    if lscpu is None:
        pytest.skip("no lscpu on this machine (util-linux): the parsing above ran, the comparison with it did not")
    out = subprocess.run([lscpu], capture_output=True, text=True, env={"LC_ALL": "C"}).stdout
    (line,) = [x for x in out.splitlines() if x.startswith("Flags:")]
    assert cpu_flags() == frozenset(line.split(":", 1)[1].split())


def test_prototype_classes_have_a_shape_known_before_the_batch(toy_split):
    from izf.evaluate import DeviceSplit
    from izf.training import _prototype_classes

    data = DeviceSplit(toy_split, torch.device("cpu"))
    y = torch.tensor([1, 1, 0, 1])
    assert _prototype_classes(y, data, static_shapes=False, fixed_centres=False).tolist() == [0, 1]
    few_classes = _prototype_classes(y, data, static_shapes=True, fixed_centres=False)  # seen classes <= samples
    assert few_classes.tolist() == list(range(data.n_seen)) and data.n_seen <= 4
    more = _prototype_classes(y[:1], data, static_shapes=True, fixed_centres=False)  # more classes than samples
    assert more.tolist() == [1]


@pytest.mark.parametrize("n", [2, 9])
def test_fixed_centres_give_one_loss_on_cpu_and_gpu_shapes(n):
    """centres="training": where the seen classes fit in a batch, the CPU path pulls every one of them as the GPU
    path does (it used to pull only the batch's); where they do not, one row per sample (GPU) and the batch's
    distinct classes (CPU) are the same loss, a repeated class counting once."""
    from types import SimpleNamespace

    from izf.losses import centralizing_to_centres
    from izf.training import _prototype_classes

    g = torch.Generator().manual_seed(n)
    data = SimpleNamespace(n_seen=n, seen_classes=torch.arange(n))
    y = torch.randint(0, n, (6,), generator=g)
    centres, prototypes = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)

    def loss(static_shapes: bool) -> float:
        rows = _prototype_classes(y, data, static_shapes=static_shapes, fixed_centres=True)
        return float(centralizing_to_centres(prototypes[rows], rows, centres))

    assert loss(static_shapes=False) == pytest.approx(loss(static_shapes=True), rel=1e-6)
    rows = _prototype_classes(y, data, static_shapes=False, fixed_centres=True).tolist()
    # Every seen class has a row when the classes fit in a batch (n <= 6); else one row per sample's class.
    assert rows == (list(range(n)) if n <= y.shape[0] else sorted(set(y.tolist()))), (n, rows)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dataset, options", [
    ("toy", {}),  # every seen class
    ("synthetic-sun", {}),  # one row per sample
    ("synthetic-sun", {"centres": "training", "prototypes_per_step": 32, "mmd_scale": "median"}),
])
def test_training_steps_never_wait_for_the_gpu(dataset, options):
    from izf.evaluate import DeviceSplit
    from izf.training import Training

    split, config = load_dataset(dataset, protocol="val"), FitConfig(depth=2, hidden=64, mixing="lu", **options)
    device = torch.device("cuda")
    training = Training(config, DeviceSplit(split, device), device)
    training.step()  # first step: lazy state, allocations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            terms = training.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(terms).all()


def test_a_trained_toy_holds_its_semantic_factor_at_the_width_the_loss_implies(toy_runs, toy_split):
    """izf.losses.flow_nll: the semantic factor's prior is N(code, d_s / (2 w D)), not N(code, I)."""
    result = toy_runs[0.0]
    with torch.no_grad():
        semantic, _, _ = result.model.encode(torch.as_tensor(toy_split.train_x))
    residual = semantic - result.model.class_codes[torch.as_tensor(toy_split.train_y)]
    d_s, d = semantic.shape[1], toy_split.train_x.shape[1]
    implied = (d_s / (2 * result.config.semantic_weight * d)) ** 0.5  # 0.167; N(code, I) would be 1
    assert residual.std(0).tolist() == pytest.approx([implied] * d_s, rel=0.15)


def test_sampled_prototypes_map_k_rows_back_and_pull_to_the_training_centres(monkeypatch):
    from izf.evaluate import DeviceSplit
    from izf.losses import class_centres, median_sq_distance
    from izf.training import Dequantisation, Training

    data = DeviceSplit(load_dataset("synthetic", protocol="val"), torch.device("cpu"))
    sampled = FitConfig(depth=2, hidden=16, batch_size=64, centres="training", prototypes_per_step=5)
    decoded: list[int] = []
    for config, rows in ((sampled, 5), (replace(sampled, prototypes_per_step=0), None),
                         (replace(sampled, centres="batch", prototypes_per_step=0), None)):
        training = Training(config, data, torch.device("cpu"))
        decode = training.model.decode
        monkeypatch.setattr(training.model, "decode", lambda s, z, decode=decode: decoded.append(s.shape[0])
                            or decode(s, z))
        batch = training.batches.order[:64]
        assert torch.isfinite(training.step()).all()
        in_batch = data.train_y[batch].unique().numel()  # one prototype per class in the batch...
        if config.centres == "training" and data.n_seen <= 64:
            in_batch = data.n_seen  # ...or, against fixed centres, every seen class when they fit in a batch
        assert decoded.pop() == (rows or in_batch) + 64  # and one generated unseen feature per real one
    centres = Training(sampled, data, torch.device("cpu")).targets.centres
    # The centres are the class means of the features as the flow sees them, dequantisation noise included.
    noisy, g = Dequantisation(sampled.input_noise), torch.Generator().manual_seed(0)
    seen = torch.stack([class_centres(noisy(data.train_x, g), data.train_y, data.n_seen) for _ in range(200)])
    assert torch.allclose(centres, seen.mean(0), atol=1e-4) and noisy.mean == sampled.input_noise / 2 > 0
    median = Training(replace(sampled, mmd_scale="median"), data, torch.device("cpu")).targets.mmd_widths
    scale = median_sq_distance(data.train_x, generator=torch.Generator().manual_seed(0))
    assert median == pytest.approx(tuple(w * scale for w in sampled.mmd_widths)) and scale > 5  # 128-d: ~10


def test_fit_with_training_centres_sampled_prototypes_and_median_widths_is_reproducible():
    split = load_dataset("synthetic", protocol="val")
    config = FitConfig.from_dict({**preset("synthetic"), "steps": 30, "eval_every": 0, "centres": "training",
                                  "prototypes_per_step": 8, "mmd_scale": "median", "synthetic_per_class": 20})
    a, b = fit(split, config), fit(split, config)
    assert all(np.isfinite(v) for v in a.metrics.values()) and a.metrics == b.metrics
    assert a.history[-1]["loss_centralizing"] > 0


def test_one_inverse_pass_decodes_each_row_as_two_passes_would(toy_split):
    """loss_terms decodes the prototypes and the generated unseen features in one stacked call: the same rows and
    draws as two calls, and the same result but for the summation order of the larger matmuls (the models it
    trains are therefore not bitwise those of two passes; docs/benchmarks.md claims no more than this)."""
    model = build_model(FitConfig(depth=3, hidden=16), torch.as_tensor(toy_split.attributes), toy_split.feature_dim)
    g = torch.Generator().manual_seed(0)
    codes = model.class_codes
    rows, unseen = torch.arange(codes.shape[0]), torch.randint(0, codes.shape[0], (7,), generator=g)
    prototypes = (codes[rows], torch.zeros(rows.shape[0], model.free_dim))
    generated = (codes[unseen], model.free_noise(7, temperature=0.5, generator=g))
    with torch.no_grad():
        stacked = model.decode(torch.cat([prototypes[0], generated[0]]), torch.cat([prototypes[1], generated[1]]))
        apart = torch.cat([model.decode(*prototypes), model.decode(*generated)])
    assert torch.allclose(stacked, apart, rtol=1e-5, atol=1e-6)
