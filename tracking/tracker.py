"""One search's MLflow bookkeeping, from the driver only: a parent run and one child run per trial.

Every call is safe: when the tracking server cannot be reached, the search goes on, the failure is
counted and warned about once, and `python -m tracking.sync` can write what is missing later.
"""

import fcntl
import json
import logging
import math
import os
import re
import time
from pathlib import Path

import requests
import sqlalchemy.exc
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from izf.errors import ConfigError, first_line
from tracking.paging import every_run

__all__ = ["Tracker", "default_tracking_uri", "require_store", "metrics_of", "NOISE_KEYS"]

log = logging.getLogger(__name__)
PARENT_TAG, TRIAL_TAG, OUTCOME_TAG = "izf.experiment_path", "izf.trial_id", "izf.outcome"
# role: search, trial, reevaluation or campaign
SEARCH_TAG, STATUS_TAG, ROLE_TAG = "izf.search_id", "izf.status", "izf.role"
# MLflow's kind of an experiment: ours are model training, not GenAI. (MLflow 3.17's UI opens an experiment on the
# view of its sidebar switch, not on the one this tag names: docs/tracking.md.)
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
OUTCOMES = {"completed": "FINISHED", "stopped_early": "KILLED", "failed": "FAILED", "lost": "KILLED",
            "interrupted": "KILLED"}
# A search's end, as the parent run's status and its izf.status tag.
SEARCH_ENDS = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
# Keys Tune adds to every result that are bookkeeping, not measurements.
NOISE_KEYS = {"timestamp", "pid", "time_this_iter_s", "time_total_s", "time_since_restore", "training_iteration",
              "iterations_since_restore", "done", "step", "date", "hostname", "node_ip", "trial_id",
              "checkpoint_dir_name", "should_checkpoint", "experiment_tag"}
