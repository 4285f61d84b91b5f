"""The champion rule: which registered version of `izf-<dataset>` carries the `champion` alias, and why.

A version's validation H is a *measure*: on which data (checksum) and validation split (split seed) it was
measured, and how: `single`, the chosen trial's own H (the best of many noisy draws, biased upward), or
`mean`, the mean H of the chosen config over new seeds (`--reevaluate-top`, unbiased). The rule ranks
versions measured on the same split by (mean before single, H, older first): a total order, so the
champion is the same whatever order the versions were registered in, and a biased single draw never ranks
above a mean over new seeds.

Versions measured alike (same split, same kind) are compared by the rule. Versions measured differently
(another split, or single against mean) are compared by a *champion challenge*: both configs retrained
with the same fresh seeds on the same validation split, the alias moving only if the challenger's mean
beats the champion's (paired over seeds). Without a challenge (`--challenge-seeds 0`), the rule's order
decides on one split, and a version of another split leaves the alias where it is. A version on other data
(another checksum) takes the alias for that data's best version: the alias follows the newest data.
"""

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from izf.metrics import paired_difference
from tracking.model import CHAMPION, trained_config
from tracking.paging import every_version

__all__ = ["Measure", "Decision", "Retrain", "promote", "challenge_split", "CHALLENGE_SEED", "DECISION_TAG"]

CHALLENGE_SEED = 1_000_000  # a challenge's seeds are CHALLENGE_SEED + i: none a search's own (seed, seed + i)
DECISION_TAG = "izf.champion_decision"  # on the parent run: why the alias moved or stayed
ROUNDS = 5  # decisions re-made after another driver moved the alias meanwhile

Retrain = Callable[[list[dict], int], list[float]]
"""`retrain(configs, split_seed)`: the validation H of each FitConfig dict, trained on the validation protocol
of split `split_seed` (a fit that diverges counts as H 0)."""


@dataclass(frozen=True)
class Measure:
    """How one version's validation H was measured, from its tags."""

    version: str
    checksum: str
    split_seed: int | None  # None: registered before split seeds were recorded (a split of its own)
    kind: str  # "mean" (over new seeds) or "single" (the chosen trial's own H)
    value: float
    n_seeds: int

    @classmethod
    def of(cls, version: ModelVersion) -> "Measure | None":
        """None for a version the rule cannot weigh (no val_h: not registered by a search)."""
        tags = version.tags
        if "val_h" not in tags:
            return None
        mean = "val_h_mean" in tags
        split = tags.get("split_seed")
        return cls(str(version.version), tags.get("data_checksum", ""), None if split in (None, "") else int(split),
                   "mean" if mean else "single", float(tags["val_h_mean" if mean else "val_h"]),
                   int(tags.get("val_h_seeds", 1)))

    def rank(self) -> tuple:
        """The rule's order on one split: a mean over new seeds first, then higher H, then the older version."""
        return (self.kind == "mean", self.value, -int(self.version))

    def same_split(self, other: "Measure") -> bool:
        """Whether both measures are on one validation split of the same data."""
        return self.split_seed is not None and (self.checksum, self.split_seed) == (other.checksum,
                                                                                     other.split_seed)

    def alike(self, other: "Measure") -> bool:
        """Whether the rule alone may compare the two: the same split, measured the same way."""
        return self.same_split(other) and self.kind == other.kind

    def describe(self) -> str:
        """The measure in words: the version and its val H (its trial's own, or the mean over new seeds)."""
        what = f"val H mean {100 * self.value:.2f} over {self.n_seeds} new seeds" if self.kind == "mean" \
            else f"val H {100 * self.value:.2f} (its trial's own)"
        return f"version {self.version}'s {what}"

    def where(self) -> str:
        """The validation split the measure was taken on, in words."""
        return "split seed unrecorded" if self.split_seed is None else f"split seed {self.split_seed}"


@dataclass
class Decision:
    """Where the alias is after `promote`, and one line that says why it moved or stayed."""

    champion: str | None
    moved: bool
    why: str
    challenge: dict | None = None  # the challenge that decided, when one did


