"""The driver's Tune callbacks of one search, which a resumed search gets back live, not as pickled copies."""

from ray.tune.callback import Callback, CallbackList

__all__ = ["DriverCallbacks"]

_LIVE: dict[str, "DriverCallbacks"] = {}


class DriverCallbacks(CallbackList):
    """All of a search's own callbacks (tracking, console), registered under its search id.

    Tune pickles the run's callbacks into the experiment folder, and `Tuner.restore` brings those
    pickled copies back: a resumed search would then log with the first driver's settings and report
    interruptions to an object nobody reads. This list pickles as a reference to the list of the same
    search id live in the unpickling process (an empty list where there is none).
    """

    def __init__(self, search_id: str, callbacks: list[Callback]) -> None:
        super().__init__(callbacks)
        self.search_id = search_id
        _LIVE[search_id] = self

    def __reduce__(self) -> tuple:
        return _live, (self.search_id,)

    def release(self) -> None:
        """The search's Tune run is over: forget the list (and the tracker and console it holds)."""
        if _LIVE.get(self.search_id) is self:
            del _LIVE[self.search_id]


def _live(search_id: str) -> CallbackList:
    live = _LIVE.get(search_id)  # not `or`: a list without callbacks is falsy
    return CallbackList([]) if live is None else live
