"""The usage record: one per admitted request, the unit of metering and of the ledger.

Field names are part of the product's interface (ops scripts read them; the README lists them).
Money is integer micro-USD.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

import orjson


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    CLIENT_ABORTED = "client_aborted"  # the client went away before the answer was delivered
    UPSTREAM_ERROR = "upstream_error"  # every target failed, or the stream broke after it started
    REJECTED = "rejected"  # the provider refused the request as the caller's fault (4xx)


# Not frozen, though never changed: one is built per request, and a frozen dataclass's __init__ costs
# about ten times more (an object.__setattr__ call per field).
@dataclass(slots=True)
class UsageRecord:
    request_id: str
    key: str
    tenant: str
    model: str
    provider: str
    upstream_model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_micro_usd: int
    provider_cost_micro_usd: int | None
    latency_ms: int
    ttfb_ms: int | None
    outcome: Outcome
    estimated: bool
    started_at: float  # unix seconds
    endpoint: str = "chat/completions"
    status: int = 200
    attempts: int = 1
    client_request_id: str | None = None  # the caller's own x-request-id, when it sent one
    # Which source priced it: config, file, sync, genai-prices, or none (served unpriced under
    # ``pricing.unknown: allow``); null on records written before the field existed.
    price_source: str | None = None
    # Endpoints metered in their own units: how many ("image", "second", "character", "search").
    unit: str | None = None
    units: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson serialises dataclasses natively (and fast)

    @classmethod
    def from_json(cls, raw: bytes | str) -> UsageRecord:
        data = orjson.loads(raw)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["outcome"] = Outcome(values["outcome"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """Filters of ``GET /admin/usage/records``; ``since``/``until`` bound ``started_at`` (unix seconds)."""

    request_id: str | None = None
    key: str | None = None
    tenant: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    cursor: str | None = None

    def matches(self, record: UsageRecord) -> bool:
        return (
            (self.request_id is None or self.request_id in (record.request_id, record.client_request_id))
            and (self.key is None or record.key == self.key)
            and (self.tenant is None or record.tenant == self.tenant)
            and (self.since is None or record.started_at >= self.since)
            and (self.until is None or record.started_at < self.until)
        )


@dataclass(frozen=True, slots=True)
class RecordPage:
    data: list[UsageRecord]
    next_cursor: str | None