MAX_PARAM_LENGTH = 6000
# What an unreachable or failing store raises: MLflow's own errors (its REST client wraps HTTP failures in
# them), connection and file errors, requests' errors, and the database's (sqlite "database is locked").
OUTAGE_ERRORS = (MlflowException, OSError, requests.RequestException, sqlalchemy.exc.SQLAlchemyError)
URI_USAGE = "use sqlite:////abs/path/mlflow.db (the default: ./mlflow.db) or http://host:5000 (a shared server)"
RETRY_AFTER_S = 60.0  # after a failure, skip MLflow calls this long instead of waiting on each one
# MLflow's own HTTP retries back off for minutes; a search should not stall that long on a dead server.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
                 # a progress bar per model logged or loaded is noise in a search's console
                 "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else a sqlite store `mlflow.db` in the current folder (no server needed)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def require_store(uri: str, flag: str = "--mlflow-uri") -> None:
    """A command that only reads must not create a store: a sqlite file that is not there is an error."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"no MLflow store at {uri.removeprefix('sqlite:///')} ({flag} {uri}); run a search "
                          f"first, or give the store's URI with {flag}")


def metrics_of(result: dict) -> dict[str, float]:
    """The numeric measurements of one Tune result (noise keys and non-finite values dropped)."""
    out = {}
    for key, value in result.items():
        if key in NOISE_KEYS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def param_text(value: object) -> str:
    """A parameter as MLflow keeps it: text, lists and dicts as JSON, whether they came from a live search
    (tuples) or from its files (lists), so that the two record the same."""
    text = json.dumps(list(value) if isinstance(value, tuple) else value, default=str) \
        if isinstance(value, list | tuple | dict) else str(value)
    return text[:MAX_PARAM_LENGTH]


class Tracker:
    """MLflow runs of one search: `start` the parent, then trial runs, then `finish`."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.uri, self.experiment = uri, experiment
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self.parent_id: str | None = None
        self.trial_runs: dict[str, str] = {}
        self.new_parent = False  # the parent run was created by this tracker: no trial run of it exists elsewhere
        self.logged_steps: dict[str, set[int]] = {}
        self.ended_as: dict[str, tuple[str, str | None]] = {}  # trial id -> (run status, outcome tag) as read back
        self.failures = 0
        self.added = {"trials": 0, "metric_steps": 0}  # trial runs created and report steps logged here
        self.offline_until = 0.0
        self.search_folder: str | None = None  # the search's Ray folder, named in the outage message
        self.search_id: str | None = None
        self.ended: str | None = None  # how `end` last ended the parent run
        self.dataset_input: DatasetInput | None = None  # logged on each new run (use_dataset)
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # not "Creating initial MLflow database tables..."

    @property
    def client(self) -> MlflowClient:
        """The MLflow client of the tracking store."""
        if self._client is None:
            self.connect()
        return self._client

    def connect(self) -> None:
        """Check the URI before a search starts (raises ConfigError), and create a new sqlite store's tables
        under a file lock: two drivers creating the same store at once would both run its migrations."""
        if not self.uri.startswith("sqlite:///"):
            if not self.uri.startswith(("http://", "https://", "databricks", "postgresql", "mysql", "mssql")):
                raise ConfigError(f"--mlflow-uri {self.uri}: not a tracking store MLflow serves here; {URI_USAGE}")
            try:
                self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            except MlflowException as e:
                raise ConfigError(f"--mlflow-uri {self.uri}: {first_line(e)}; {URI_USAGE}") from None
            if self.uri.startswith(("http://", "https://")):
                self._check_server()
            return
        database = Path(self.uri.removeprefix("sqlite:///"))
        if not database.parent.is_dir():
            raise ConfigError(f"--mlflow-uri {self.uri}: the folder {database.parent} does not exist")
        with open(database.with_name(database.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)  # creates the tables
                client.search_registered_models(max_results=1)
            except MlflowException as e:
                raise ConfigError(f"--mlflow-uri {self.uri}: {first_line(e)}") from None
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._client = client

    def _check_server(self) -> None:
        """A tracking server must answer a read before the search starts: one that is down, refuses these
        credentials or fails (HTTP 500, e.g. its database is gone) is named now, not after the trials."""
        try:
            self._client.search_experiments(max_results=1)
        except MlflowException as e:
            status = getattr(e, "get_http_status_code", lambda: None)()
            text = first_line(e)
            retried = re.search(r"too many (\d{3}) error responses", str(e))  # MLflow retries 5xx answers
            if retried:
                why = f"the server answered HTTP {retried.group(1)} (an error of its own: see its log)"
            elif any(s in str(e) for s in ("Connection refused", "NewConnectionError", "Max retries exceeded")):
                why = "no MLflow server answers there (start it, or run with --no-tracking and record later with " \
                      "python -m tracking.sync)"
            elif status in (401, 403) or " 401" in text or " 403" in text:
                why = "the server refused these credentials (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
            elif status:
                why = f"the server answered HTTP {status} ({text}); see its log"
            else:
                why = f"the server failed to answer ({text}); see its log"
            raise ConfigError(f"--mlflow-uri {self.uri}: {why}") from None

    def safe(self, what: str, fn: "callable", *args: object, **kwargs: object) -> object:
        """fn(*args, **kwargs), or None when MLflow cannot be reached or refuses (counted, warned about once,
        and no MLflow call for the next minute). An outage must not stop a search; a bug in our own code
        (a TypeError, say) is not an outage and is raised."""
        if time.monotonic() < self.offline_until:
            self.failures += 1
            return None
        try:
            return fn(*args, **kwargs)
        except OUTAGE_ERRORS as e:
            self.failures += 1
            self.offline_until = time.monotonic() + RETRY_AFTER_S
            if self.failures == 1:
                log.warning("MLflow at %s failed (%s: %s); the search goes on. Once it is back, run: "
                            "python -m tracking.sync %s", self.uri, what, first_line(e), self.sync_target)
            return None

    @property
    def sync_target(self) -> str:
        """What to hand `python -m tracking.sync` to write what MLflow missed."""
        return self.search_folder or "<the search's folder, printed when it started>"

    def experiment_id(self) -> str:
        """The experiment's id, created on first use."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                location = None
                if self.uri.startswith("sqlite:///"):  # a trial's cwd is its trial dir: be explicit
                    location = (Path(self.uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
                try:
                    self._experiment_id = self.client.create_experiment(self.experiment, artifact_location=location,
                                                                        tags={KIND_TAG: KIND})
                    return self._experiment_id
                except MlflowException as e:  # another driver created it first
                    if e.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    found = self.client.get_experiment_by_name(self.experiment)
            self._experiment_id = found.experiment_id
            if KIND_TAG not in found.tags:  # created before the kind was set, or by someone else
                self.client.set_experiment_tag(self._experiment_id, KIND_TAG, KIND)
        return self._experiment_id

    def use_dataset(self, name: str, checksum: str, source: str) -> None:
        """The benchmark the search's runs train on, logged as each new run's dataset input (the runs table's
        Dataset column): its name, the first 16 characters of its checksum as the digest, where it came from."""
        dataset = Dataset(name=name, digest=checksum[:16], source_type="local", source=json.dumps({"uri": source}))
        self.dataset_input = DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])

    def find_run(self, **tags: str) -> str | None:
        """The run with these tags, None where there is none."""
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = self.client.search_runs([self.experiment_id()], filter_string=query, max_results=1)
        return runs[0].info.run_id if runs else None

    def knows_search(self, search_id: str) -> bool:
        """Whether the store holds this search's parent run (a store that was replaced or moved does not)."""
        return self.find_run(**{SEARCH_TAG: search_id, ROLE_TAG: "search"}) is not None

    def start(self, search_id: str, experiment_path: str, params: dict, tags: dict | None = None, *,
              reopen: bool = True, role: str = "search") -> str | None:
        """Create the search's parent run, or find the one of the same search id (and mark it running again
        for a resumed search, `reopen`). A new search never finds another search's run. (role "campaign":
        a campaign's run, search_id its campaign id.)"""
        self.search_folder, self.search_id, self.ended, self.new_parent = experiment_path, search_id, None, False

        def start() -> str:
            run_id = self.find_run(**{SEARCH_TAG: search_id, ROLE_TAG: role})
            if run_id is None:
                name = f"{Path(experiment_path).parent.name} {search_id}"
                run = self.client.create_run(self.experiment_id(), run_name=name, tags={
                    SEARCH_TAG: search_id, ROLE_TAG: role, PARENT_TAG: experiment_path, STATUS_TAG: "running",
                    **(tags or {})})
                run_id = run.info.run_id
                self.client.log_batch(run_id, params=[Param(k, param_text(v)) for k, v in params.items()])
                self._log_dataset(run_id)
                self.new_parent = True
            elif reopen:
                self.client.set_tag(run_id, STATUS_TAG, "running")
                self.client.update_run(run_id, status="RUNNING")
            return run_id

        self.parent_id = self.safe("start", start)
        return self.parent_id

    def trial_run(self, trial_id: str, params: dict, tags: dict, *, reopen: bool = True) -> str | None:
        """The child run of a trial; a retried or resumed trial gets its own run back, never a second one."""
        def open_run() -> str:
            run_id = self.trial_runs.get(trial_id)
            if run_id is None and not self.new_parent:  # an earlier driver of the search may have opened it
                run_id = self.find_run(**{TRIAL_TAG: trial_id, "mlflow.parentRunId": self.parent_id})
            if run_id is None:
                run = self.client.create_run(self.experiment_id(), run_name=f"trial_{trial_id}", tags={
                    TRIAL_TAG: trial_id, SEARCH_TAG: self.search_id, ROLE_TAG: "trial",
                    "mlflow.parentRunId": self.parent_id, **tags})
                run_id = run.info.run_id
                self.added["trials"] += 1
                self.client.log_batch(run_id, params=[Param(k, param_text(v)) for k, v in params.items()])
                self._log_dataset(run_id)
            else:
                if reopen and trial_id not in self.ended_as:
                    self.client.update_run(run_id, status="RUNNING")
                history = self.client.get_metric_history(run_id, "step_logged")
                self.logged_steps[trial_id] = {int(m.value) for m in history}
            self.trial_runs[trial_id] = run_id
            return run_id

        if self.parent_id is None:
            return None
        return self.safe("trial_run", open_run)

    def _log_dataset(self, run_id: str) -> None:
        if self.dataset_input is None:
            return
        try:
            self.client.log_inputs(run_id, datasets=[self.dataset_input])
        except MlflowException as e:
            # MLflow's store adds the dataset's row where there is none, a look then an insert: two runs logging a
            # new dataset at once (two drivers on a team's server) both insert, and one fails on the row's key
            # (PostgreSQL's "dataset_pk"; 2 of 7 runs of test_team's two searches). The store, local or behind a
            # server, answers a database's refusal as BAD_REQUEST, and the row is there now. (Not after an outage:
            # that is not answered as a bad request.)
            if e.error_code != "BAD_REQUEST":
                raise
            self.client.log_inputs(run_id, datasets=[self.dataset_input])

    def log_result(self, trial_id: str, result: dict) -> None:
        """Log one report as step-indexed metrics; a step this run already has (a retried trial that
        resumed from an earlier checkpoint reports it again) is not logged twice."""
        run_id = self.trial_runs.get(trial_id)
        if run_id is None:
            return
        now, step = int(time.time() * 1000), int(result.get("step", result.get("training_iteration", 0)))
        logged = self.logged_steps.setdefault(trial_id, set())
        if step in logged:
            return
        metrics = [Metric(k, v, now, step) for k, v in metrics_of(result).items()]
        metrics.append(Metric("step_logged", float(step), now, step))
        tags = [RunTag(k, str(result[k])) for k in ("node_ip", "hostname") if k in result]
        def log() -> bool:
            self.client.log_batch(run_id, metrics=metrics, tags=tags)
            return True

        if self.safe("log_result", log):
            logged.add(step)
            self.added["metric_steps"] += 1

    def _trial_runs_of_parent(self, what: str, only_running: bool = False) -> list:
        """The parent's trial runs (those still RUNNING), every page; [] when MLflow cannot be reached."""
        where = f"tags.`mlflow.parentRunId` = '{self.parent_id}'" + (" and attributes.status = 'RUNNING'"
                                                                     if only_running else "")
        runs = self.safe(what, lambda: every_run(self.client, [self.experiment_id()], where)) or []
        return [r for r in runs if TRIAL_TAG in r.data.tags]

    def open_trial_runs(self) -> dict[str, str]:
        """Trial id -> run id of this search's trial runs still marked RUNNING (this driver's or an earlier one's)."""
        if self.parent_id is None:
            return {}
        found = {r.data.tags[TRIAL_TAG]: r.info.run_id for r in self._trial_runs_of_parent("open_trial_runs",
                                                                                          only_running=True)}
        self.trial_runs.update(found)
        return found

    def read_trial_runs(self) -> None:
        """Every trial run of the parent and how it ended, in one paged search instead of a lookup a trial: for
        `tracking.sync`, which replays the whole search. A run read back as ended is not reopened by `trial_run`,
        and one that ended as a replayed `end_trial` says is not written again."""
        if self.parent_id is None or self.new_parent:
            return
        for run in self._trial_runs_of_parent("read_trial_runs"):
            trial_id = run.data.tags[TRIAL_TAG]
            self.trial_runs[trial_id] = run.info.run_id
            if run.info.status != "RUNNING":
                self.ended_as[trial_id] = (run.info.status, run.data.tags.get(OUTCOME_TAG))

    def end_trial(self, trial_id: str, outcome: str) -> None:
        """outcome: "completed", "stopped_early" (by the scheduler or the time budget), "failed", "interrupted"
        (the search was stopped; a resume continues the trial and its run), or "lost" (a run opened for a
        trial that the search never finished: the driver died before Tune saved it)."""
        run_id = self.trial_runs.get(trial_id)
        if run_id is None and self.parent_id is not None:  # a trial an earlier driver of this search started
            tags = {TRIAL_TAG: trial_id, "mlflow.parentRunId": self.parent_id}
            run_id = self.safe("end_trial", self.find_run, **tags)
        if run_id is None:
            return
        self.trial_runs[trial_id] = run_id
        status = OUTCOMES[outcome]
        if self.ended_as.get(trial_id) == (status, outcome):
            return
        self.ended_as.pop(trial_id, None)
        self.safe("end_trial", self.client.set_tag, run_id, OUTCOME_TAG, outcome)
        self.safe("end_trial", self.client.set_terminated, run_id, status)

    def log_metrics(self, metrics: dict) -> None:
        """Log the search's final metrics on its parent run (step 0; the newest value of a name is shown)."""
        if self.parent_id is None:
            return
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if math.isfinite(float(v))]
        self.safe("final metrics", self.client.log_batch, self.parent_id, metrics=batch)

    def end(self, how: str, message: str = "") -> None:
        """End the parent run: "finished", "interrupted" (KILLED; the search can be resumed) or "failed".
        Trial runs still open are closed as interrupted first (a resumed search reopens them). A search that
        finished stays finished: a signal while its champion is decided does not make it interrupted."""
        if self.parent_id is None or (self.ended == "finished" and how != "finished"):
            return
        self.ended = how
        if how != "finished":
            for trial_id in self.open_trial_runs():
                self.end_trial(trial_id, "interrupted")
        tags = [RunTag(STATUS_TAG, how)] + ([RunTag("izf.error", message[:MAX_PARAM_LENGTH])] if message else [])
        self.safe("end", self.client.log_batch, self.parent_id, tags=tags)
        self.safe("end", self.client.set_terminated, self.parent_id, SEARCH_ENDS[how])
