"""Reading a search's results back from Ray's own files, without Ray (sync, benchmarks, tests)."""

import json
from pathlib import Path

__all__ = ["trial_reports"]


def trial_reports(experiment: Path | str) -> list[tuple[Path, list[dict]]]:
    """(trial folder, its reports in order) for every trial of a Ray experiment folder that reported.

    Reads each trial's result.json (one JSON object per report); folders are sorted by name, which
    Tune gives in the order it created the trials.
    """
    out = []
    for result in sorted(Path(experiment).glob("*/result.json")):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows:
            out.append((result.parent, rows))
    return out
