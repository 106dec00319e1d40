"""The in-process store: exact limits and budgets for one process (the default, and the reference the
Redis store is tested against). State lives in plain dicts; the event loop makes each verb atomic.

The ledger keeps the most recent ``max_records`` records (older ones are dropped, oldest first): the memory
store is for one process and development; production ledgers live in Redis.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from proxy.store.base import (
    Admission,
    AlertFeed,
    Crossing,
    Decision,
    Headroom,
    Scope,
    Settlement,
    Spend,
    Verdict,
)
from proxy.store.records import RecordPage, RecordQuery, UsageRecord

WINDOW = 60.0  # seconds: RPM and TPM are sliding one-minute windows
MAX_RESPONSES = 10_000  # kept responses in one process
MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # their bytes in all
_NO_HEADROOM = Headroom()


@dataclass(slots=True)
class _Window:
    """Admissions of one scope over the last minute: timestamps for RPM, token amounts for TPM."""

    requests: deque[float] = field(default_factory=deque)
    tokens: deque[list[float]] = field(default_factory=deque)  # [timestamp, tokens]
    token_sum: float = 0
    by_request: dict[str, list[float]] = field(default_factory=dict)

    def expire(self, now: float) -> None:
        cutoff = now - WINDOW
        while self.requests and self.requests[0] <= cutoff:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= cutoff:
            self.token_sum -= self.tokens.popleft()[1]
        if not self.tokens:
            self.by_request.clear()


@dataclass(slots=True)
class _Account:
    """One scope's budget in one period: what settlements charged, and what admissions hold."""

    spent: int = 0
    reserved: int = 0


@dataclass(slots=True)
class _Reservation:
    periods: dict[str, str]  # scope ident -> budget period id
    tokens: int
    cost: int
    decision: Decision


