"""Load balancing within one priority level of a route.

``routing.order_targets`` has already put the targets in priority order, shuffled by weight within each
priority (``strategy: weighted``, the default). The other strategies re-sort each priority level by what
this process has seen, keeping the weighted order among ties:

- ``least_busy``: fewest requests in flight to the target (a stream counts until it ends);
- ``lowest_latency``: lowest moving average (EWMA) of the time to the first byte; a target not yet
  measured sorts first, so that it gets measured.

The counts are per process on purpose: they describe this process's connections, and keeping them out of
the store keeps the hot path free of round trips.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

from proxy.routing.table import Choice, Route, upstream_model

ALPHA = 0.3  # EWMA weight of the newest sample: a few requests move it, one outlier does not
X = TypeVar("X")


class Balancer:
    def __init__(self) -> None:
        self.in_flight: defaultdict[Choice, int] = defaultdict(int)
        self.latency: dict[Choice, float] = {}  # seconds, EWMA of time to first byte

    def start(self, target: Choice) -> None:
        self.in_flight[target] += 1

    def finish(self, target: Choice) -> None:
        count = self.in_flight[target] - 1
        if count > 0:
            self.in_flight[target] = count
        else:
            del self.in_flight[target]

    def observe(self, target: Choice, seconds: float) -> None:
        old = self.latency.get(target)
        self.latency[target] = seconds if old is None else old + ALPHA * (seconds - old)

    def order(
        self, items: Sequence[X], choice_of: Callable[[X], Choice], route: Route | None, model: str
    ) -> list[X]:
        """``items`` (already in weighted priority order) re-sorted within each priority by the route's
        strategy. Python's sort is stable, so ties keep the weighted order."""
        strategy = route.config.strategy if route is not None and route.config is not None else "weighted"
        if strategy == "weighted" or len(items) < 2 or route is None:
            return list(items)
        priority = {Choice(t.provider, upstream_model(route, t, model)): t.priority for t in route.targets}
        if strategy == "least_busy":
            in_flight = self.in_flight
            return sorted(
                items, key=lambda x: (priority.get(choice_of(x), 0), in_flight.get(choice_of(x), 0))
            )
        latency = self.latency
        return sorted(items, key=lambda x: (priority.get(choice_of(x), 0), latency.get(choice_of(x), 0.0)))
