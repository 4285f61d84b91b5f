"""Naive Bayes, calibrated stacking and `evaluate` on cases worked out by hand.

A real IZF maps a feature x to (s, z); x = f^-1([s; 0]) lands exactly where we want in the semantic
factor, so the classifier's answer can be computed on paper: NBC scores class c as -||s - code_c||^2 / 2.
Four classes with 2-d attributes = codes (d_s = attribute dim: P is the identity): seen 0 at (0, 0),
seen 1 at (4, 0), unseen 2 at (0, 4), unseen 3 at (4, 4).
"""

import numpy as np
import pytest
import torch

from izf.classifiers import NaiveBayes
from izf.data.split import FeatureScaler, Split
from izf.evaluate import DeviceSplit, evaluate
from izf.training import FitConfig, build_model

CODES = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])


@pytest.fixture(scope="module")
def model():
    izf = build_model(FitConfig(depth=2, hidden=8, seed=0), CODES, feature_dim=4).eval()
    assert torch.equal(izf.class_codes, CODES)
    return izf


def at(model, *semantic: tuple[float, float]) -> torch.Tensor:
    """Features whose semantic factor is exactly `semantic` (and free factor 0)."""
    s = torch.tensor(semantic)
    with torch.no_grad():
        return model.decode(s, torch.zeros(len(s), model.free_dim))


def test_naive_bayes_picks_the_nearest_class_code(model):
    nbc = NaiveBayes(model, n_seen=2)
    assert nbc.predict(at(model, (0, 0), (4, 0), (0, 4), (4, 4), (3.5, 0.5))).tolist() == [0, 1, 2, 3, 1]
    scores = nbc.scores(at(model, (0, 1.6)))[0]
    assert scores.tolist() == pytest.approx([-1.28, -9.28, -2.88, -10.88], abs=1e-4)  # -d^2 / 2


def test_calibrated_stacking_moves_the_boundary_by_exactly_the_calibration(model):
    # s = (0, 1.6): seen class 0 scores -1.28, unseen class 2 scores -2.88. Subtracting gamma from the seen
    # scores makes class 2 win exactly when gamma > 1.6.
    x = at(model, (0, 1.6))
    assert NaiveBayes(model, n_seen=2, calibration=1.5).predict(x).item() == 0
    assert NaiveBayes(model, n_seen=2, calibration=1.7).predict(x).item() == 2
    assert NaiveBayes(model, n_seen=2, calibration=1.7).predict(x, candidates=torch.tensor([0, 1])).item() == 0


def test_evaluate_judges_gzsl_over_all_classes_and_zsl_over_the_unseen_ones(model):
    # Seen test images at their codes; unseen ones at codes 2 and 3, and one of class 3 at (3.5, 0.5),
    # nearest to seen class 1: GZSL gets it wrong, ZSL (unseen classes only) right.
    # NBC: S = 1; U = mean over classes 2 and 3 of (1/1, 1/2) = 0.75; H = 2 * 0.75 / 1.75; ZSL T1 = 1.
    seen_x = at(model, (0, 0), (4, 0)).numpy()
    unseen_x = at(model, (0, 4), (4, 4), (3.5, 0.5)).numpy()
    scaler = FeatureScaler("none", np.zeros(4, np.float32), np.ones(4, np.float32))
    split = Split("hand", "test", ("a", "b", "c", "d"), CODES.numpy(), 2, np.concatenate([seen_x] * 8),
                  np.array([0, 1] * 8), seen_x, np.array([0, 1]), unseen_x, np.array([2, 3, 3]), scaler)
    data = DeviceSplit(split, torch.device("cpu"))
    options = dict(synthetic_per_class=8, classifier_epochs=1, generator=torch.Generator().manual_seed(0))
    metrics, _ = evaluate(model, data, **options)
    assert metrics["nbc_s"] == 1.0 and metrics["nbc_u"] == 0.75 and metrics["nbc_zsl_t1"] == 1.0
    assert metrics["nbc_h"] == pytest.approx(2 * 0.75 / 1.75)
    assert {"softmax_u", "softmax_s", "softmax_h", "softmax_zsl_t1"} <= set(metrics)
    assert metrics["generated_fraction"] == 0.5  # 2 unseen classes x 8 generated against 16 real images
    # A calibration larger than any score gap sends every image to an unseen class: S = 0, U = 1.
    calibrated, _ = evaluate(model, data, calibration=100.0, **options)
    assert (calibrated["nbc_s"], calibrated["nbc_u"], calibrated["nbc_h"]) == (0.0, 1.0, 0.0)
    assert calibrated["softmax_s"] == 0.0
