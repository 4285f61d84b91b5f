"""Warm start: the best points of an earlier search, fitted into this search's space and evaluated first.

The earlier search may have run on another dataset (other feature and attribute dims, so other ranges) or
with an older space. Each of its points is answered question by question: a value within the range asked
stays, one outside is clipped into it, a categorical takes its value if it is a choice (else the nearest
numeric choice, else the first), and a question the earlier point has no answer for takes this search's
base point's answer. Ray's OptunaSearch enqueues the fitted points as the study's first trials, so the
sampler learns from their results on this dataset as from any trial's.
"""

import math
from collections.abc import Callable
from pathlib import Path

from izf.errors import ConfigError
from search.space import Dims

__all__ = ["fitted_points", "study_points", "parse_param", "SOURCE_ATTRIBUTES"]

SOURCE_ATTRIBUTES = "@attribute_dim"  # in an earlier point: its search's attribute dimension (not a parameter)


def parse_param(text: str) -> object:
    """A parameter as MLflow keeps it (text) back to its value: '5' -> 5, '0.25' -> 0.25, 'True' -> True."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class _AnsweringTrial:
    """Answers a space's questions from `values`, each fitted into the range or choices asked; a question
    `values` has no answer for gets `fallback`'s (else the range's middle, or the first choice)."""

    def __init__(self, values: dict, fallback: dict) -> None:
        self.values, self.fallback = values, fallback
        self.params: dict = {}

    def _wanted(self, name: str) -> object:
        return self.values[name] if name in self.values else self.fallback.get(name)

    def _answer(self, name: str, value: object) -> object:
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: list) -> object:
        wanted = self._wanted(name)
        same_kind = [c for c in choices if type(c) is type(wanted) and c == wanted]
        if same_kind:
            return self._answer(name, same_kind[0])
        numeric = [c for c in choices if isinstance(c, int | float) and not isinstance(c, bool)]
        if isinstance(wanted, int | float) and not isinstance(wanted, bool) and numeric:
            return self._answer(name, min(numeric, key=lambda c: abs(c - wanted)))
        return self._answer(name, choices[0])

    def suggest_int(self, name: str, low: int, high: int, log: bool = False, **kwargs: object) -> int:
        return self._answer(name, min(max(int(round(self._number(name, low, high, log))), low), high))

    def suggest_float(self, name: str, low: float, high: float, log: bool = False, **kwargs: object) -> float:
        return self._answer(name, min(max(float(self._number(name, low, high, log)), low), high))

    def _number(self, name: str, low: float, high: float, log: bool) -> float:
        wanted = self._wanted(name)
        if isinstance(wanted, int | float) and not isinstance(wanted, bool) and math.isfinite(wanted):
            return wanted
        return math.sqrt(low * high) if log and low > 0 else (low + high) / 2


def fitted_points(space_fn: Callable, dims: Dims, earlier: list[dict], base: dict, fixed: dict) -> list[dict]:
    """Each earlier point as the point of this space nearest to it (see the module's text), `fixed` (--fix)
    values kept, duplicates dropped, in the earlier order.

    Two answers are translated first: `latent_split`, where the point says its search's attribute dimension
    (SOURCE_ATTRIBUTES), keeps its share of it (12 of 24 attributes becomes 51 of 102), not its count; and an
    `mmd_weight` of 0 from a space without the `use_mmd` switch is the MMD switched off (the ablation), not
    a weight to clip up to the range's lowest."""
    out: list[dict] = []
    for point in earlier:
        values = {k: v for k, v in point.items() if k != SOURCE_ATTRIBUTES}
        attributes = point.get(SOURCE_ATTRIBUTES)
        if attributes and isinstance(values.get("latent_split"), int | float):
            values["latent_split"] = round(values["latent_split"] * dims.attributes / attributes)
        if values.get("mmd_weight") == 0 and "use_mmd" not in values:
            values["use_mmd"] = False
        trial = _AnsweringTrial({**values, **fixed}, base)
        space_fn(trial, dims)
        if trial.params not in out:
            out.append(trial.params)
    return out


def study_points(url: str, top: int) -> list[dict]:
    """The sampled values of the `top` best finished trials of an Optuna study, best first.

    `url` is the study's storage (sqlite:////abs/optuna.db, postgresql://...), with `#study-name` after it
    when the storage holds more than one study."""
    import optuna

    storage, _, name = url.partition("#")
    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"--warm-start {url}: no such file {storage.removeprefix('sqlite:///')} (a study is read, "
                          "never created)")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        if not name:
            if len(names) != 1:
                raise ConfigError(f"--warm-start {url}: the storage holds {len(names)} studies "
                                  f"({', '.join(names) or 'none'}); name one as {storage}#<study name>")
            name = names[0]
        if name not in names:
            raise ConfigError(f"--warm-start {url}: no study {name!r} there; its studies: {', '.join(names)}")
        study = optuna.load_study(study_name=name, storage=storage)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - SQLAlchemy's and the database driver's own errors
        raise ConfigError(f"--warm-start {url}: cannot open the study ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None
    finally:
        optuna.logging.set_verbosity(verbosity)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.values
                and math.isfinite(t.values[0])]
    finished.sort(key=lambda t: t.values[0], reverse=True)  # the first objective: validation H
    return [dict(t.params) for t in finished[:top]]
