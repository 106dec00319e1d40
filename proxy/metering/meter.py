"""Metering: what admission reserves, what settlement charges, and the one usage record per request.

Admission reserves the worst case over the targets that may serve: (the prompt's reservation
(:mod:`.reserve`) + maximum output tokens) against TPM, and that many tokens at the dearest candidate's
price against budgets. A request whose worst case exceeds a TPM limit on its own can never be admitted:
it is refused as invalid (400), not rate limited, so that clients do not retry it.

Settlement charges the provider's own usage at the price of the target that served. When a provider
answered without usage, an estimate flagged ``estimated: true``: the prompt from its reservation's
measure (text at 4 bytes per token, media at their reservation), the output from the characters of text
and tool-call arguments the provider sent, at ``ESTIMATE_CHARS_PER_TOKEN``. A request no provider
answered (nothing reached one, or an error answer without usage) is recorded at zero. A request served
without a price (``pricing.unknown: allow``) costs zero, recorded with ``price_source: none`` and
``estimated: true``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from proxy.config import ReserveConfig
from proxy.errors import BudgetExceeded, ExceedsLimit, MeteringUnavailable, RateLimited
from proxy.metering.alerts import Alerter, follow
from proxy.metering.context import RequestContext
from proxy.metering.pricing import (
    Price,
    PriceSource,
    cost_micro_usd,
    micro_to_usd,
    usd_to_micro,
    worst_case_micro_usd,
)
from proxy.metering.reserve import DEFAULTS, MAX_PROMPT_ESTIMATE, Prompt, measure
from proxy.plugin import JSONObject, Usage
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

# Characters of output text (and tool-call arguments) per token, for an estimate: English runs at ~4.
ESTIMATE_CHARS_PER_TOKEN = 4


# Not frozen, though never changed: one per request (see proxy.store.records.UsageRecord).
@dataclass(slots=True)
class Plan:
    scopes: tuple[Scope, ...]
    prompt_tokens: int
    max_output_tokens: int
    cost_micro_usd: int
    prompt: Prompt  # the measure the reservation came from (an estimate without usage uses it too)
    image_tokens: int  # the default per image part (a candidate's price may set its own)
    ceiling: int  # the prompt's cap: the tightest candidate's context length

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.max_output_tokens

    def prompt_estimate(self, price: Price | None) -> int:
        image_tokens = price.image_tokens if price is not None and price.image_tokens else self.image_tokens
        return self.prompt.estimate(image_tokens, self.ceiling)


class Demand(Protocol):
    """What admission reads of a request body (the data plane's parsed body has these fields)."""

    @property
    def obj(self) -> JSONObject:
        """The parsed body (its media parts are reserved at their worst case)."""
        ...

    @property
    def size(self) -> int:
        """Bytes of request JSON."""
        ...

    @property
    def max_tokens(self) -> int | None: ...

    @property
    def n(self) -> int: ...


def make_plan(
    scopes: tuple[Scope, ...],
    demand: Demand,
    prices: list[Price],
    default_max_tokens: int,
    reserve: ReserveConfig = DEFAULTS,
) -> Plan:
    contexts = [p.context_length for p in prices if p.context_length]
    ceiling = min(contexts) if contexts else MAX_PROMPT_ESTIMATE
    prompt = measure(demand.obj, demand.size, reserve)
    max_output = (demand.max_tokens or default_max_tokens) * demand.n
    tokens = prompt.reserve(reserve.image_tokens, ceiling)
    cost = 0
    for price in prices:
        mine = prompt.reserve(price.image_tokens, ceiling) if price.image_tokens else tokens
        cost = max(cost, worst_case_micro_usd(mine, max_output, price))
        tokens = max(tokens, mine)
    return Plan(scopes, tokens, max_output, cost, prompt, reserve.image_tokens, ceiling)


def estimate_output(chars: int) -> int:
    """Output tokens of an answer whose provider reported none, from the characters of text and
    tool-call arguments it sent (never from the number of chunks: a chunk may hold many tokens)."""
    return -(-chars // ESTIMATE_CHARS_PER_TOKEN)


async def admit(store: Store, request_id: str, plan: Plan, fail_open: bool) -> Decision:
    never_fits(plan)
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
        raise RateLimited(
            f"Rate limit reached for {_name(scope)}: too many {what}. "
            f"Retry after {decision.retry_after or 1:.1f}s.",
            retry_after=decision.retry_after or 1.0,
        )
    if decision.verdict is Verdict.BUDGET_EXCEEDED:
        raise BudgetExceeded(_budget_refusal(decision, plan))
    return decision


def never_fits(plan: Plan) -> None:
    """Refuse, as invalid, a request whose worst case exceeds a scope's TPM on its own: no wait makes it
    fit, so a 429 would only make clients retry it for nothing."""
    for scope in plan.scopes:
        if scope.tpm is not None and plan.tokens > scope.tpm:
            raise ExceedsLimit(
                f"This request may use up to {plan.tokens} tokens (max_tokens {plan.max_output_tokens} "
                f"in all, prompt reserved at {plan.prompt_tokens}), more than the limit of {_name(scope)} "
                f"of {scope.tpm} tokens per minute: it can never be admitted. Lower max_tokens (or n).",
                param="max_tokens",
            )


def _name(scope: Scope | None) -> str:
    return f"{scope.kind} '{scope.name}'" if scope else "this key"


def _budget_refusal(decision: Decision, plan: Plan) -> str:
    """Whether the budget is spent, or only this request's worst case does not fit (and by how much)."""
    scope = decision.refused_by
    budget = scope.budget_micro_usd if scope is not None else None
    worst = micro_to_usd(plan.cost_micro_usd)
    if budget is None or decision.spent_micro_usd is None:
        return (
            f"The budget of {_name(scope)} is exhausted for this period (this request could cost up to "
            f"${worst:.6f}). Ask the gateway operator to raise it."
        )
    spent, held = decision.spent_micro_usd, decision.reserved_micro_usd or 0
    if spent >= budget:
        return (
            f"The budget of {_name(scope)} is spent for this period (${micro_to_usd(spent):.6f} of "
            f"${micro_to_usd(budget):.6f}). Ask the gateway operator to raise it."
        )
    left = budget - spent - held
    short = plan.cost_micro_usd - max(0, left)
    in_flight = f", ${micro_to_usd(held):.6f} held by requests in flight" if held else ""
    return (
        f"This request's worst case (${worst:.6f}) does not fit in the budget of {_name(scope)}: "
        f"${micro_to_usd(max(0, left)):.6f} left{in_flight}, short by ${micro_to_usd(short):.6f}. "
        "Lower max_tokens, or ask the gateway operator to raise the budget."
    )


def build_record(ctx: RequestContext, endpoint: str, plan: Plan) -> UsageRecord:
    """The usage record of an admitted request, from its context as the request left it.

    Without the provider's usage: an estimate when a provider answered (``ctx.answered``), else zero
    (nothing reached a provider, or it answered with an error and no usage: nothing to bill)."""
    key, tenant, model = ctx.key, ctx.tenant, ctx.model
    provider, upstream_model = ctx.provider, ctx.upstream_model
    assert key is not None and tenant is not None and model is not None, "recorded before authentication"
    assert provider is not None and upstream_model is not None, "recorded before admission"
    outcome = ctx.outcome
    usage = ctx.usage
    estimated = usage is None and ctx.answered and outcome is not Outcome.REJECTED
    estimated = estimated or (ctx.estimated and ctx.answered and outcome is not Outcome.REJECTED)
    price = ctx.price
    source = price.source if price is not None else PriceSource.NONE
    if usage is None:
        usage = (
            Usage(
                prompt_tokens=plan.prompt_estimate(ctx.price),
                completion_tokens=estimate_output(ctx.output_chars),
            )
            if estimated
            else Usage()
        )
    cost = cost_micro_usd(usage, price) if price is not None else 0
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
        estimated=estimated or source is PriceSource.NONE,  # unpriced: the cost is not known
        started_at=ctx.started_at,
        endpoint=endpoint,
        status=ctx.status,
        attempts=ctx.attempts,
        client_request_id=ctx.client_request_id,
        price_source=source.value,
        unit=ctx.unit,
        units=usage.units or 0,
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
