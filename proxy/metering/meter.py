"""Metering: what admission reserves, what settlement charges, and the one usage record per request.

Admission reserves the worst case over the targets that may serve: (estimated prompt tokens + maximum
output tokens) against TPM, and that many tokens at the dearest candidate's price against budgets.
Settlement charges the provider's own usage at the price of the target that served, or an estimate
flagged ``estimated: true`` when the provider reported none.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from proxy.errors import BudgetExceeded, MeteringUnavailable, RateLimited
from proxy.metering.alerts import Alerter, follow
from proxy.metering.context import RequestContext
from proxy.metering.pricing import Price, cost_micro_usd, micro_to_usd, usd_to_micro, worst_case_micro_usd
from proxy.plugin import Usage
from proxy.store.base import (
    Admission,
    Crossing,
    Decision,
    Scope,
    Settlement,
    Store,
    StoreUnavailable,
    Verdict,
)
from proxy.store.records import Outcome, UsageRecord

# Bytes of request JSON per prompt token. A conservative (high) guess for the reservation: JSON syntax
# and English text run at ~4 bytes per token, CJK at ~3.
RESERVE_BYTES_PER_TOKEN = 3
ESTIMATE_BYTES_PER_TOKEN = 4
MAX_PROMPT_ESTIMATE = 1_000_000


# Not frozen, though never changed: one per request (see proxy.store.records.UsageRecord).
@dataclass(slots=True)
class Plan:
    scopes: tuple[Scope, ...]
    prompt_tokens: int
    max_output_tokens: int
    cost_micro_usd: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.max_output_tokens


class Demand(Protocol):
    """What admission reads of a request body (the data plane's parsed body has these fields)."""

    @property
    def size(self) -> int:
        """Bytes of request JSON."""
        ...

    @property
    def max_tokens(self) -> int | None: ...

    @property
    def n(self) -> int: ...


def make_plan(
    scopes: tuple[Scope, ...], demand: Demand, prices: list[Price], default_max_tokens: int
) -> Plan:
    contexts = [p.context_length for p in prices if p.context_length]
    ceiling = min(contexts) if contexts else MAX_PROMPT_ESTIMATE
    prompt = min(demand.size // RESERVE_BYTES_PER_TOKEN + 1, ceiling)
    max_output = (demand.max_tokens or default_max_tokens) * demand.n
    cost = max((worst_case_micro_usd(prompt, max_output, p) for p in prices), default=0)
    return Plan(scopes, prompt, max_output, cost)


def estimate_usage(body_size: int, events: int) -> Usage:
    """When the provider reported nothing: prompt from the body size, output one token per data event
    relayed (providers send about one token per chunk)."""
    return Usage(prompt_tokens=body_size // ESTIMATE_BYTES_PER_TOKEN + 1, completion_tokens=max(0, events))


async def admit(store: Store, request_id: str, plan: Plan, fail_open: bool) -> Decision:
    try:
        decision = await store.admit(
            Admission(request_id, plan.scopes, plan.tokens, plan.cost_micro_usd, time.time())
        )
    except StoreUnavailable:
        if fail_open:
            return Decision(Verdict.ADMITTED, reserved=False)
        raise MeteringUnavailable(
            "Metering is unavailable (the gateway's store does not answer), so no request can be admitted. "
            "Retry shortly.",
            retry_after=1.0,
        ) from None
    if decision.verdict is Verdict.RATE_LIMITED:
        scope = decision.refused_by
        what = "requests per minute" if decision.limit == "rpm" else "tokens per minute"
        name = f"{scope.kind} '{scope.name}'" if scope else "this key"
        raise RateLimited(
            f"Rate limit reached for {name}: too many {what}. Retry after {decision.retry_after or 1:.1f}s.",
            retry_after=decision.retry_after or 1.0,
        )
    if decision.verdict is Verdict.BUDGET_EXCEEDED:
        scope = decision.refused_by
        name = f"{scope.kind} '{scope.name}'" if scope else "this key"
        raise BudgetExceeded(
            f"The budget of {name} is exhausted for this period (this request could cost up to "
            f"${micro_to_usd(plan.cost_micro_usd):.6f}). Ask the gateway operator to raise it.",
        )
    return decision


def build_record(ctx: RequestContext, endpoint: str, body_size: int) -> UsageRecord:
    """The usage record of an admitted request, from its context as the request left it.

    ``body_size``: the request body's length in bytes (the prompt estimate when the provider reported no
    usage; a request the provider refused is recorded with no usage at all)."""
    key, tenant, model = ctx.key, ctx.tenant, ctx.model
    provider, upstream_model = ctx.provider, ctx.upstream_model
    assert key is not None and tenant is not None and model is not None, "recorded before authentication"
    assert provider is not None and upstream_model is not None, "recorded before admission"
    outcome = ctx.outcome
    usage = ctx.usage
    estimated = usage is None
    if usage is None:
        usage = estimate_usage(body_size, ctx.events) if outcome is not Outcome.REJECTED else Usage()
    cost = cost_micro_usd(usage, ctx.price) if ctx.price is not None else 0
    provider_cost = usd_to_micro(usage.provider_cost_usd) if usage.provider_cost_usd is not None else None
    return UsageRecord(
        request_id=ctx.request_id,
        key=key,
        tenant=tenant,
        model=model,
        provider=provider,
        upstream_model=upstream_model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_micro_usd=cost,
        provider_cost_micro_usd=provider_cost,
        latency_ms=int((time.monotonic() - ctx.started) * 1000),
        ttfb_ms=None if ctx.ttfb is None else int(ctx.ttfb * 1000),
        outcome=outcome,
        estimated=estimated and outcome is not Outcome.REJECTED,
        started_at=ctx.started_at,
        endpoint=endpoint,
        status=ctx.status,
        attempts=ctx.attempts,
        client_request_id=ctx.client_request_id,
    )


async def settle(store: Store, record: UsageRecord, plan: Plan, reserved: bool = True) -> list[Crossing]:
    """Settle even if the request's task is being cancelled: a record must never be lost. With a Redis
    store, a settlement Redis cannot take goes to the journal (:mod:`proxy.store.journal`) and never raises.
    ``reserved``: the admission's ``Decision.reserved``."""
    if reserved:
        settlement = Settlement(record, plan.scopes, plan.tokens, plan.cost_micro_usd)
    else:
        settlement = Settlement(record, plan.scopes, 0, 0, reserved=False)
    if store.settle_is_shielded:
        # The store already makes its settlement immune to the caller's cancellation: no second task.
        return await store.settle(settlement)
    return await asyncio.shield(store.settle(settlement))


def start_background(store: Store, alerter: Alerter) -> list[asyncio.Task[None]]:
    """The tasks a shared store needs (none for the memory store): its own (a journal's replay), and the
    consumer of its alert feed, which then delivers budget alerts instead of the settling request."""
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(work, name=name) for name, work in store.background().items()]
    feed = store.alert_feed
    if feed is not None:
        alerter.shared = True
        tasks.append(loop.create_task(follow(feed, alerter), name="efflux-alert-feed"))
    return tasks
