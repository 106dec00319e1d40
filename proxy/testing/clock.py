"""A clock for tests: it moves only when told, so time-based parts (breakers, the retry budget) are stepped
through their cooldowns and windows instead of slept through."""

from __future__ import annotations


class FakeClock:
    """``clock()`` reads the time, ``clock.advance(seconds)`` moves it. It starts at 1.0: a zero instant
    means "never" to the breakers, and near 1 the sums of small steps keep their precision."""

    __slots__ = ("now",)

    def __init__(self, start: float = 1.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
