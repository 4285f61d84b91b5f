"""A campaign in MLflow: one run, in the experiment named after the campaign, that links its searches.

`CampaignRecorder` takes the campaign's events with its record (plain JSON, izf_campaign.json):
campaign_started, search_ended (one dataset's search done: finished or failed), campaign_ended. The run
gets the campaign's settings as params, each finished search's test metrics as `<dataset>.test_*`, a tag
`izf.search.<dataset>` with the search's parent run id, a description (the MLflow UI's note) linking each
search's run, and at the end the leaderboard of the campaign's datasets as artifacts (leaderboard.md/.html).
Each search's own parent run carries `izf.campaign_id` (tracking.recorder).
"""

import tempfile
from pathlib import Path

from tracking.report import write_leaderboard
from tracking.tracker import Tracker

__all__ = ["CampaignRecorder", "CAMPAIGN_TAG"]

CAMPAIGN_TAG = "izf.campaign_id"
NOTE = "mlflow.note.content"  # the run's description in the MLflow UI (Markdown)
SHOWN = ("softmax_u", "softmax_s", "softmax_h", "softmax_zsl_t1")


class CampaignRecorder:
    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def campaign_started(self, campaign: dict) -> None:
        """The campaign's run, with its settings as params."""
        options = campaign["options"]
        params = {"datasets": ",".join(campaign["datasets"]),
                  **{k: options[k] for k in ("num_samples", "max_concurrent", "sampler", "scheduler", "seed",
                                             "final_seeds", "max_steps", "reevaluate_top", "warm_start")}}
        self.tracker.start(campaign["campaign_id"], campaign["folder"], params,
                           tags={CAMPAIGN_TAG: campaign["campaign_id"], "izf.name": campaign["name"]}, role="campaign")
        self._describe(campaign)

    def search_ended(self, campaign: dict, dataset: str) -> None:
        """One dataset's search ended: its run linked, its test metrics logged."""
        entry = campaign["searches"][dataset]
        run_id = (entry.get("mlflow") or {}).get("parent_run_id")
        if run_id and self.tracker.parent_id:
            self.tracker.safe("link", self.tracker.client.set_tag, self.tracker.parent_id, f"izf.search.{dataset}",
                              run_id)
        if entry["status"] == "finished":
            self.tracker.log_metrics({f"{dataset}.test_{k}": entry["test"][k] for k in SHOWN if k in entry["test"]})
        self._describe(campaign)

    def campaign_ended(self, campaign: dict) -> None:
        """The campaign's run ended, with the leaderboard of its finished searches."""
        self._describe(campaign)
        if campaign["status"] != "interrupted" and self.tracker.parent_id:
            finished = [d for d in campaign["datasets"] if campaign["searches"].get(d, {}).get("status") == "finished"]
            with tempfile.TemporaryDirectory() as folder:
                _, files = write_leaderboard(self.tracker.client, Path(folder) / "leaderboard", finished)
                for path in files:
                    self.tracker.safe("leaderboard", self.tracker.client.log_artifact, self.tracker.parent_id,
                                      str(path))
        self.tracker.end(campaign["status"], campaign.get("error") or "")

    def _describe(self, campaign: dict) -> None:
        if self.tracker.parent_id:
            self.tracker.safe("describe", self.tracker.client.set_tag, self.tracker.parent_id, NOTE,
                              self._note(campaign))

    def _note(self, campaign: dict) -> str:
        """The campaign's searches as a Markdown table, each linked to its parent run in the MLflow UI."""
        lines = [f"Campaign {campaign['campaign_id']} ({campaign['status']}): one search per dataset, in order.", "",
                 "| dataset | status | val H | test U | test S | test H | search's run |", "|---" * 7 + "|"]
        for dataset in campaign["datasets"]:
            entry = campaign["searches"].get(dataset, {"status": "waiting"})
            mlflow = entry.get("mlflow") or {}
            link = "—"
            if mlflow.get("parent_run_id"):
                found = self.tracker.safe("experiment", self.tracker.client.get_experiment_by_name,
                                          mlflow["experiment"])
                where = f"#/experiments/{found.experiment_id}/runs/" if found else ""
                link = f"[{mlflow['experiment']}]({where}{mlflow['parent_run_id']})"
            val, test = entry.get("val") or {}, entry.get("test") or {}

            def cell(metrics: dict, key: str) -> str:
                return f"{metrics[key]:.4f}" if key in metrics else "—"

            lines.append(f"| {dataset} | {entry['status']} | {cell(val, 'best_h')} | {cell(test, 'softmax_u')} | "
                         f"{cell(test, 'softmax_s')} | {cell(test, 'softmax_h')} | {link} |")
        return "\n".join(lines)
