"""MLflow answers a search a page at a time: a store with more trial runs, searches or model versions than one page
holds is read whole by sync (closing a search's open trial runs), report, promote and reproduce.

The store is built directly with MlflowClient on sqlite; the page is made small (tracking.paging.PAGE_SIZE) so that
a few runs span several pages, and the source is checked for MLflow searches that bypass the pager."""

import ast

import pytest
from mlflow import MlflowClient
from test_layout import modules

from tracking import Tracker, paging
from tracking.report import comparison_table
from tracking.reproduce import resolve

N = 8  # runs or versions of each kind: three pages of 3


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(paging, "PAGE_SIZE", 3)


def test_every_trial_run_search_and_version_is_found_past_the_first_page(tmp_path, small_pages):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "izf-paged")
    parent = tracker.start("search-0", str(tmp_path / "rr" / "paged" / "search-0"), {"dataset": "paged"})
    for i in range(N):
        tracker.trial_run(f"trial-{i}", {"lr": i}, {})
    # An interrupted search closes every trial run it left open (what tracking.sync does at a search's end).
    assert len(tracker.open_trial_runs()) == N
    tracker.end("interrupted")
    client = MlflowClient(uri, uri)
    children = paging.every_run(client, [tracker.experiment_id()], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(children) == N and {r.info.status for r in children} == {"KILLED"}
    # A replay (tracking.sync) reads the trial runs in one paged search: every one, and how it ended. A run MLflow
    # holds as ended is not reopened by the replayed trial start; an end that differs is written.
    replay = Tracker(uri, "izf-paged")
    replay.start("search-0", str(tmp_path / "rr" / "paged" / "search-0"), {}, reopen=False)
    replay.read_trial_runs()
    assert set(replay.trial_runs) == {f"trial-{i}" for i in range(N)}
    assert set(replay.ended_as.values()) == {("KILLED", "interrupted")}
    replay.trial_run(f"trial-{N - 1}", {"lr": N - 1}, {})
    replay.end_trial(f"trial-{N - 2}", "completed")
    status = {r.data.tags["izf.trial_id"]: r.info.status for r in paging.every_run(
        client, [tracker.experiment_id()], f"tags.`mlflow.parentRunId` = '{parent}'")}
    assert (status[f"trial-{N - 1}"], status[f"trial-{N - 2}"]) == ("KILLED", "FINISHED")
    assert replay.added["trials"] == 0
    # The searches of an experiment (tracking.report --experiment): every parent run.
    for i in range(1, N):
        Tracker(uri, "izf-paged").start(f"search-{i}", str(tmp_path / "rr" / "paged" / f"search-{i}"), {})
    assert len(comparison_table(tracker)) == N
    # The versions of a model (promote, the champion rule, reproduce): the one of a parent run is found on any page.
    client.create_registered_model("izf-paged")
    for i in range(N):
        client.create_model_version("izf-paged", "file:///nowhere", tags={"parent_run_id": parent if i == 1 else "x"})
    assert len(paging.every_version(client, "name = 'izf-paged'")) == N
    version, found = resolve(client, parent)
    assert (str(version.version), found) == ("2", parent)


def test_mlflow_searches_go_through_the_pager_or_ask_for_a_bounded_top():
    """A search_runs or search_model_versions call outside tracking/paging.py reads one page only: it must say how
    many it wants (max_results), as a lookup of one run or of the top K does."""
    unpaged = []
    for package in ("tracking", "search", "record", "izf"):
        for path, tree in modules(package).items():
            if path == "tracking/paging.py":
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        node.func.attr in ("search_runs", "search_model_versions") and \
                        "max_results" not in {k.arg for k in node.keywords}:
                    unpaged.append(f"{path}:{node.lineno}")
    assert not unpaged, f"MLflow searches that read only the first page: {unpaged}; use tracking.paging"
