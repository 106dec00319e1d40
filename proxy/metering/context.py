"""The per-request context: one record per request, filled in as the request goes.

The edge creates it (ids, clocks) and logs it; the spine adds who is calling and what model
(authentication, body), the target (admission sets the first candidate, dispatch the one that answered)
and the answer; the relay adds a stream's usage and ending; settlement builds the usage record from it
(:func:`proxy.metering.meter.build_record`) and keeps that record here for the access line.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.metering.pricing import Price
from proxy.plugin import Usage
from proxy.store.records import Outcome, UsageRecord


# Mutable and not frozen: it is created once per request on the hot path and filled in step by step.
@dataclass(slots=True)
class RequestContext:
    request_id: str
    client_request_id: str | None  # the caller's own x-request-id, when valid
    started: float  # time.monotonic()
    started_at: float  # time.time()
    # Who and what: authentication, then the body.
    key: str | None = None
    tenant: str | None = None
    model: str | None = None
    route: str | None = None  # the routing table's name for ``model`` (the metric label), once resolved
    # The target: from admission the first candidate, then the one that answered (None: not admitted).
    provider: str | None = None
    upstream_model: str | None = None
    price: Price | None = None
    attempts: int = 0
    # The answer, as the ledger records it: what an admitted request is until an answer says otherwise.
    outcome: Outcome = Outcome.UPSTREAM_ERROR
    status: int = 502
    usage: Usage | None = None  # the provider's own figures; None: settlement estimates them
    ttfb: float | None = None  # seconds from the start of the request to the first byte sent
    # A provider answered (a reply, or a stream opened): only then is a missing usage estimated.
    answered: bool = False
    output_chars: int = 0  # characters of text and tool-call arguments the provider sent (the estimate)
    # The cost is an estimate even with the provider's usage: a unit endpoint's model without a price,
    # or units the gateway guessed (an audio length from the file's size).
    estimated: bool = False
    unit: str | None = None  # the unit ``usage.units`` counts, on the endpoints metered in their own
    # Settled: the usage record (None when the request was never admitted).
    record: UsageRecord | None = None
