"""Requests the gateway refused itself before admission (401 bad key, 403 model not allowed, 404 unknown
model or path, 429 rate limit or budget): they never reach the ledger (no usage record: nothing was
admitted), so the dashboard counts them here, per minute and status, to show them as errors beside the
ledger's.

The tally is this replica's own and lives in memory: kept for ``KEEP`` seconds, at most one bucket per
minute per status (a bounded dict, whatever the traffic). Recording is a dict increment on the edge.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

STATUSES = frozenset({401, 403, 404, 429})
MINUTE = 60
KEEP = 31 * 86400  # the dashboard's longest preset range is 30 days


@dataclass(slots=True)
class Rejections:
    """Counts per (minute, status) of refused data-plane requests."""

    buckets: dict[tuple[int, int], int] = field(default_factory=dict)
    _pruned: int = 0

    def record(self, status: int, now: float | None = None) -> None:
        if status not in STATUSES:
            return
        at = int((time.time() if now is None else now) // MINUTE * MINUTE)
        key = (at, status)
        self.buckets[key] = self.buckets.get(key, 0) + 1
        if at - self._pruned >= 3600:  # drop what is older than KEEP, once an hour at most
            self._pruned = at
            for old in [k for k in self.buckets if k[0] < at - KEEP]:
                del self.buckets[old]

    def between(self, since: float | None, until: float | None) -> Iterator[tuple[int, int, int]]:
        """``(minute, status, count)`` for the minutes in ``[since, until)``."""
        for (at, status), count in list(self.buckets.items()):
            if (since is None or at + MINUTE > since) and (until is None or at < until):
                yield at, status, count