def promote(client: MlflowClient, name: str, version: str, *, retrain: Retrain | None = None,
            challenge_seeds: int = 0) -> Decision:
    """Apply the rule (module docstring) after `version` of `name` was registered.

    The decision is made from the registry as it is now, and made again after each move until it stands, so
    two searches finishing together leave the alias on the better of their models. With `retrain` and
    `challenge_seeds` > 0, versions measured differently are decided by a challenge (`retrain` runs its
    fits); its result is kept in the challenger's tags and reused.
    The decision goes into the version's tag `champion_decision` and its parent run's DECISION_TAG.
    """
    new = Measure.of(client.get_model_version(name, version))
    if new is None:
        return Decision(None, False, f"version {version} has no val_h tag (not registered by a search): the rule "
                                     "cannot weigh it")
    moved = None
    for _ in range(ROUNDS):  # after a move, decide again: another driver may have registered a better one
        decision = _decide(client, name, new, every_version(client, f"name = '{name}'"),
                           _champion(client, name), retrain if challenge_seeds > 0 else None, challenge_seeds)
        if not decision.moved:
            break
        client.set_registered_model_alias(name, CHAMPION, decision.champion)
        moved = decision
    if moved is not None and moved.champion == decision.champion:
        decision = moved  # why it moved, not "stays" from the round that checked it
    _record(client, name, version, decision)
    return decision


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _decide(client: MlflowClient, name: str, new: Measure, versions: list[ModelVersion],
            current: ModelVersion | None, retrain: Retrain | None, n_seeds: int) -> Decision:
    measures = [m for m in map(Measure.of, versions) if m is not None]
    held = None if current is None else Measure.of(current)
    if held is None or held.checksum != new.checksum:
        best = max((m for m in measures if m.checksum == new.checksum and (m.same_split(new) or m == new)),
                   key=Measure.rank)
        if held is None:
            why = "the first champion" if current is None else \
                f"the champion (version {current.version}) has no val_h to weigh"
        else:
            why = (f"the data checksum {new.checksum[:12]} differs from the champion's (version {held.version}, "
                   f"{held.checksum[:12]}): the alias follows the newest data")
        return Decision(best.version, current is None or best.version != str(current.version),
                        f"version {best.version} is the champion: {why}")
    if retrain is None:
        return _by_the_rule(new, held, [m for m in measures if m.same_split(held) or m == held])
    alike = [m for m in measures if m.alike(new) or m == new]
    best = max(alike, key=Measure.rank)  # the challenger: the best measured as `new` was
    if best.version == held.version:
        won = _challenge_of(current.tags) if new.version == held.version else None
        if won is not None and won["result"] == "won":  # deciding again on a challenge's winner: that decision
            return Decision(held.version, False, _challenge_decision(held.version, won["champion"], won).why)
        return Decision(held.version, False, f"the champion stays: {held.describe()} is the best measured this way")
    if best.alike(held):  # the champion is among those measured alike, so the best of them is above it
        return Decision(best.version, True, f"version {best.version} is the champion: {best.describe()} beats "
                                            f"{held.describe()} (same {held.where()}, measured alike)")
    result = _recorded_challenge(versions, best.version, held.version)
    if result is None:
        challenger = next(v for v in versions if str(v.version) == best.version)
        result = challenge(client, challenger, current, retrain, n_seeds)
    return _challenge_decision(best.version, held.version, result)


def _by_the_rule(new: Measure, held: Measure, on_split: list[Measure]) -> Decision:
    """Without a challenge: the best by the rule's order among the versions on the champion's split (`on_split`);
    a version of another split leaves the alias where it is."""
    best = max(on_split, key=Measure.rank)
    if best.version != held.version:
        how = "measured alike" if best.alike(held) else "a mean over new seeds ranks above a single draw"
        return Decision(best.version, True, f"version {best.version} is the champion: {best.describe()} beats "
                                            f"{held.describe()} (same {held.where()}, {how})")
    if new.same_split(held) or new == held:
        return Decision(held.version, False, f"the champion stays: {held.describe()} is the best on its split by "
                                             "the rule (a mean over new seeds first, then H)")
    return Decision(held.version, False, f"the champion stays: {new.describe()} was measured on {new.where()}, the "
                                         f"champion's {held.describe()} on {held.where()}, so their H cannot be "
                                         "compared; a challenge would decide (--challenge-seeds N)")


