"""MLflow tracking of searches: parent and trial runs, the chosen model, and champion promotion."""

from tracking.tracker import Tracker, default_tracking_uri

__all__ = ["Tracker", "default_tracking_uri"]
