"""Reports computed from the ledger and the price table.

    GET  /admin/usage?group_by=day|model|provider|key|tenant&since=&until=   totals per group
    GET  /admin/compare?model=                                               one model across providers
    POST /admin/estimate                                                     a request body -> its cost

Reports read ``store.records()`` page by page (at most ``MAX_RECORDS`` records, then ``truncated``), so
they work the same on both stores. Latency percentiles are nearest-rank over the records read.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from proxy.admin.common import gateway, json_response, number, operation
from proxy.dataplane.body import read_body
from proxy.errors import InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.metering.meter import ESTIMATE_BYTES_PER_TOKEN, make_plan
from proxy.metering.pricing import cost_micro_usd, worst_case_micro_usd
from proxy.plugin import Endpoint, Usage
from proxy.store.records import Outcome, RecordQuery, UsageRecord

MAX_RECORDS = 200_000
PAGE = 5000  # internal pages: fewer store round trips than the public API's 1000
DEFAULT_EXPECTED_OUTPUT = 256  # tokens, when the ledger has no answers of this model yet
ERRORS = (Outcome.UPSTREAM_ERROR, Outcome.REJECTED)

GROUPS: dict[str, Callable[[UsageRecord], str]] = {
    "day": lambda r: time.strftime("%Y-%m-%d", time.gmtime(r.started_at)),
    "model": lambda r: r.model,
    "provider": lambda r: r.provider,
    "key": lambda r: r.key,
    "tenant": lambda r: r.tenant,
}


class Group(BaseModel):
    group: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_micro_usd: int
    latency_p50_ms: int | None
    latency_p95_ms: int | None


class CostShare(BaseModel):
    provider: str
    model: str
    cost_micro_usd: int
    requests: int


class Popularity(BaseModel):
    model: str
    requests: int


class UsageReport(BaseModel):
    group_by: str
    since: float | None
    until: float | None
    data: list[Group]
    totals: Group
    cost_breakdown: list[CostShare]
    popular_models: list[Popularity]
    truncated: bool


class ProviderPrice(BaseModel):
    input: float
    output: float
    cached_input: float


class ProviderComparison(BaseModel):
    provider: str
    upstream_model: str | None
    price: ProviderPrice | None
    routed: bool
    requests: int
    error_rate: float | None
    latency_p50_ms: int | None
    latency_p95_ms: int | None


class Comparison(BaseModel):
    model: str
    data: list[ProviderComparison]


class EstimateRequest(BaseModel):
    """An OpenAI chat request, as it would be sent to ``/v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[dict[str, object]]
    max_tokens: Annotated[int, Field(ge=1, le=2**31)] | None = None  # bounded: costs stay JSON integers


class TargetEstimate(BaseModel):
    provider: str
    upstream_model: str
    worst_case_micro_usd: int
    expected_micro_usd: int


class Estimate(BaseModel):
    model: str
    prompt_tokens: int
    max_output_tokens: int
    expected_output_tokens: int
    expected_basis: Literal["ledger", "default"]
    worst_case_micro_usd: int
    expected_micro_usd: int
    targets: list[TargetEstimate]


async def read_records(
    gw: Gateway, query: RecordQuery, page_size: int = PAGE
) -> tuple[list[UsageRecord], bool]:
    """Every record the query matches, up to ``MAX_RECORDS`` (then ``True``: truncated)."""
    out: list[UsageRecord] = []
    cursor: str | None = None
    while True:
        page = await gw.store.records(
            RecordQuery(
                key=query.key,
                tenant=query.tenant,
                since=query.since,
                until=query.until,
                limit=page_size,
                cursor=cursor,
            )
        )
        out += page.data
        cursor = page.next_cursor
        if cursor is None:
            return out, False
        if len(out) >= MAX_RECORDS:
            return out, True


def percentile(sorted_values: list[int], share: float) -> int | None:
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * share // 1))  # nearest rank: ceil(n * share)
    return sorted_values[int(rank) - 1]


def summarize(name: str, records: list[UsageRecord]) -> Group:
    latencies = sorted(r.latency_ms for r in records)
    return Group(
        group=name,
        requests=len(records),
        errors=sum(1 for r in records if r.outcome in ERRORS),
        prompt_tokens=sum(r.prompt_tokens for r in records),
        completion_tokens=sum(r.completion_tokens for r in records),
        cached_tokens=sum(r.cached_tokens for r in records),
        cost_micro_usd=sum(r.cost_micro_usd for r in records),
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p95_ms=percentile(latencies, 0.95),
    )


