"""The store interface: every piece of state that must be shared between replicas goes through it.

Two implementations pass the same contract suite (``tests/store/test_contract.py``): :mod:`.memory`
(one process, the default) and :mod:`.redis` (any number of replicas). The spine calls exactly two verbs
per request: ``admit`` before dispatch and ``settle`` once the outcome is known.

Admission reserves the worst case (estimated tokens for TPM, worst-case cost for budgets) across every
scope at once, or nothing at all; settlement moves each reservation to the actual figures, releases the
rest and appends the ledger record, in one step. Both are idempotent by request id: a replayed admission
answers as the first did, a replayed settlement changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.config.periods import Period as Period  # re-exported: scopes are kept per period
from proxy.store.records import RecordPage, RecordQuery, UsageRecord


class StoreUnavailable(Exception):
    """The store did not answer within its timeout; the outage policy decides what happens."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Something limits apply to: a virtual key or a tenant. ``tenant`` groups keys (and hash-tags them)."""

    kind: str  # "key" | "tenant"
    name: str
    tenant: str
    rpm: int | None = None
    tpm: int | None = None
    budget_micro_usd: int | None = None
    period: Period = Period.MONTHLY
    alert_at: tuple[float, ...] = (0.5, 0.8, 1.0)
    # "kind:name", computed once: the stores use it as a dict key several times per request.
    ident: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ident", f"{self.kind}:{self.name}")


# Not frozen, though never changed: one per request (see proxy.store.records.UsageRecord).
@dataclass(slots=True)
class Admission:
    request_id: str
    scopes: tuple[Scope, ...]
    tokens: int  # estimated prompt tokens + maximum output tokens, counted against TPM
    cost_micro_usd: int  # worst-case cost, reserved against budgets
    now: float


class Verdict(enum.StrEnum):
    ADMITTED = "admitted"
    RATE_LIMITED = "rate_limited"
    BUDGET_EXCEEDED = "budget_exceeded"


@dataclass(frozen=True, slots=True)
class Headroom:
    """What is left of one scope's request and token limits after this admission (response headers)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None


# Not frozen, though never changed: one per request (see proxy.store.records.UsageRecord).
@dataclass(slots=True)
class Decision:
    verdict: Verdict
    refused_by: Scope | None = None
    limit: str | None = None  # "rpm" | "tpm" | "budget"
    retry_after: float | None = None
    headroom: Headroom = Headroom()
    # False: admitted by the ``fail_open`` outage policy without the store, so nothing was reserved and the
    # settlement goes straight to the journal (the store has just failed this request once).
    reserved: bool = True
    # A budget refusal: the refusing scope's spend and reservations held at that moment, so that the
    # refusal can say whether the budget is spent or only this request's worst case does not fit.
    spent_micro_usd: int | None = None
    reserved_micro_usd: int | None = None

    @property
    def admitted(self) -> bool:
        return self.verdict is Verdict.ADMITTED


# Not frozen, though never changed: one per request (see proxy.store.records.UsageRecord).
@dataclass(slots=True)
class Settlement:
    record: UsageRecord
    scopes: tuple[Scope, ...]
    reserved_tokens: int
    reserved_micro_usd: int
    reserved: bool = True  # False: admitted without the store (see Decision.reserved)


@dataclass(frozen=True, slots=True)
class Crossing:
    """A scope's spend crossed an alert threshold in its current period (reported once per store)."""

    scope: Scope
    period: str
    threshold: float
    spent_micro_usd: int
    budget_micro_usd: int


@dataclass(frozen=True, slots=True)
class FedAlert:
    """A crossing as the store's shared alert feed hands it to one consumer among all replicas."""

    id: str  # the feed's id of the entry (unique within its tenant's feed)
    crossing: Crossing
    at: float  # unix seconds when the settlement that crossed it was applied


class AlertFeed(Protocol):
    """A store that records crossings in a shared feed (Redis), so that exactly one replica delivers each,
    even when the settling replica never saw the reply that reported it."""

    async def read_alerts(self, consumer: str, *, reclaim: bool = False) -> list[FedAlert]:
        """New crossings for ``consumer`` (each handed to one consumer only); with ``reclaim``, also those
        another consumer took and has not acknowledged for a long time (it died)."""
        ...

    async def ack_alert(self, alert: FedAlert) -> None: ...


@dataclass(frozen=True, slots=True)
class Spend:
    spent_micro_usd: int
    reserved_micro_usd: int
    period: str


class Store(Protocol):
    # True when no cancellation of the caller can cut a settlement half way (its verbs never await, or it
    # settles in a task of its own): metering then awaits ``settle`` directly instead of shielding it.
    settle_is_shielded: bool

    @property
    def alert_feed(self) -> AlertFeed | None:
        """The feed shared by every replica where settlements record their alert crossings (Redis), or
        None: this process then delivers the crossings its own settlements report."""
        ...

    def background(self) -> dict[str, Coroutine[Any, Any, None]]:
        """What must run while the store is open (a journal's replay), by task name; called once, and
        every coroutine returned is run."""
        ...

    async def admit(self, admission: Admission) -> Decision: ...

    async def settle(self, settlement: Settlement) -> list[Crossing]:
        """Charge the actual usage, release the reservation, append the record. Returns the alert
        thresholds this settlement crossed (each exactly once per scope, period and threshold)."""
        ...

    async def records(self, query: RecordQuery) -> RecordPage: ...

    async def spend(self, scope: Scope, now: float) -> Spend: ...

    # -- documents: small JSON state shared by every replica (keys, tenants, vault ciphertexts, routing
    # overlay, synced catalogues). Each kind has a version that every write bumps; replicas poll it to
    # notice changes within a fraction of a second.
    async def get_doc(self, kind: str, id: str) -> bytes | None: ...

    async def put_doc(self, kind: str, id: str, value: bytes) -> int:
        """Create or replace; returns the kind's new version."""
        ...

    async def delete_doc(self, kind: str, id: str) -> bool:
        """Returns whether it existed (the version is bumped only then)."""
        ...

    async def list_docs(self, kind: str) -> dict[str, bytes]: ...

    async def doc_version(self, kind: str) -> int: ...

    async def try_lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take (or renew, for the same owner) a named lock for ``ttl`` seconds; False if another holds it."""
        ...

    # -- kept responses (the Responses API's stored answers): one opaque value per id, gone after ``ttl``
    # seconds (or sooner, for a bounded store that needs the room).
    async def put_response(self, id: str, value: bytes, ttl: float) -> None: ...

    async def get_response(self, id: str) -> bytes | None: ...

    async def delete_response(self, id: str) -> bool:
        """Returns whether it existed."""
        ...

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` when the store cannot serve."""
        ...

    async def close(self) -> None: ...
