"""A campaign: one search per dataset, one after another on the same Ray cluster, and a record linking them.

    python search/run.py --dataset awa1,awa2,cub,sun,apy --address auto --num-samples 100
    python search/run.py --dataset all                  # the five GZSL benchmarks whose files are present
    python search/run.py --resume --name izf-campaign   # after Ctrl-C: the cut search resumes, the rest follow

The searches run one after another, not interleaved: each fills the cluster through its own
--max-concurrent trials, and its sampler and ASHA learn from its own trials only, so interleaving would
not make any of them better, only later; in sequence the first datasets' champions are ready early, and
a Ctrl-C cuts one search, which resumes as any search does. Each search is an ordinary one (its own name
izf-<dataset>, folder, Optuna study, MLflow experiment and registered model), run with the campaign's
settings; the campaign's record, `<storage>/<name>/<campaign id>/izf_campaign.json`, lists them.
A search that fails (every trial diverged, say) is recorded as failed and the campaign goes on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from izf.data import GZSL_BENCHMARKS, available, check_available, default_name
from izf.errors import ConfigError, IZFError
from record import CampaignRecord, campaigns_of, name_folder, new_search_id, now, searches_of
from search.options import SearchOptions
from search.preparing.identity import OpenedSearch, conflicting_options, open_search, resumed
from search.preparing.lease import name_lock

__all__ = ["campaign_datasets", "is_campaign", "open_campaign", "run_campaign", "print_campaign", "DEFAULT_NAME"]

DEFAULT_NAME = "izf-campaign"


def is_campaign(options: SearchOptions) -> bool:
    """--dataset a,b,c or all; or --resume of a name that holds campaigns (not searches)."""
    if "," in options.dataset or options.dataset.strip().lower() == "all":
        return True
    name = options.name
    return bool(options.resume and name) and not searches_of(options.storage_uri, name) and \
        bool(campaigns_of(options.storage_uri, name))


def campaign_datasets(text: str, data_root: str | None) -> list[str]:
    """The datasets of --dataset a,b,c (or all: the GZSL five whose files are present), each checked present."""
    if text.strip().lower() == "all":
        found = available(GZSL_BENCHMARKS, root=data_root)
        if not found:
            raise ConfigError(f"--dataset all: none of {', '.join(GZSL_BENCHMARKS)} has its files under "
                              f"{data_root or '$IZF_DATA (default ~/.cache/izf/data)'}; get them with python -m "
                              "izf.data download NAME, or name datasets: --dataset synthetic,synthetic-sun-small")
        return found
    names = [n.strip().lower() for n in text.split(",")]
    if "" in names or len(set(names)) != len(names):
        raise ConfigError(f"--dataset {text}: name each dataset once, separated by commas (e.g. awa2,cub,sun)")
    for name in names:
        check_available(name, root=data_root)
    return names


def open_campaign(options: SearchOptions, datasets: list[str] | None, given: dict) -> CampaignRecord:
    """A new campaign over `datasets` (its record written), or, with options.resume, the newest campaign of
    options.name (or the one with that id), whose settings cannot change."""
    name = options.name or DEFAULT_NAME
    if not options.resume:
        campaign_id = new_search_id()
        folder = f"{name_folder(options.storage_uri, name)}/{campaign_id}"
        record = CampaignRecord(folder, {
            "campaign_id": campaign_id, "name": name, "folder": folder, "status": "running",
            "started_at": now(), "resumed_at": [], "datasets": datasets,
            "options": dataclasses.replace(options, name=None, resume=False).to_record(), "searches": {}})
        record.save()
        return record
    record = resumed(campaigns_of(options.storage_uri, name), options.resume, "campaign_id")
    if record is None:
        which = "" if options.resume is True else f" with id {options.resume}"
        raise ConfigError(f"--resume: no campaign named {name!r}{which} under {options.storage_uri}; check --name "
                          "and --storage-path")
    conflicts = conflicting_options(SearchOptions.from_record(record["options"]), given)
    if conflicts:
        raise ConfigError(f"--resume continues campaign {record['campaign_id']} with the settings it was started "
                          f"with, so these cannot change: {'; '.join(conflicts)}; drop them")
    record.data["resumed_at"] = [*record.get("resumed_at", []), now()]
    record.mark("running", signal=None, error=None)
    return record


def run_campaign(options: SearchOptions, datasets: list[str] | None, given: dict,
                 search: Callable[[OpenedSearch, dict], dict], emit: Callable) -> CampaignRecord:
    """Start a campaign over `datasets` (or resume one: see open_campaign) and run each dataset's search in
    order with `search(opened, notes)` (the search opened: a new one, record None, or the one to
    resume), which returns the search's outcome (validation and test metrics, MLflow's parent run and
    version) or raises. A finished search is not run again. `emit(event, campaign=...)` is told
    campaign_started, search_ended (per dataset) and campaign_ended. One driver per campaign name at a time.
    Raises KeyboardInterrupt (the campaign is then marked interrupted) as a search does."""
    name = options.name or DEFAULT_NAME
    if datasets and name in {default_name(d) for d in datasets}:
        raise ConfigError(f"--name {name}: that is the name of one of the campaign's searches; name the campaign "
                          f"otherwise (default {DEFAULT_NAME})")
    lock = name_lock(name_folder(options.storage_uri, name))
    lock.acquire(f"a campaign of {name}")
    try:
        record = open_campaign(options, datasets, given)
        stored = SearchOptions.from_record(record["options"])
        runtime = {k: getattr(options, k) for k in ("address", "verbose")}
        emit("campaign_started", campaign=record.data)
        for dataset in record["datasets"]:
            entry = record["searches"].get(dataset, {})
            if entry.get("status") == "finished":
                continue
            one = dataclasses.replace(stored, **runtime, dataset=dataset, name=None,
                                      resume=entry.get("search_id") or False, search_id=None)
            opened = open_search(one)
            one = opened.options
            record["searches"][dataset] = entry = {"name": one.experiment_name, "search_id": one.search_id,
                                                   "folder": one.experiment_path, "status": "running"}
            record.save()
            notes = {"campaign": {"campaign_id": record["campaign_id"], "name": record["name"]}}
            try:
                entry.update(search(opened, notes), status="finished")
            except KeyboardInterrupt as e:
                entry["status"] = "interrupted"
                record.mark("interrupted", signal=getattr(e, "signal_name", "SIGINT"))
                emit("campaign_ended", campaign=record.data)
                raise
            except IZFError as e:
                entry.update(status="failed", error=str(e))
            except Exception as e:  # a bug, not the search's failure: the campaign stops, its record says why
                entry.update(status="failed", error=f"{type(e).__name__}: {e}")
                record.mark("failed", error=f"{dataset}: {entry['error']}")
                emit("campaign_ended", campaign=record.data)
                raise
            record.save()
            emit("search_ended", campaign=record.data, dataset=dataset)
        failed = [d for d, e in record["searches"].items() if e["status"] != "finished"]
        record.mark("failed" if failed else "finished",
                    error="; ".join(f"{d}: {record['searches'][d].get('error')}" for d in failed) or None)
        emit("campaign_ended", campaign=record.data)
        return record
    finally:
        lock.release()


def print_campaign(campaign: dict) -> None:
    """The campaign's searches, one line each: their validation and test metrics, or how they ended."""
    print(f"\n=== campaign {campaign['campaign_id']} ({campaign['name']}): {campaign['status']} ===")
    for dataset in campaign["datasets"]:
        entry = campaign["searches"].get(dataset, {"status": "not started"})
        if entry["status"] == "finished":
            test, val = entry["test"], entry["val"]
            print(f"  {dataset:<20} val H {100 * val['best_h']:.2f}   test U {100 * test['softmax_u']:.2f}  "
                  f"S {100 * test['softmax_s']:.2f}  H {100 * test['softmax_h']:.2f}   "
                  f"({entry['name']}/{entry['search_id']})")
        else:
            print(f"  {dataset:<20} {entry['status']}{': ' + entry['error'] if entry.get('error') else ''}")
