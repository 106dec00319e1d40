"""The retry budget: fallback attempts stay a bounded fraction of client requests.

In a failure storm every request would otherwise try every target, multiplying the load on providers that
are already failing. A token bucket (as Envoy and Finagle do it): each client request deposits ``ratio``
of a retry, each retry (an upstream attempt after a request's first) withdraws one, and the bucket also
fills by ``min_per_second`` so that a quiet gateway can still fall back. It holds at most ``burst``.
Upstream attempts thus stay under ``(1 + ratio) x requests + burst + min_per_second x seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RetryBudget:
    __slots__ = ("_clock", "_last", "burst", "min_per_second", "ratio", "tokens")

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_second: float = 1.0,
        burst: float = 50.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self._clock = clock
        self._last = clock()

    def deposit(self) -> None:
        """One client request arrived."""
        self._refill()
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        """Take one retry; False when the budget is spent (the request fails with what it has)."""
        self._refill()
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def _refill(self) -> None:
        now = self._clock()
        if self.min_per_second:
            self.tokens = min(self.burst, self.tokens + (now - self._last) * self.min_per_second)
        self._last = now
