"""What traffic cost through each provider against the cheapest direct price for the same model.

For every ledger record, the same tokens are priced at each direct provider (a model's own vendor, not an
aggregator) that prices the model, and the cheapest is the comparison. "The same model" is the upstream
model's own name without an aggregator's vendor prefix (``openai/gpt-4o`` -> ``gpt-4o``), or the name the
client sent without its prefix. A record no direct provider prices is counted as ``unmatched``: it has no
comparison.

``saved_micro_usd`` is what the direct price would have cost minus what the traffic cost: positive when
the provider was cheaper than going direct, negative when it cost more.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pydantic import BaseModel

from proxy.gateway import Gateway
from proxy.metering.pricing import cost_micro_usd
from proxy.plugin import ProviderType, Usage
from proxy.services.analytics import read_records
from proxy.state.snapshot import Snapshot
from proxy.store.records import RecordQuery, UsageRecord


class ProviderSavings(BaseModel):
    provider: str
    type: str
    requests: int
    matched_requests: int  # the records a direct price exists for (the comparison covers only these)
    cost_micro_usd: int  # what the matched records cost through this provider
    direct_cost_micro_usd: int  # the same tokens at the cheapest direct price
    saved_micro_usd: int  # direct - cost
    unmatched_cost_micro_usd: int


class ModelSavings(BaseModel):
    provider: str
    model: str
    direct_provider: str | None
    requests: int
    cost_micro_usd: int
    direct_cost_micro_usd: int | None
    saved_micro_usd: int | None


class SavingsTotals(BaseModel):
    requests: int
    matched_requests: int
    cost_micro_usd: int
    direct_cost_micro_usd: int
    saved_micro_usd: int


class SavingsReport(BaseModel):
    since: float | None
    until: float | None
    data: list[ProviderSavings]
    models: list[ModelSavings]
    totals: SavingsTotals
    truncated: bool


def names(r: UsageRecord) -> list[str]:
    """The names a direct provider may price this record's model under, most specific first."""
    # Bare names only: a name with a slash would read as "<provider>/<model>" in the price table.
    return list(
        dict.fromkeys(n for n in (r.upstream_model.rsplit("/", 1)[-1], r.model.rsplit("/", 1)[-1]) if n)
    )


def cheapest_direct(snapshot: Snapshot, r: UsageRecord) -> tuple[str, int] | None:
    """The direct provider that would have charged least for this record's tokens, and that cost."""
    usage = Usage(
        prompt_tokens=r.prompt_tokens,
        completion_tokens=r.completion_tokens,
        cached_tokens=r.cached_tokens,
        cache_write_tokens=r.cache_write_tokens,
    )
    best: tuple[str, int] | None = None
    # the record's own provider first: on a tie it is the comparison (its own price, no difference)
    for provider, instance in sorted(snapshot.providers.items(), key=lambda kv: kv[0] != r.provider):
        if instance.provider_type is not ProviderType.DIRECT:
            continue
        price = next((p for n in names(r) if (p := snapshot.price(provider, n)) is not None), None)
        if price is None:
            continue
        cost = cost_micro_usd(usage, price)
        if best is None or cost < best[1]:
            best = (provider, cost)
    return best


@dataclass(slots=True)
class _Tally:
    requests: int = 0
    matched: int = 0
    cost: int = 0  # of the matched records
    direct: int = 0
    unmatched_cost: int = 0
    direct_provider: str | None = None

    def add(self, r: UsageRecord, direct: tuple[str, int] | None) -> None:
        self.requests += 1
        if direct is None:
            self.unmatched_cost += r.cost_micro_usd
            return
        self.matched += 1
        self.cost += r.cost_micro_usd
        self.direct += direct[1]
        self.direct_provider = self.direct_provider or direct[0]


async def savings(gw: Gateway, query: RecordQuery) -> dict[str, object]:
    """The report over the records ``query`` matches (``GET /admin/savings``)."""
    records, truncated = await read_records(gw, query)
    snapshot = gw.snapshot
    per_provider: dict[str, _Tally] = defaultdict(_Tally)
    per_model: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    for r in records:
        direct = cheapest_direct(snapshot, r)
        per_provider[r.provider].add(r, direct)
        per_model[(r.provider, r.model)].add(r, direct)
    data = [
        ProviderSavings(
            provider=name,
            type=snapshot.providers[name].provider_type.value if name in snapshot.providers else "unknown",
            requests=t.requests,
            matched_requests=t.matched,
            cost_micro_usd=t.cost,
            direct_cost_micro_usd=t.direct,
            saved_micro_usd=t.direct - t.cost,
            unmatched_cost_micro_usd=t.unmatched_cost,
        )
        for name, t in sorted(per_provider.items())
    ]
    models = [
        ModelSavings(
            provider=provider,
            model=model,
            direct_provider=t.direct_provider,
            requests=t.requests,
            cost_micro_usd=t.cost + t.unmatched_cost,
            direct_cost_micro_usd=t.direct if t.matched else None,
            saved_micro_usd=t.direct - t.cost if t.matched else None,
        )
        for (provider, model), t in sorted(per_model.items())
    ]
    totals = SavingsTotals(
        requests=sum(d.requests for d in data),
        matched_requests=sum(d.matched_requests for d in data),
        cost_micro_usd=sum(d.cost_micro_usd for d in data),
        direct_cost_micro_usd=sum(d.direct_cost_micro_usd for d in data),
        saved_micro_usd=sum(d.saved_micro_usd for d in data),
    )
    return SavingsReport(
        since=query.since, until=query.until, data=data, models=models, totals=totals, truncated=truncated
    ).model_dump()