def report(records: list[UsageRecord], group_by: str) -> dict[str, object]:
    """The body of ``GET /admin/usage`` without the query echo (shared with ``/me/usage``)."""
    groups: dict[str, list[UsageRecord]] = defaultdict(list)
    costs: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    popular: dict[str, int] = defaultdict(int)
    for r in records:
        groups[GROUPS[group_by](r)].append(r)
        slot = costs[(r.provider, r.model)]
        slot[0] += r.cost_micro_usd
        slot[1] += 1
        popular[r.model] += 1
    breakdown = sorted(costs.items(), key=lambda kv: -kv[1][0])
    return {
        "data": [summarize(name, rs).model_dump() for name, rs in sorted(groups.items())],
        "totals": summarize("total", records).model_dump(),
        "cost_breakdown": [
            CostShare(provider=p, model=m, cost_micro_usd=c, requests=n).model_dump()
            for (p, m), (c, n) in breakdown
        ],
        "popular_models": [
            {"model": m, "requests": n} for m, n in sorted(popular.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
    }


def group_by_of(request: web.Request) -> str:
    group_by = request.query.get("group_by") or "day"
    if group_by not in GROUPS:
        raise InvalidRequest(f"'group_by' must be one of {', '.join(GROUPS)}.", param="group_by")
    return group_by


@operation(
    "Usage totals per day, model, provider, key or tenant, with cost breakdown and model popularity",
    response=UsageReport,
    query=(
        ("group_by", "string", "day (default), model, provider, key or tenant"),
        ("since", "number", "unix seconds, inclusive"),
        ("until", "number", "unix seconds, exclusive"),
        ("tenant", "string", "only this tenant"),
        ("key", "string", "only this key name"),
    ),
    tag="usage",
)
async def usage(request: web.Request) -> web.Response:
    q = request.query
    group_by = group_by_of(request)
    since, until = number(q, "since"), number(q, "until")
    query = RecordQuery(key=q.get("key") or None, tenant=q.get("tenant") or None, since=since, until=until)
    records, truncated = await read_records(gateway(request), query)
    body = {"group_by": group_by, "since": since, "until": until, **report(records, group_by)}
    return json_response({**body, "truncated": truncated})


@operation(
    "One model across providers: price, observed latency and error rate",
    response=Comparison,
    query=(
        ("model", "string", "the model name clients send (required)"),
        ("since", "number", "unix seconds; default: the last 7 days"),
    ),
    tag="usage",
)
async def compare(request: web.Request) -> web.Response:
    gw = gateway(request)
    model = request.query.get("model") or ""
    if not model:
        raise InvalidRequest("'model' is required.", param="model")
    since = number(request.query, "since")
    records, _ = await read_records(
        gw, RecordQuery(since=since if since is not None else time.time() - 7 * 86400)
    )
    observed: dict[str, list[UsageRecord]] = defaultdict(list)
    for r in records:
        if r.model == model or r.upstream_model == model:
            observed[r.provider].append(r)
    snapshot = gw.snapshot
    resolution = snapshot.resolve(model)
    upstream: dict[str, str | None] = {c.provider: c.model for c in resolution.choices} if resolution else {}
    rows = []
    for provider in sorted(set(upstream) | set(observed)):
        mine = observed.get(provider, [])
        upstream_model = upstream.get(provider) or (mine[-1].upstream_model if mine else None)
        price = snapshot.price(provider, upstream_model) if upstream_model else None
        latencies = sorted(r.latency_ms for r in mine if r.outcome not in ERRORS)
        rows.append(
            ProviderComparison(
                provider=provider,
                upstream_model=upstream_model,
                price=ProviderPrice(**price.usd_per_million()) if price else None,
                routed=provider in upstream,
                requests=len(mine),
                error_rate=(sum(1 for r in mine if r.outcome in ERRORS) / len(mine)) if mine else None,
                latency_p50_ms=percentile(latencies, 0.5),
                latency_p95_ms=percentile(latencies, 0.95),
            ).model_dump()
        )
    if not rows:
        raise NotFound(f"The model '{model}' is neither routable nor in the ledger.")
    return json_response({"model": model, "data": rows})


@operation(
    "Worst-case and expected cost of a chat request (the admission reservation, and a typical answer)",
    body=EstimateRequest,
    response=Estimate,
    tag="usage",
)
async def estimate(request: web.Request) -> web.Response:
    gw = gateway(request)
    snapshot = gw.snapshot
    body = await read_body(request, Endpoint.CHAT, snapshot.settings.server.max_body_bytes)
    resolution = snapshot.resolve(body.model)
    if resolution is None:
        raise NotFound(f"The model '{body.model}' does not exist on this gateway.")
    priced = [(c, p) for c in resolution.choices if (p := snapshot.price(c.provider, c.model)) is not None]
    if not priced:
        raise InvalidRequest(f"The model '{body.model}' has no price.", param="model")
    plan = make_plan((), body, [p for _, p in priced], snapshot.settings.metering.default_max_tokens)
    recent = await gw.store.records(RecordQuery(since=time.time() - 7 * 86400, limit=PAGE))
    answers = [
        r.completion_tokens for r in recent.data if r.model == body.model and r.outcome is Outcome.COMPLETED
    ]
    basis: Literal["ledger", "default"] = "ledger" if answers else "default"
    expected_out = round(sum(answers) / len(answers)) if answers else DEFAULT_EXPECTED_OUTPUT
    expected_out = min(expected_out, plan.max_output_tokens)
    prompt = body.size // ESTIMATE_BYTES_PER_TOKEN + 1
    targets = [
        TargetEstimate(
            provider=c.provider,
            upstream_model=c.model,
            worst_case_micro_usd=worst_case_micro_usd(plan.prompt_tokens, plan.max_output_tokens, p),
            expected_micro_usd=cost_micro_usd(Usage(prompt_tokens=prompt, completion_tokens=expected_out), p),
        )
        for c, p in priced
    ]
    return json_response(
        Estimate(
            model=body.model,
            prompt_tokens=plan.prompt_tokens,
            max_output_tokens=plan.max_output_tokens,
            expected_output_tokens=expected_out,
            expected_basis=basis,
            worst_case_micro_usd=plan.cost_micro_usd,
            # The first target serves unless it fails: the expected cost is at its price.
            expected_micro_usd=targets[0].expected_micro_usd,
            targets=targets,
        ).model_dump()
    )


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/usage", usage)
    router.add_get("/compare", compare)
    router.add_post("/estimate", estimate)