class MemoryStore:
    # Its verbs never await, so cancelling a caller cannot cut a settlement half way
    # (proxy.metering.meter.settle).
    settle_is_shielded = True

    def __init__(self, max_records: int = 100_000) -> None:
        self._windows: dict[str, _Window] = {}
        self._accounts: dict[tuple[str, str], _Account] = {}  # (scope ident, period id) -> budget account
        self._reservations: dict[str, _Reservation] = {}
        # Settled request ids (insertion-ordered, bounded like the ledger) -> the admission's decision, so
        # an admission replayed after settlement still answers the first decision and reserves nothing.
        # An OrderedDict: dropping a plain dict's oldest entry (``next(iter(d))``) scans every entry
        # deleted before it, which made each settlement cost tens of microseconds once the bound was hit.
        self._settled: OrderedDict[str, Decision | None] = OrderedDict()
        self._alerted: set[tuple[str, str, float]] = set()
        self._ledger: deque[tuple[int, UsageRecord]] = deque(maxlen=max_records)
        self._seq = 0
        self._max_records = max_records
        self._docs: dict[str, dict[str, bytes]] = {}
        self._versions: dict[str, int] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        # Kept responses, oldest first: id -> (value, expiry on the monotonic clock); bounded in count and
        # bytes, the oldest dropped first.
        self._responses: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._response_bytes = 0
        # Called with each record as it is appended, synchronously (the PostgreSQL ledger's queue).
        self.on_record: Callable[[UsageRecord], None] | None = None

    async def admit(self, admission: Admission) -> Decision:
        request_id = admission.request_id
        earlier = self._reservations.get(request_id)
        if earlier is not None:
            return earlier.decision
        replayed = self._settled.get(request_id)
        if replayed is not None:
            return replayed
        now = admission.now
        tokens = admission.tokens
        cost = admission.cost_micro_usd
        headroom = _NO_HEADROOM
        periods: dict[str, str] = {}
        # (window or None, budget account or None) per scope, kept for the reservation step below.
        held: list[tuple[_Window | None, _Account | None]] = []
        for scope in admission.scopes:
            rpm, tpm = scope.rpm, scope.tpm
            window = None
            if rpm is not None or tpm is not None:
                # Only a scope with a request or token limit keeps a window (as the Redis store does):
                # nothing reads the window of a scope without one.
                window = self._window(scope)
                window.expire(now)
                if rpm is not None and len(window.requests) >= rpm:
                    retry = window.requests[0] + WINDOW - now
                    return Decision(Verdict.RATE_LIMITED, scope, "rpm", max(retry, 0.001))
                if tpm is not None and window.token_sum + tokens > tpm:
                    retry = window.tokens[0][0] + WINDOW - now if window.tokens else WINDOW
                    return Decision(Verdict.RATE_LIMITED, scope, "tpm", max(retry, 0.001))
                if scope.kind == "key" and not headroom.limit_requests:
                    headroom = Headroom(
                        rpm,
                        None if rpm is None else rpm - len(window.requests) - 1,
                        tpm,
                        None if tpm is None else int(tpm - window.token_sum - tokens),
                    )
            period, ends = scope.period.window(now)
            periods[scope.ident] = period
            account = None
            if scope.budget_micro_usd is not None:
                account = self._account(scope.ident, period)
                if account.spent + account.reserved + cost > scope.budget_micro_usd:
                    until_end = None if ends is None else ends - now
                    return Decision(
                        Verdict.BUDGET_EXCEEDED,
                        scope,
                        "budget",
                        until_end,
                        spent_micro_usd=account.spent,
                        reserved_micro_usd=account.reserved,
                    )
            held.append((window, account))
        # Every scope has room: reserve in all of them (nothing above awaited, so this is atomic).
        for window, account in held:
            if window is not None:
                window.requests.append(now)
                entry = [now, float(tokens)]
                window.tokens.append(entry)
                window.token_sum += tokens
                window.by_request[request_id] = entry
            if account is not None:
                account.reserved += cost
        decision = Decision(Verdict.ADMITTED, headroom=headroom)
        self._reservations[request_id] = _Reservation(periods, tokens, cost, decision)
        return decision

    async def settle(self, settlement: Settlement) -> list[Crossing]:
        record = settlement.record
        request_id = record.request_id
        settled = self._settled
        if request_id in settled:
            return []
        reservation = self._reservations.pop(request_id, None)
        settled[request_id] = reservation.decision if reservation else None
        if len(settled) > self._max_records:
            settled.popitem(last=False)
        actual_tokens = record.prompt_tokens + record.completion_tokens
        crossings: list[Crossing] = []
        for scope in settlement.scopes:
            window = self._windows.get(scope.ident)
            entry = window.by_request.pop(request_id, None) if window else None
            if window is not None and entry is not None:
                window.token_sum += actual_tokens - entry[1]
                entry[1] = float(actual_tokens)
            if scope.budget_micro_usd is None:
                continue
            period = reservation.periods.get(scope.ident) if reservation is not None else None
            if period is None:
                period = scope.period.window(record.started_at)[0]
            account = self._account(scope.ident, period)
            if reservation is not None:
                account.reserved = max(0, account.reserved - reservation.cost)
            before = account.spent
            after = account.spent = before + record.cost_micro_usd
            if after > before:
                crossings += self._crossed(scope, period, before, after)
        self._seq += 1
        self._ledger.append((self._seq, record))
        if self.on_record is not None:
            self.on_record(record)
        return crossings

    def _crossed(self, scope: Scope, period: str, before: int, after: int) -> list[Crossing]:
        budget = scope.budget_micro_usd
        if not budget:
            return []
        out = []
        for threshold in scope.alert_at:
            mark = threshold * budget
            if before < mark <= after:
                tag = (scope.ident, period, threshold)
                if tag not in self._alerted:
                    self._alerted.add(tag)
                    out.append(Crossing(scope, period, threshold, after, budget))
        return out

    async def records(self, query: RecordQuery) -> RecordPage:
        after = int(query.cursor) if query.cursor and query.cursor.isdigit() else 0
        out: list[UsageRecord] = []
        last = 0
        # Sequence numbers are consecutive, so the cursor's position is arithmetic: a page never rescans
        # the ledger from its start (islice skips in C).
        skip = max(0, after - self._ledger[0][0] + 1) if self._ledger else 0
        for seq, record in itertools.islice(self._ledger, skip, None):
            if seq <= after or not query.matches(record):
                continue
            if len(out) == query.limit:
                return RecordPage(out, str(last))
            out.append(record)
            last = seq
        return RecordPage(out, None)

    async def spend(self, scope: Scope, now: float) -> Spend:
        period = scope.period.window(now)[0]
        account = self._accounts.get((scope.ident, period)) or _Account()
        return Spend(account.spent, account.reserved, period)

    async def get_doc(self, kind: str, id: str) -> bytes | None:
        return self._docs.get(kind, {}).get(id)

    async def put_doc(self, kind: str, id: str, value: bytes) -> int:
        self._docs.setdefault(kind, {})[id] = value
        self._versions[kind] = self._versions.get(kind, 0) + 1
        return self._versions[kind]

    async def delete_doc(self, kind: str, id: str) -> bool:
        existed = self._docs.get(kind, {}).pop(id, None) is not None
        if existed:
            self._versions[kind] = self._versions.get(kind, 0) + 1
        return existed

    async def list_docs(self, kind: str) -> dict[str, bytes]:
        return dict(self._docs.get(kind, {}))

    async def doc_version(self, kind: str) -> int:
        return self._versions.get(kind, 0)

    async def try_lock(self, name: str, owner: str, ttl: float) -> bool:
        now = time.monotonic()
        holder = self._locks.get(name)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._locks[name] = (owner, now + ttl)
        return True

    async def put_response(self, id: str, value: bytes, ttl: float) -> None:
        await self.delete_response(id)
        self._responses[id] = (value, time.monotonic() + ttl)
        self._response_bytes += len(value)
        while len(self._responses) > MAX_RESPONSES or self._response_bytes > MAX_RESPONSE_BYTES:
            _, (dropped, _) = self._responses.popitem(last=False)
            self._response_bytes -= len(dropped)

    async def get_response(self, id: str) -> bytes | None:
        kept = self._responses.get(id)
        if kept is None:
            return None
        if kept[1] <= time.monotonic():
            await self.delete_response(id)
            return None
        return kept[0]

    async def delete_response(self, id: str) -> bool:
        kept = self._responses.pop(id, None)
        if kept is None:
            return False
        self._response_bytes -= len(kept[0])
        return kept[1] > time.monotonic()

    @property
    def alert_feed(self) -> AlertFeed | None:
        return None  # one process: the settling request delivers its own crossings

    def background(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {}

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _account(self, ident: str, period: str) -> _Account:
        account = self._accounts.get((ident, period))
        if account is None:
            account = self._accounts[(ident, period)] = _Account()
        return account

    def _window(self, scope: Scope) -> _Window:
        window = self._windows.get(scope.ident)
        if window is None:
            window = self._windows[scope.ident] = _Window()
        return window
