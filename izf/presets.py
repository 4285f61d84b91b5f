"""Per-dataset starting points: FitConfig overrides and the feature scaling each dataset wants."""

__all__ = ["preset", "feature_scaling"]

# The real benchmarks (SUN, CUB, AWA1, AWA2, aPY) and synthetic-sun train with FitConfig's defaults, which
# are the SUN settings, written down here with their reasons:
#   steps 11000, batch 256, lr 5e-4, weight decay 1e-5, grad clip 10, depth 5, width (hidden) 1024, clamp 2:
#     the IZF author's dev code (../shared/docs/izf-paper.md, section 4.2); the paper states none of them.
#     At batch 256 SUN's 10,320 trainval images are an epoch every 40 steps, so 11000 steps are ~270 epochs.
#   eval_every 1000: 11 evaluations a trial; each is a point ASHA compares trials at and a candidate for the
#     trial's best (on SUN-structured data the model overfit by 1200 steps, docs/benchmarks.md, so the best
#     evaluation, not the last, is what a trial reports). One SUN step costs ~1 s on 2 CPU cores, 1000 steps
#     ~17 min; an evaluation (400 generated per unseen class, the softmax trained 20 epochs) took 10-30 s on
#     synthetic-sun-small.
#   centres "batch", prototypes_per_step 0 (every class in the batch), mmd_scale "fixed": the author's forms;
#     the alternatives for SUN's 1.2 images per class per batch are searched dimensions (search/preparing/space.py),
#     measured in docs/benchmarks.md ("SUN's class structure").
# The built-in datasets are small; the paper's defaults (FitConfig) are for the 2048-d benchmarks.
# Toy: the author's toy flow (depth 3, subnet width 2, lr 5e-3, batch 384) with learned LU mixing, so the
# flow can be the affine map the toy data follows, and semantic_weight 9, the value at which that affine
# map is the NLL's optimum (docs/toy.md): then the unseen class is generated at (1, 1).
_PRESETS: dict[str, dict] = {
    "toy": dict(depth=3, hidden=2, mixing="lu", lr=5e-3, weight_decay=0.01, steps=1500, batch_size=384,
                semantic_weight=9.0, mmd_weight=0.01, eval_every=500, synthetic_per_class=300,
                classifier_epochs=50, classifier_lr=1e-2),
    "synthetic": dict(depth=4, hidden=128, lr=1e-3, steps=800, eval_every=400, mmd_weight=0.01,
                      synthetic_per_class=100, classifier_epochs=20),
}


def preset(dataset: str) -> dict:
    """FitConfig overrides for a dataset name (empty for the real benchmarks)."""
    return dict(_PRESETS.get(dataset.lower(), {}))


def feature_scaling(dataset: str) -> str:
    """The toy lives in its own coordinates (the paper's figure); everything else is min-max scaled."""
    return "none" if dataset.lower() == "toy" else "minmax"