def challenge_split(a: Measure, b: Measure) -> int:
    """The validation split a challenge of `a` against `b` retrains on: theirs when they share one, else the
    smallest split seed neither was chosen on."""
    if a.same_split(b):
        return a.split_seed
    used = {a.split_seed, b.split_seed}
    return next(seed for seed in range(len(used) + 1) if seed not in used)


def challenge(client: MlflowClient, challenger: ModelVersion, champion: ModelVersion, retrain: Retrain,
              n_seeds: int) -> dict:
    """Retrain both versions' configs with the same `n_seeds` fresh seeds on one validation split (all fits in
    one `retrain` call, so they run in parallel where it can) and compare their H seed by seed. The result is
    written to both versions' tags (`challenge.*` on the challenger, `challenged_by.<version>` on the champion)."""
    a, b = Measure.of(challenger), Measure.of(champion)
    split_seed, seeds = challenge_split(a, b), [CHALLENGE_SEED + i for i in range(n_seeds)]
    mine, theirs = trained_config(client, challenger), trained_config(client, champion)
    h = retrain([{**mine, "seed": s} for s in seeds] + [{**theirs, "seed": s} for s in seeds], split_seed)
    ours, held = h[:n_seeds], h[n_seeds:]
    difference, standard_error = paired_difference(ours, held)
    result = {"champion": str(champion.version), "result": "won" if difference > 0 else "lost",
              "mean_h": statistics.fmean(ours), "champion_mean_h": statistics.fmean(held),
              "difference": difference, "difference_se": standard_error,
              "seeds": ",".join(map(str, seeds)), "split_seed": split_seed}
    for key, value in result.items():
        client.set_model_version_tag(challenger.name, challenger.version, f"challenge.{key}", str(value))
    kept = "kept" if result["result"] == "lost" else "lost"
    client.set_model_version_tag(champion.name, champion.version, f"challenged_by.{challenger.version}",
                                 f"{kept}: mean val H {100 * result['champion_mean_h']:.2f} against "
                                 f"{100 * result['mean_h']:.2f} over seeds {result['seeds']}, split seed {split_seed}")
    return result


def _recorded_challenge(versions: list[ModelVersion], challenger: str, champion: str) -> dict | None:
    """The result of an earlier challenge of `challenger` against `champion`, from the challenger's tags."""
    result = _challenge_of(next(v.tags for v in versions if str(v.version) == challenger))
    return result if result is not None and result["champion"] == champion else None


def _challenge_of(tags: dict[str, str]) -> dict | None:
    """The result of the challenge a version's tags record (`challenge` wrote them), or None."""
    if "challenge.result" not in tags:
        return None
    out = {k.removeprefix("challenge."): v for k, v in tags.items() if k.startswith("challenge.")}
    for key in ("mean_h", "champion_mean_h", "difference", "difference_se"):
        out[key] = float(out[key])
    out["split_seed"] = int(out["split_seed"])
    return out


def _challenge_decision(challenger: str, champion: str, result: dict) -> Decision:
    n = len(result["seeds"].split(","))
    means = (f"mean val H {100 * result['mean_h']:.2f} against {100 * result['champion_mean_h']:.2f} over {n} "
             f"fresh seed{'s' * (n > 1)} on split seed {result['split_seed']} (paired difference "
             f"{100 * result['difference']:+.2f} ± {100 * result['difference_se']:.2f})")
    if result["result"] == "won":
        return Decision(challenger, True, f"version {challenger} is the champion: it won its challenge against "
                                          f"version {champion}, {means}", result)
    return Decision(champion, False, f"the champion stays: version {challenger} lost its challenge against "
                                     f"version {champion}, {means}", result)


def _record(client: MlflowClient, name: str, version: str, decision: Decision) -> None:
    """The decision on the version (`champion_decision`) and on its search's parent run."""
    client.set_model_version_tag(name, version, "champion_decision", decision.why)
    parent = client.get_model_version(name, version).tags.get("parent_run_id")
    if parent is None:
        return
    client.set_tag(parent, DECISION_TAG, decision.why)
    if decision.challenge is not None:
        for key in ("mean_h", "champion_mean_h", "difference"):
            client.log_metric(parent, f"challenge_{key}", float(decision.challenge[key]))
