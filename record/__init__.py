"""The contract between a search (search/) and what records it elsewhere (tracking/).

A search writes its folder `<storage>/<name>/<search id>/`: the record `izf_search.json`
(record.search), the events `izf_events.jsonl` (record.events) and the chosen model `izf_model.pt`,
locally or on `s3://` storage through one helper (record.storage). tracking/ reads a search only
through this package; neither Ray nor MLflow is imported here.
"""

from record.events import EVENTS, EVENTS_FILE, EventLog, read_events
from record.search import (
    CAMPAIGN_FILE,
    MODEL_FILE,
    SEARCH_FILE,
    STATUSES,
    CampaignRecord,
    SearchRecord,
    campaigns_of,
    finite_json,
    name_folder,
    new_search_id,
    now,
    search_folders,
    searches_of,
)

__all__ = ["EVENTS", "EVENTS_FILE", "EventLog", "read_events", "CAMPAIGN_FILE", "MODEL_FILE",
           "SEARCH_FILE", "STATUSES", "CampaignRecord", "SearchRecord", "campaigns_of", "finite_json", "name_folder",
           "new_search_id", "now", "search_folders", "searches_of"]
