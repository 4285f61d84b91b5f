"""A stand-in for an Optuna trial that answers a search space's questions from given values.

The space (`space(trial, dims)`) only asks; to find the point of the space nearest to a config (the
dataset's base config, an earlier search's best points), each question is answered from the values,
fitted into what is asked: a number is clipped into its range; a categorical takes the value where it
is a choice, else the nearest numeric choice, else the first choice.
"""

import math

__all__ = ["AnsweringTrial"]


class AnsweringTrial:
    """Answers from `values`. A categorical without a value takes its first choice and is kept in `open` (with
    its choices); a number without a value takes its range's middle (geometric for a log range) and is kept
    in `guessed`. `params` holds every answer, as an Optuna trial's would."""

    def __init__(self, values: dict) -> None:
        self.values = values
        self.params: dict = {}
        self.open: dict[str, list] = {}
        self.guessed: list[str] = []

    def _answer(self, name: str, value: object) -> object:
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: list) -> object:
        """The value where it is a choice, else the nearest numeric choice, else the first."""
        if self.values.get(name) is None:
            self.open[name] = list(choices)
            return self._answer(name, choices[0])
        wanted = self.values[name]
        same = [c for c in choices if type(c) is type(wanted) and c == wanted]
        if same:
            return self._answer(name, same[0])
        numeric = [c for c in choices if _is_number(c)]
        if _is_number(wanted) and numeric:
            return self._answer(name, min(numeric, key=lambda c: abs(c - wanted)))
        return self._answer(name, choices[0])

    def suggest_int(self, name: str, low: int, high: int, log: bool = False, **kwargs: object) -> int:
        """The value rounded and clipped into [low, high]."""
        return self._answer(name, min(max(int(round(self._number(name, low, high, log))), low), high))

    def suggest_float(self, name: str, low: float, high: float, log: bool = False, **kwargs: object) -> float:
        """The value clipped into [low, high]."""
        return self._answer(name, min(max(float(self._number(name, low, high, log)), low), high))

    def _number(self, name: str, low: float, high: float, log: bool) -> float:
        wanted = self.values.get(name)
        if _is_number(wanted) and math.isfinite(wanted):
            return wanted
        self.guessed.append(name)
        return math.sqrt(low * high) if log and low > 0 else (low + high) / 2


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
