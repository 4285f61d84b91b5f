"""Ctrl-C (SIGINT) and SIGTERM in the driver: stop the trials, keep Tune's state, and say so."""

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Interruption", "SearchInterrupted", "signals_ignored"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SearchInterrupted(KeyboardInterrupt):
    """The driver was told to stop (SIGINT or SIGTERM). A KeyboardInterrupt, so that no `except Exception`
    on the way (MLflow's, Ray's, ours) takes it for an error and carries on."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class Interruption:
    """Catches SIGINT and SIGTERM for the life of a search (in the main thread; elsewhere it does nothing).

    Inside Tune's loop (`tune_loop()`) the first signal asks Tune to stop as its own Ctrl-C handling
    does: running trials are stopped and the experiment state is saved, so `--resume` continues them.
    Anywhere else (loading data, the final retrain, MLflow) it raises SearchInterrupted at once. A
    second signal always raises. `signal_name` tells afterwards whether and how the search was stopped.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._in_tune = False
        self._usr1_before_tune: object = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "Interruption":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def reinstall(self) -> None:
        """Take SIGTERM (and SIGINT) back after `ray.init`, which sets handlers of its own that exit or abort."""
        for sig in self._previous:
            signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        """Whether a signal asked the search to stop."""
        return self.signal_name is not None

    @contextmanager
    def tune_loop(self) -> Iterator[None]:
        """Around `Tuner.fit()`. Tune installs its own SIGINT handler unless told not to; ours stays, and
        hands the first signal to the handler Tune keeps on SIGUSR1 for the same purpose."""
        previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        previous_usr1 = signal.getsignal(signal.SIGUSR1) if self._previous else None
        self._usr1_before_tune = previous_usr1
        self._in_tune = True
        try:
            if self.requested:  # a signal came while the search was being set up
                raise SearchInterrupted(self.signal_name)
            yield
        finally:
            self._in_tune = False
            if previous_usr1 is not None:
                signal.signal(signal.SIGUSR1, previous_usr1)  # Tune leaves its handler behind
            if previous_env is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env

    def _handle(self, signum: int, frame: object) -> None:
        first = self.signal_name is None
        if first:
            self.signal_name = signal.Signals(signum).name
        tune_handler = signal.getsignal(signal.SIGUSR1)
        if first and self._in_tune and callable(tune_handler) and tune_handler is not self._usr1_before_tune:
            tune_handler(signum, frame)
            return
        raise SearchInterrupted(self.signal_name)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored within the block: what closes a search's runs is not left half done."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
