"""What one Optuna ask and tell costs the search's driver, by study storage, as a study grows.

A study of N finished trials (random points of the search's space, search.preparing.space on synthetic's shapes)
and 64 running ones, as a search on 64 slots has; then 20 rounds of: ask a new trial with the search's TPE
(make_sampler's), let the space draw its parameters, tell one running trial its value. Storages: sqlite (an RDB
file, as the search's study was until 26e2b71), sqlite in WAL mode, Optuna's JournalStorage on a file (the search's
own study now: record.study.open_storage) and in memory (no storage at all: the floor).

    python bench/study_storage.py --trials 1000
    python bench/study_storage.py --trials 100 --storages journal sqlite
"""

import argparse
import functools
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402

from record.study import open_storage  # noqa: E402
from search.preparing.sampling import make_sampler  # noqa: E402
from search.preparing.space import Dims, space  # noqa: E402

RUNNING, ROUNDS = 64, 20


def storage_of(kind: str, folder: Path) -> optuna.storages.BaseStorage:
    if kind == "journal":
        return open_storage(f"journal://{folder / 'optuna.journal'}")
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'optuna.db'}")
    if kind == "sqlite-wal":
        from sqlalchemy import event

        def pragmas(connection: object, record: object) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        event.listen(storage.engine, "connect", pragmas)
        storage.engine.dispose()
    return storage


def ask_tell_seconds(kind: str, trials: int) -> tuple[float, float]:
    """(seconds per ask+tell, seconds to build the study)."""
    draw = functools.partial(space, dims=Dims(features=128, attributes=24))
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as folder:
        study = optuna.create_study(storage=storage_of(kind, Path(folder)), direction="maximize",
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        started = time.perf_counter()
        for _ in range(trials):
            trial = study.ask()
            draw(trial)
            study.tell(trial, rng.random())
        running = []
        for _ in range(RUNNING):
            trial = study.ask()
            draw(trial)
            running.append(trial)
        built = time.perf_counter() - started
        study.sampler = make_sampler("tpe", 0, trials, {})
        started = time.perf_counter()
        for _ in range(ROUNDS):
            trial = study.ask()
            draw(trial)
            study.tell(running.pop(0), rng.random())
            running.append(trial)
        return (time.perf_counter() - started) / ROUNDS, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--storages", nargs="+", default=["sqlite", "sqlite-wal", "journal", "memory"],
                        choices=["sqlite", "sqlite-wal", "journal", "memory"])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    print(f"optuna {optuna.__version__}, {args.trials} finished and {RUNNING} running trials, {ROUNDS} rounds")
    for kind in args.storages:
        seconds, built = ask_tell_seconds(kind, args.trials)
        print(f"{kind:>10}: ask+tell {seconds:.3f} s (study built in {built:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
