"""Metering from the per-request context: the usage record it becomes, the admission plan, and the
background tasks a store asks for (a journaled Redis store's: ``test_journal.py``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from proxy.metering.alerts import Alerter
from proxy.metering.context import RequestContext
from proxy.metering.meter import Plan, build_record, make_plan, start_background
from proxy.metering.pricing import Price, micro_to_usd, usd_to_micro
from proxy.plugin import Usage
from proxy.store.memory import MemoryStore
from proxy.store.records import Outcome

PRICE = Price(input=usd_to_micro(1.0), output=usd_to_micro(2.0), cached_input=0, cache_write=0)


@dataclass
class Figures:
    size: int
    max_tokens: int | None = None
    n: int = 1
    obj: dict[str, object] = field(default_factory=dict)


def plan(body_size: int) -> Plan:
    """The plan of a text body of ``body_size`` bytes."""
    return make_plan((), Figures(body_size), [PRICE], default_max_tokens=100)


def admitted(**changes: object) -> RequestContext:
    """The context of a request admitted on ``local/m-1`` at ``PRICE``, then changed as given."""
    ctx = RequestContext("req_1", "client-1", time.monotonic(), 1700000000.0, "k", "acme", "m")
    ctx.provider, ctx.upstream_model, ctx.price, ctx.attempts = "local", "m-1", PRICE, 1
    for name, value in changes.items():
        setattr(ctx, name, value)
    return ctx


def test_a_completed_request_is_recorded_with_the_providers_usage() -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=50, provider_cost_usd=0.000123)
    ctx = admitted(usage=usage, outcome=Outcome.COMPLETED, status=200, ttfb=0.25, output_chars=28)
    record = build_record(ctx, "chat/completions", plan(4000))
    assert (record.request_id, record.client_request_id, record.key, record.tenant, record.model) == (
        "req_1",
        "client-1",
        "k",
        "acme",
        "m",
    )
    assert (record.provider, record.upstream_model, record.endpoint) == ("local", "m-1", "chat/completions")
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (100, 50, False)
    assert record.cost_micro_usd == 100 * 1 + 50 * 2  # $1 and $2 per 1M tokens: 1 and 2 micro-USD each
    assert record.provider_cost_micro_usd == 123
    assert (record.outcome, record.status, record.attempts, record.ttfb_ms) == (
        Outcome.COMPLETED,
        200,
        1,
        250,
    )
    assert record.started_at == 1700000000.0


def test_without_usage_an_answer_is_estimated_from_the_body_and_the_content() -> None:
    # Replaces the estimate from the number of events: 9 events of any size were billed 9 tokens.
    record = build_record(admitted(answered=True, output_chars=37), "chat/completions", plan(400))
    assert (record.outcome, record.status, record.estimated) == (Outcome.UPSTREAM_ERROR, 502, True)
    assert (record.prompt_tokens, record.completion_tokens) == (400 // 4 + 1, -(-37 // 4))
    assert record.ttfb_ms is None


def test_a_request_nothing_answered_is_recorded_at_zero() -> None:
    # An admitted request nothing answered: upstream_error, 502, and nothing to bill.
    record = build_record(admitted(), "chat/completions", plan(400))
    assert (record.outcome, record.status, record.estimated) == (Outcome.UPSTREAM_ERROR, 502, False)
    assert (record.prompt_tokens, record.completion_tokens, record.cost_micro_usd) == (0, 0, 0)


def test_a_refused_request_is_recorded_without_usage_and_not_as_an_estimate() -> None:
    ctx = admitted(outcome=Outcome.REJECTED, status=400, answered=True, output_chars=3)
    record = build_record(ctx, "embeddings", plan(400))
    assert (record.prompt_tokens, record.completion_tokens, record.cost_micro_usd) == (0, 0, 0)
    assert (record.estimated, record.status, record.endpoint) == (False, 400, "embeddings")


def test_admission_plans_from_any_body_with_a_size_max_tokens_and_n() -> None:
    figures = Figures(size=300, max_tokens=None, n=2)
    made = make_plan((), figures, [PRICE], default_max_tokens=100)
    assert (made.prompt_tokens, made.max_output_tokens) == (300 // 3 + 1, 200)
    assert made.cost_micro_usd == 101 * 1 + 200 * 2


def test_money_converts_both_ways_exactly_for_cents() -> None:
    assert usd_to_micro(19.99) == 19_990_000
    assert micro_to_usd(19_990_000) == 19.99


async def test_the_memory_store_needs_no_background_task() -> None:
    alerter = Alerter(None, {})
    assert start_background(MemoryStore(), alerter) == []
    assert not alerter.shared  # the settling request delivers its own alerts
