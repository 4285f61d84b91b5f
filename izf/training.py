"""`fit`: train one IZF model on a split, evaluating, reporting and checkpointing as it goes."""

import copy
import math
import numbers
import time
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from izf.classifiers import Softmax
from izf.data.split import Split
from izf.device import check_precision, choose_device
from izf.errors import ConfigError, DivergenceError
from izf.evaluate import DeviceSplit, evaluate
from izf.flow import MIXINGS, SUBNET_PRECISIONS, Flow
from izf.losses import (
    MMD_WIDTHS,
    centralizing,
    centralizing_to_centres,
    class_centres,
    flow_nll,
    median_sq_distance,
    mmd,
)
from izf.model import IZF
from izf.semantics import semantic_projection

__all__ = ["FitConfig", "FitResult", "fit", "build_model", "Training", "Dequantisation", "LossTargets", "loss_targets",
           "loss_terms"]

CLASSIFIERS = ("softmax", "nbc")
CENTRES = ("batch", "training")
MMD_SCALES = ("fixed", "median")
TERM_NAMES = ("loss", "loss_flow", "loss_centralizing", "loss_mmd")


@dataclass
class FitConfig:
    """Every hyperparameter of one IZF training run. Defaults follow the IZF author's code where known.

    latent_split is d_s, the number of latent coordinates tied to the class (None: the attribute dim).
    mixing is the flow's per-block mixing layer: "permute" (the author's code) or "lu" (learned; see Flow).
    subnet_precision "bfloat16" runs the coupling subnets' matmuls in bfloat16 (see izf.flow.Coupling); `fit`
    refuses it on hardware that would emulate bfloat16 (izf.device.check_precision).
    eval_every = 0 evaluates only once, after the last step. select_by names the classifier whose
    H is the trial's objective ("softmax" or "nbc").

    The centralizing loss pulls each seen class's prototype f^{-1}([code; 0]) to a centre of its features:
    centres "batch" (the author's code) takes the class's mean in the current batch (at SUN's 717 classes
    mostly one image), "training" the class's mean over the whole training part, computed once.
    prototypes_per_step 0 maps back one prototype per class in the batch; K > 0 (with "training" centres)
    K seen classes drawn at random each step, so the cost no longer grows with the batch's classes.
    mmd_scale "fixed" uses mmd_widths as they are (the author's, for features of unit scale); "median"
    multiplies them by the median pairwise squared distance of the training features (the median heuristic).
    """

    # flow
    depth: int = 5
    hidden: int = 1024
    clamp: float = 2.0
    mixing: str = "permute"
    subnet_precision: str = "float32"
    latent_split: int | None = None
    # losses
    semantic_weight: float = 10.0
    centralizing_weight: float = 1.0
    centres: str = "batch"
    prototypes_per_step: int = 0
    mmd_weight: float = 0.1
    mmd_widths: tuple[float, ...] = MMD_WIDTHS
    mmd_scale: str = "fixed"
    input_noise: float = 0.008
    # optimisation
    lr: float = 5e-4
    weight_decay: float = 1e-5
    batch_size: int = 256
    steps: int = 11000
    grad_clip: float = 10.0
    # generation and classifiers
    temperature: float = 1.0
    synthetic_per_class: int = 400
    classifier_lr: float = 1e-3
    classifier_epochs: int = 20
    calibration: float = 0.0
    select_by: str = "softmax"
    # bookkeeping
    eval_every: int = 1000
    check_every: int = 50
    seed: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, _checked(f.name, getattr(self, f.name), f.type))
        positive = ("depth", "hidden", "clamp", "lr", "batch_size", "steps", "synthetic_per_class",
                    "classifier_lr", "classifier_epochs", "check_every", "temperature", "grad_clip")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("semantic_weight", "centralizing_weight", "mmd_weight", "input_noise", "weight_decay",
                     "eval_every", "calibration"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be >= 2 (the MMD needs pairs), got {self.batch_size}")
        if self.mixing not in MIXINGS:
            raise ConfigError(f"mixing must be one of {MIXINGS}, got {self.mixing!r}")
        if self.subnet_precision not in SUBNET_PRECISIONS:
            raise ConfigError(f"subnet_precision must be one of {SUBNET_PRECISIONS}, got {self.subnet_precision!r}")
        if self.select_by not in CLASSIFIERS:
            raise ConfigError(f"select_by must be one of {CLASSIFIERS}, got {self.select_by!r}")
        if self.centres not in CENTRES:
            raise ConfigError(f"centres must be one of {CENTRES}, got {self.centres!r}")
        if self.mmd_scale not in MMD_SCALES:
            raise ConfigError(f"mmd_scale must be one of {MMD_SCALES}, got {self.mmd_scale!r}")
        if self.prototypes_per_step < 0:
            raise ConfigError(f"prototypes_per_step must be >= 0, got {self.prototypes_per_step}")
        if self.prototypes_per_step and self.centres == "batch":
            raise ConfigError("prototypes_per_step > 0 needs centres='training': a class drawn at random has no "
                              "images in most batches, so no batch centre")
        if not self.mmd_widths or min(self.mmd_widths) <= 0:
            raise ConfigError(f"mmd_widths must be positive numbers, got {self.mmd_widths}")
        if self.latent_split is not None and self.latent_split < 1:
            raise ConfigError(f"latent_split must be >= 1 (or None: the attribute dim), got {self.latent_split}")

    @classmethod
    def from_dict(cls, values: dict) -> "FitConfig":
        """Build from a dict, naming any key that is not a field (e.g. a typo in a search space)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown FitConfig option(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def _checked(name: str, value: object, kind: object) -> object:
    """`value` as the field's type (int, float, str, optional, tuple of floats); floats must be finite.

    The values come from JSON on the command line and from search spaces, so a float where an int
    belongs, a bool for a number or NaN are named here instead of failing deep inside training.
    """
    if isinstance(kind, types.UnionType):  # `int | None`, `str | None`
        if value is None:
            return None
        (kind,) = [k for k in kind.__args__ if k is not type(None)]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    if isinstance(value, str) or not hasattr(value, "__iter__"):  # tuple[float, ...]
        raise ConfigError(f"{name} must be a list of numbers, got {value!r}")
    return tuple(_checked(name, v, float) for v in value)


@dataclass
class FitResult:
    """What `fit` returns: the final model, its GZSL softmax head, and the metrics along the way."""

    model: IZF
    classifier: Softmax
    config: FitConfig
    metrics: dict[str, float]
    best: dict[str, float]
    history: list[dict] = field(default_factory=list)


def build_model(config: FitConfig, attributes: torch.Tensor, feature_dim: int) -> IZF:
    """The IZF for a split's class attributes (C, A): flow, latent split and class codes P c_y."""
    d_s = attributes.shape[1] if config.latent_split is None else config.latent_split
    if not 1 <= d_s < feature_dim:
        raise ConfigError(f"latent_split must be in [1, {feature_dim - 1}] for {feature_dim}-d features, got {d_s}")
    torch.manual_seed(config.seed)
    projection = torch.as_tensor(semantic_projection(attributes.cpu().numpy(), d_s, seed=config.seed))
    codes = attributes.cpu() @ projection.T
    flow = Flow(feature_dim, depth=config.depth, hidden=config.hidden, clamp=config.clamp, seed=config.seed,
                mixing=config.mixing, subnet_precision=config.subnet_precision)
    return IZF(flow, codes)


class _Batches:
    """Epochs of index permutations on the device; its state resumes exactly."""

    def __init__(self, n: int, size: int, generator: torch.Generator) -> None:
        self.n, self.size, self.generator = n, min(size, n), generator
        self.order = torch.randperm(n, device=generator.device, generator=generator)
        self.cursor = 0

    def next(self) -> torch.Tensor:
        if self.cursor + self.size > self.n:
            self.order = torch.randperm(self.n, device=self.generator.device, generator=self.generator)
            self.cursor = 0
        idx = self.order[self.cursor : self.cursor + self.size]
        self.cursor += self.size
        return idx


def _prototype_classes(y: torch.Tensor, data: DeviceSplit, *, static_shapes: bool,
                       fixed_centres: bool) -> torch.Tensor:
    """The classes whose prototypes the centralizing loss maps back through the flow.

    Without static_shapes, the batch's distinct classes (the fewest rows). On a GPU torch.unique would
    wait for the device every step, so static_shapes gives a shape known in advance: every seen class
    if there are no more of them than samples in the batch (AWA, aPY), else one row per sample (SUN, CUB;
    the losses count a repeated class once, so that is the batch's distinct classes again). With
    `fixed_centres` (centres="training") every seen class has a target whether the batch holds it or not:
    where they fit in a batch, all of them are taken on every device, so CPU and GPU estimate the same loss
    (with the batch's own means, a class the batch lacks has no target and counts 0 either way).
    """
    if data.n_seen <= y.shape[0] and (static_shapes or fixed_centres):
        return data.seen_classes
    return y if static_shapes else y.unique()


@dataclass(frozen=True)
class Dequantisation:
    """The noise added to every training feature, U(0, scale) in each dimension, and what it moves a mean by:
    one place for both, so the training centres always match the noise the flow sees."""

    scale: float

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not self.scale:
            return x
        return x + self.scale * torch.rand(x.shape, device=x.device, generator=generator)

    @property
    def mean(self) -> float:
        """E[scale * U(0, 1)]: how far the noisy features' class means lie above the clean ones."""
        return self.scale / 2


@dataclass
class LossTargets:
    """What the losses compare with that is fixed for a run: the seen classes' centres of the training part
    (None: each batch's own class means) and the MMD kernel widths."""

    centres: torch.Tensor | None
    mmd_widths: tuple[float, ...]


def loss_targets(c: FitConfig, data: DeviceSplit) -> LossTargets:
    """The run's LossTargets, computed once from the training part (the same on every resume)."""
    centres = None
    if c.centres == "training":
        centres = class_centres(data.train_x, data.train_y, data.n_seen) + Dequantisation(c.input_noise).mean
    widths = c.mmd_widths
    if c.mmd_scale == "median":
        scale = median_sq_distance(data.train_x, generator=torch.Generator().manual_seed(c.seed))
        widths = tuple(w * scale for w in c.mmd_widths)
    return LossTargets(centres, widths)


def loss_terms(model: IZF, data: DeviceSplit, idx: torch.Tensor, c: FitConfig, g: torch.Generator,
               targets: LossTargets) -> torch.Tensor:
    """[total, flow, centralizing, mmd] on one batch of real seen features."""
    x, y = Dequantisation(c.input_noise)(data.train_x[idx], g), data.train_y[idx]
    semantic, free, ladj = model.encode(x)
    l_flow = flow_nll(semantic, free, ladj, model.class_codes[y], semantic_weight=c.semantic_weight)
    # Seen prototypes f^{-1}([code; 0]) and generated unseen features f^{-1}([code; tau z]): one inverse pass.
    labels, free = [], []
    if c.centralizing_weight:
        if c.prototypes_per_step:
            rows = torch.randperm(data.n_seen, device=x.device, generator=g)[: c.prototypes_per_step]
        else:
            rows = _prototype_classes(y, data, static_shapes=y.is_cuda, fixed_centres=targets.centres is not None)
        labels.append(rows)
        free.append(x.new_zeros(rows.shape[0], model.free_dim))
    if c.mmd_weight:
        pick = torch.randint(0, data.unseen_classes.shape[0], (x.shape[0],), device=x.device, generator=g)
        labels.append(data.unseen_classes[pick])
        free.append(model.free_noise(x.shape[0], temperature=c.temperature, generator=g))
    decoded = list(model.decode(model.class_codes[torch.cat(labels)], torch.cat(free)).split(
        [f.shape[0] for f in free])) if labels else []
    zero = l_flow.new_zeros(())
    l_c = l_mmd = zero
    if c.centralizing_weight:
        prototypes = decoded.pop(0)
        l_c = (centralizing(prototypes, rows, x, y, num_classes=data.n_seen) if targets.centres is None
               else centralizing_to_centres(prototypes, rows, targets.centres))
    if c.mmd_weight:
        l_mmd = -mmd(x, decoded.pop(0), widths=targets.mmd_widths)
    total = l_flow + c.centralizing_weight * l_c + c.mmd_weight * l_mmd
    return torch.stack([total, l_flow, l_c, l_mmd])


class Training:
    """What `fit` trains, on one device: the model, its Adam, the random stream, the batch order and the
    loss targets. `step()` is one optimisation step."""

    def __init__(self, c: FitConfig, data: DeviceSplit, device: torch.device) -> None:
        self.config, self.data = c, data
        self.model = build_model(c, data.attributes, data.train_x.shape[1]).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        self.generator = torch.Generator(device).manual_seed(c.seed)
        self.batches = _Batches(data.train_x.shape[0], c.batch_size, self.generator)
        self.targets = loss_targets(c, data)

    def step(self) -> torch.Tensor:
        """One optimisation step; returns the loss terms, left on the device (reading them would sync)."""
        c = self.config
        terms = loss_terms(self.model, self.data, self.batches.next(), c, self.generator, self.targets)
        self.optimizer.zero_grad(set_to_none=True)
        terms[0].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        return terms


def evaluation_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The random stream of the evaluation at `step`: its own, seeded from (seed, step), so that evaluating
    (how often, whether at all, or again after a resume) never moves the training stream."""
    state = np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device).manual_seed(int(state))


def _evaluate(model: IZF, tensors: DeviceSplit, c: FitConfig, step: int) -> tuple[dict, Softmax]:
    metrics, classifier = evaluate(
        model, tensors, temperature=c.temperature, synthetic_per_class=c.synthetic_per_class,
        calibration=c.calibration, classifier_lr=c.classifier_lr, classifier_epochs=c.classifier_epochs,
        generator=evaluation_generator(c.seed, step, tensors.train_x.device),
    )
    metrics["h"] = metrics[f"{c.select_by}_h"]
    return metrics, classifier


def fit(
    data: Split,
    config: FitConfig | None = None,
    *,
    report: Callable[[dict, Callable[[], dict]], None] | None = None,
    resume: dict | None = None,
) -> FitResult:
    """Train IZF on `data.train_*` and evaluate on its seen/unseen evaluation sets.

    Arguments:
        data: a Split (protocol "val" for model selection, "test" for the final measurement).
        config: hyperparameters (default FitConfig()).
        report: `report(row, state)` after every evaluation. `row`: step, loss terms, samples_per_s,
            the metrics of both classifiers (fractions), `h` (the select_by classifier's H), best_h,
            and the seconds spent so far in training steps (train_seconds) and evaluations (eval_seconds).
            `state()`: the full training state now (a dict of tensors and plain values, loadable with
            torch.load(weights_only=True)); it copies the model and the optimizer (~360 MB at SUN's shapes),
            so call it only for a checkpoint that is kept.
        resume: a state `state()` returned earlier; training continues from it exactly.

    Raises:
        DivergenceError: the loss became NaN or Inf.
        ConfigError: bfloat16 subnets asked for on a device without native bfloat16.

    Example:
        >>> from izf.data import load_dataset
        >>> result = fit(load_dataset("toy", protocol="test"),
        ...              FitConfig(depth=2, hidden=16, steps=20, eval_every=0, synthetic_per_class=20))
        >>> sorted(result.metrics)[:3]
        ['generated_fraction', 'h', 'nbc_h']
    """
    c = config or FitConfig()
    if resume is not None:
        c = FitConfig.from_dict(resume["config"])
    device = choose_device(c.device)
    check_precision(c.subnet_precision, device)
    tensors = DeviceSplit(data, device)
    training = Training(c, tensors, device)
    model, optimizer, g, batches = training.model, training.optimizer, training.generator, training.batches
    step, train_seconds, eval_seconds, best, history = 0, 0.0, 0.0, {"h": -1.0}, []
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        g.set_state(resume["generator"])
        batches.order, batches.cursor = resume["order"].to(device), resume["cursor"]
        step, train_seconds, best = resume["step"], resume["train_seconds"], resume["best"]
        eval_seconds = resume.get("eval_seconds", 0.0)  # absent in states saved before it was counted
        history = list(resume["history"])

    def state() -> dict:
        # deepcopy: state_dict() shares storage with tensors that the next steps update in place
        return copy.deepcopy({
            "config": asdict(c), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "generator": g.get_state(), "order": batches.order, "cursor": batches.cursor, "step": step,
            "train_seconds": train_seconds, "eval_seconds": eval_seconds, "best": best, "history": history})

    terms_sum, terms_count = torch.zeros(4, device=device), 0
    metrics, classifier = {}, None
    model.train()
    while step < c.steps:
        started = time.perf_counter()
        terms = training.step()
        step += 1
        terms_sum += terms.detach()
        terms_count += 1
        last = step == c.steps
        evaluate_now = last or (c.eval_every and step % c.eval_every == 0)
        if step % c.check_every == 0 or evaluate_now:
            mean_terms = (terms_sum / terms_count).tolist()  # one host sync per check, not per step
            if not all(map(lambda v: v == v and abs(v) != float("inf"), mean_terms)):
                raise DivergenceError(step, dict(zip(TERM_NAMES, mean_terms, strict=True)))
        train_seconds += time.perf_counter() - started
        if not evaluate_now:
            continue
        started = time.perf_counter()
        metrics, classifier = _evaluate(model, tensors, c, step)
        eval_seconds += time.perf_counter() - started
        if metrics["h"] > best["h"]:
            best = {**metrics, "step": step}
        row = {"step": step, **dict(zip(TERM_NAMES, mean_terms, strict=True)),
               **metrics, "best_h": best["h"], "best_step": best["step"],
               "samples_per_s": step * c.batch_size / max(train_seconds, 1e-9), "train_seconds": train_seconds,
               "eval_seconds": eval_seconds}
        history.append(row)
        terms_sum.zero_()
        terms_count = 0
        if report is not None:
            report(dict(row), state)
    if classifier is None:  # resumed from a state saved after the last step
        metrics, classifier = _evaluate(model, tensors, c, step)
    return FitResult(model.eval(), classifier, c, metrics, best, history)
