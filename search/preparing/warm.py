"""Warm start: the best points of an earlier search, fitted into this search's space and evaluated first.

The earlier search may have run on another dataset (other feature and attribute dims, so other ranges) or
with an older space. Each of its points is answered question by question: a value within the range asked
stays, one outside is clipped into it, a categorical takes its value if it is a choice (else the nearest
numeric choice, else the first), and a question the earlier point has no answer for takes this search's
base point's answer. Ray's OptunaSearch enqueues the fitted points as the study's first trials, so the
sampler learns from their results on this dataset as from any trial's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from izf.errors import ConfigError, IZFError, first_line
from record import SearchRecord
from record.study import JOURNAL, JOURNAL_FILE, journal_path, open_storage, quiet_optuna
from search.preparing.answering import AnsweringTrial
from search.preparing.space import Dims

__all__ = ["warm_start_points", "fitted_points", "study_points", "parse_param", "SOURCE_ATTRIBUTES"]

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
        trial = AnsweringTrial({**base, **values, **fixed})
        space_fn(trial, dims)
        if trial.params not in out:
            out.append(trial.params)
    return out


def study_points(url: str, top: int) -> list[dict]:
    """The sampled values of the `top` best finished trials of an Optuna study, best first.

    `url` is the study's storage (journal:///abs/optuna.journal, sqlite:////abs/optuna.db, postgresql://...),
    with `#study-name` after it when the storage holds more than one study."""
    import optuna

    storage, _, name = url.partition("#")
    file = journal_path(storage) or (storage.removeprefix("sqlite:///") if storage.startswith("sqlite:///") else None)
    if file is not None and not Path(file).is_file():
        raise ConfigError(f"--warm-start {url}: no such file {file} (a study is read, never created)")
    try:
        with quiet_optuna():
            storage = open_storage(storage)
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
                          f"{first_line(e)})") from None
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.values
                and math.isfinite(t.values[0])]
    finished.sort(key=lambda t: t.values[0], reverse=True)  # the first objective: validation H
    return [dict(t.params) for t in finished[:top]]


def warm_start_points(source: str, top: int, from_mlflow: Callable[[str, int], list[dict]]) -> list[dict]:
    """The best points of the earlier search `source` names (see --warm-start), best first: a search's folder or
    its optuna.journal (or an older search's sqlite optuna.db), an Optuna storage URL, else an MLflow experiment,
    whose `top` best trials' sampled values (as text, with `attribute_dim` where known) `from_mlflow(experiment,
    top)` reads (tracking.earlier)."""
    path, attributes = Path(source).expanduser(), None
    if path.is_dir() and ((path / JOURNAL_FILE).is_file() or (path / "optuna.db").is_file()):
        path = path / JOURNAL_FILE if (path / JOURNAL_FILE).is_file() else path / "optuna.db"
    if path.is_file():
        kind = JOURNAL if path.suffix == ".journal" else "sqlite:///"
        source, attributes = f"{kind}{path.resolve()}", _attribute_dim(path.parent)
    elif path.is_dir():
        raise ConfigError(f"--warm-start {source}: no {JOURNAL_FILE} or optuna.db in that folder; name a search's "
                          f"folder (<storage>/<name>/<search id>) or its {JOURNAL_FILE}")
    elif "/" in source and "://" not in source:
        raise ConfigError(f"--warm-start {source}: no such folder or file")
    if "://" in source:
        points = [{**p, SOURCE_ATTRIBUTES: attributes} if attributes else p for p in study_points(source, top)]
        where = f"the Optuna study at {source}"
    else:
        points = [{k: parse_param(v) for k, v in p.items()} for p in from_mlflow(source, top)]
        points = [{**{k: v for k, v in p.items() if k != "attribute_dim"}, SOURCE_ATTRIBUTES: p["attribute_dim"]}
                  if "attribute_dim" in p else p for p in points]
        where = f"MLflow experiment {source!r}"
    if not points:
        raise ConfigError(f"--warm-start {source}: {where} has no finished trials to start from; name a search "
                          "folder, its optuna.journal, an Optuna storage URL or an MLflow experiment with trials")
    return points


def _attribute_dim(folder: Path) -> int | None:
    """The attribute dimension a search folder's record names (None: no record, or an older one)."""
    try:
        record = SearchRecord.load(str(folder.resolve()))
    except IZFError:
        return None
    return None if record is None else record["description"].get("attribute_dim")
