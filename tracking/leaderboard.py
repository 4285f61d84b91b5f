"""The leaderboard: per dataset, the registry's champion measured honestly on test, beside the published numbers.

Our columns come from MLflow alone (the champion version of `izf-<dataset>` and its search's parent run);
the published ones from tracking/published.toml, which is data: correct or extend it there.
"""

import html
from dataclasses import dataclass
from pathlib import Path

import tomllib
from mlflow import MlflowClient

from izf.data import GZSL_BENCHMARKS
from tracking.model import CHAMPION, model_name

__all__ = ["Champion", "champions", "leaderboard_rows", "to_markdown", "to_html", "published", "PUBLISHED"]

PUBLISHED = Path(__file__).with_name("published.toml")
PREFIX = model_name("")  # "izf-": every dataset's registered model is izf-<dataset>
COLUMNS = ("dataset", "U", "S", "H", "ZSL T1", "seeds", "val H", "MLflow run", "IZF published U / S / H",
           "IZF published T1", "best later H")


@dataclass
class Champion:
    """A dataset's champion: its model version and the test metrics of its search's parent run."""

    dataset: str
    version: str
    run_id: str
    experiment_id: str
    metrics: dict  # the parent run's: test_softmax_u, test_softmax_u_std, ..., val_best_h
    final_seeds: int


def published(path: Path = PUBLISHED) -> dict:
    """published.toml as read: the published numbers per dataset and method, and where they come from."""
    with open(path, "rb") as f:
        return tomllib.load(f)


def champions(client: MlflowClient, datasets: list[str] | None = None) -> list[Champion]:
    """The champion of each dataset (all registered izf-<dataset> models with a champion when `datasets` is
    None: the GZSL five first, in the literature's order, then the rest by name). A dataset without one is left
    out."""
    if datasets is None:
        names = [m.name for m in client.search_registered_models() if m.name.startswith(PREFIX)]
        found = [n.removeprefix(PREFIX) for n in names]
        datasets = [d for d in GZSL_BENCHMARKS if d in found] + sorted(d for d in found if d not in GZSL_BENCHMARKS)
    out = []
    for dataset in datasets:
        try:
            version = client.get_model_version_by_alias(model_name(dataset), CHAMPION)
        except Exception:  # noqa: BLE001 - MLflow raises its own RestException / MlflowException for "no such"
            continue
        run = client.get_run(version.tags["parent_run_id"])
        out.append(Champion(dataset, version.version, run.info.run_id, run.info.experiment_id, run.data.metrics,
                            int(run.data.params.get("final_seeds", 1))))
    return out


def _percent(metrics: dict, key: str, seeds: int) -> str:
    if key not in metrics:
        return "—"
    value = f"{100 * metrics[key]:.1f}"
    spread = metrics.get(f"{key}_std")
    return f"{value} ± {100 * spread:.1f}" if seeds > 1 and spread is not None else value


def leaderboard_rows(found: list[Champion], numbers: dict, ui_url: str | None = None) -> list[dict]:
    """One row per champion (cells as text, percentages with one decimal); `ui_url` (the MLflow UI's address)
    makes the run a link."""
    rows = []
    for c in found:
        m, paper, best = c.metrics, numbers.get("izf", {}).get(c.dataset), numbers.get("best", {}).get(c.dataset)
        link = f"{ui_url.rstrip('/')}/#/experiments/{c.experiment_id}/runs/{c.run_id}" if ui_url else None
        rows.append({
            "dataset": c.dataset, "U": _percent(m, "test_softmax_u", c.final_seeds),
            "S": _percent(m, "test_softmax_s", c.final_seeds), "H": _percent(m, "test_softmax_h", c.final_seeds),
            "ZSL T1": _percent(m, "test_softmax_zsl_t1", c.final_seeds), "seeds": str(c.final_seeds),
            "val H": _percent(m, "val_best_h", 1),
            "MLflow run": (c.run_id[:8], link),
            "IZF published U / S / H": " / ".join(_published(paper, k) for k in "ush") if paper else "—",
            "IZF published T1": _published(paper, "zsl_t1") if paper and "zsl_t1" in paper else "—",
            "best later H": f"{best['h']} ({best['method']})" if best else "—",
        })
    return rows


def _published(paper: dict, key: str) -> str:
    """A published number, marked † where it is recalled and ‡ where derived (published.toml's `unverified`)."""
    return f"{paper[key]}" + ("†" if key in paper.get("recalled", ()) else "") + \
        ("‡" if key in paper.get("derived", ()) else "")


def _cell(value: object, markdown: bool) -> str:
    if isinstance(value, tuple):  # (text, link or None)
        text, link = value
        if link is None:
            return text
        return f"[{text}]({link})" if markdown else f'<a href="{html.escape(link)}">{html.escape(text)}</a>'
    return str(value) if markdown else html.escape(str(value))


def _notes(numbers: dict) -> list[str]:
    protocol = numbers.get("protocol", {})
    return [protocol[k] for k in ("ours", "izf", "unverified", "best") if k in protocol]


def to_markdown(rows: list[dict], numbers: dict) -> str:
    """The leaderboard as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r[c], True) for c in COLUMNS) + " |" for r in rows]
    return "\n".join([*lines, "", *(f"{note}\n" for note in _notes(numbers))]).rstrip() + "\n"


def to_html(rows: list[dict], numbers: dict) -> str:
    """The leaderboard as a standalone HTML page."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r[c], False)}</td>" for c in COLUMNS) + "</tr>\n" for r in rows)
    notes = "".join(f"<p>{html.escape(n)}</p>\n" for n in _notes(numbers))
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
             "p{max-width:60em;color:#444}")
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>IZF leaderboard</title><style>{style}"
            f"</style></head>\n<body><h1>IZF leaderboard</h1>\n<table><thead><tr>{head}</tr></thead><tbody>\n{body}"
            f"</tbody></table>\n{notes}</body></html>\n")
