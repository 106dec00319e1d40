"""The request spine of the data plane: one function, read top to bottom.

    authenticate -> read body -> resolve -> admit -> dispatch -> respond (JSON or relay) -> settle

``serve`` runs it for ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``. Everything
after admission sits in ``try/finally`` so that every admitted request is settled exactly once, whatever
happens (provider error, client gone, cancellation).
"""

from __future__ import annotations

import dataclasses
import time

from aiohttp import web

from proxy.config import Timeouts
from proxy.dataplane.body import ClientBody, read_body
from proxy.dataplane.dispatch import Failed, OpenStream, Refused, Served, dispatch
from proxy.dataplane.relay import relay
from proxy.errors import (
    InvalidApiKey,
    InvalidRequest,
    ModelNotAllowed,
    ModelNotFound,
    ProviderError,
    UpstreamFailed,
)
from proxy.gateway import CONTEXT, GATEWAY, Gateway, RequestContext
from proxy.metering.meter import Charge, Plan, admit, build_record, make_plan, settle
from proxy.metering.pricing import Price
from proxy.plugin import Call, Endpoint, Provider
from proxy.routing.guard import GUARD
from proxy.routing.table import Choice, Route, model_allowed
from proxy.state.snapshot import Snapshot
from proxy.store.base import Decision, Scope
from proxy.store.records import Outcome
from proxy.tenancy.keys import VirtualKey
from proxy.tenancy.vault import redact

Candidate = tuple[Choice, Provider, Timeouts, Price]


async def serve(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    snapshot = gw.snapshot  # this request's config, whatever reloads happen meanwhile
    ctx = request[CONTEXT]

    key = authenticate(request, snapshot)
    ctx.key, ctx.tenant = key.name, key.tenant
    server = snapshot.settings.server
    body = await read_body(request, endpoint, server.max_body_bytes, server.body_timeout)
    ctx.model = body.model
    route, candidates = resolve(snapshot, key, body.model, endpoint)
    plan = make_plan(
        scopes(snapshot, key),
        body,
        [price for *_, price in candidates],
        snapshot.settings.metering.default_max_tokens,
    )
    decision = await admit(gw.store, ctx.request_id, plan, snapshot.settings.store.on_outage == "fail_open")

    first = candidates[0]
    charge = Charge(first[0].provider, first[0].model, None, first[3], Outcome.UPSTREAM_ERROR, 502, None, 0)
    try:
        return await _answer(
            request, gw, snapshot, ctx, key, body, endpoint, route, candidates, decision, charge
        )
    finally:
        await _meter(gw, ctx, key, body, endpoint, plan, charge, decision.reserved)


async def _answer(
    request: web.Request,
    gw: Gateway,
    snapshot: Snapshot,
    ctx: RequestContext,
    key: VirtualKey,
    body: ClientBody,
    endpoint: Endpoint,
    route: Route,
    candidates: list[Candidate],
    decision: Decision,
    charge: Charge,
) -> web.StreamResponse:
    prices = {choice: price for choice, _, _, price in candidates}

    def make_call(choice: Choice) -> Call:
        api_key = snapshot.api_key(key.tenant, choice.provider)
        return Call(endpoint, body.obj, choice.model, body.stream, body.include_usage, api_key)

    outcome = await dispatch(
        gw.upstream,
        [(choice, provider, timeouts) for choice, provider, timeouts, _ in candidates],
        make_call,
        on_attempt=lambda a: gw.metrics.upstream_errors.labels(
            a.provider, "timeout" if a.timeout else "error"
        ).inc(),
        guard=request.app.get(GUARD),
        route=route,
        model=body.model,
        providers=snapshot.settings.providers,
        egress=snapshot.egress,
    )
    if isinstance(outcome, Failed):
        charge.attempts = len(outcome.attempts)
        charge.status = 504 if outcome.timed_out else 502
        ctx.attempts = charge.attempts
        used = _secrets(snapshot, key, candidates)
        tried = redact(outcome.describe(), used) or "no target could be tried"
        raise UpstreamFailed(
            f"Every provider for model '{body.model}' failed ({tried}).",
            timeout=outcome.timed_out,
            retry_after=outcome.retry_after,
        )
    charge.provider, charge.upstream_model = outcome.choice.provider, outcome.choice.model
    charge.price = prices[outcome.choice]
    charge.attempts = ctx.attempts = len(outcome.attempts)
    ctx.provider, ctx.upstream_model = charge.provider, charge.upstream_model
    headers = _headers(ctx, decision)
    if isinstance(outcome, Refused):
        charge.outcome, charge.status = Outcome.REJECTED, outcome.error.status
        # Some providers quote the key they were given; it must not reach the client (or its logs).
        used = _secrets(snapshot, key, candidates)
        raise ProviderError(dataclasses.replace(outcome.error, message=redact(outcome.error.message, used)))
    if isinstance(outcome, Served):
        charge.usage = outcome.reply.usage
        charge.outcome, charge.status = Outcome.COMPLETED, 200
        if request.transport is None or request.transport.is_closing():
            charge.outcome = Outcome.CLIENT_ABORTED
        charge.ttfb = time.monotonic() - ctx.started
        return web.Response(
            body=outcome.reply.body, headers={**headers, "Content-Type": outcome.reply.content_type}
        )
    assert isinstance(outcome, OpenStream)
    settings = snapshot.settings.metering
    response, result = await relay(
        request,
        outcome,
        headers,
        ctx.started,
        settings.on_client_disconnect == "drain",
        settings.drain_timeout,
    )
    charge.usage, charge.outcome, charge.ttfb, charge.events = (
        result.usage,
        result.outcome,
        result.ttfb,
        result.events,
    )
    charge.status = 200
    return response


async def _meter(
    gw: Gateway,
    ctx: RequestContext,
    key: VirtualKey,
    body: ClientBody,
    endpoint: Endpoint,
    plan: Plan,
    charge: Charge,
    reserved: bool,
) -> None:
    record = build_record(
        request_id=ctx.request_id,
        client_request_id=ctx.client_request_id,
        key=key.name,
        tenant=key.tenant,
        model=body.model,
        endpoint=str(endpoint),  # StrEnum: its value, without the enum property lookup
        body=body,
        charge=charge,
        started_at=ctx.started_at,
        started_mono=ctx.started,
    )
    ctx.metered = True
    ctx.provider, ctx.upstream_model, ctx.outcome = (
        record.provider,
        record.upstream_model,
        str(record.outcome),
    )
    ctx.prompt_tokens, ctx.completion_tokens = record.prompt_tokens, record.completion_tokens
    ctx.cost_micro_usd, ctx.ttfb = record.cost_micro_usd, charge.ttfb
    crossings = await settle(gw.store, record, plan, reserved)
    m = gw.metrics.route(record.model, record.provider)
    m.prompt.inc(record.prompt_tokens)
    m.completion.inc(record.completion_tokens)
    if record.cached_tokens:
        m.cached.inc(record.cached_tokens)
    m.cost.inc(record.cost_micro_usd)
    if charge.ttfb is not None:
        m.ttfb.observe(charge.ttfb)
    if crossings:
        gw.metrics.alerts.labels("budget").inc(len(crossings))
        gw.alerts.budget(crossings)


def authenticate(request: web.Request, snapshot: Snapshot) -> VirtualKey:
    header = request.headers.get("Authorization")
    secret: str | None = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            secret = value.strip()
    else:
        secret = request.headers.get("api-key")  # Azure-style clients
    key = snapshot.keys.lookup(secret) if secret else None
    if key is None:
        raise InvalidApiKey()
    return key


def resolve(
    snapshot: Snapshot, key: VirtualKey, model: str, endpoint: Endpoint
) -> tuple[Route, list[Candidate]]:
    """The targets that may serve this request, in order, each with its price."""
    if not model_allowed(key.models, model):
        raise ModelNotAllowed(f"This key may not use the model '{model}'.", param="model")
    resolution = snapshot.resolve(model)
    if resolution is None:
        raise ModelNotFound(f"The model '{model}' does not exist on this gateway.", param="model")
    candidates: list[Candidate] = []
    unpriced: list[str] = []
    for choice in resolution.choices:
        provider = snapshot.providers.get(choice.provider)
        if (
            provider is None
            or not snapshot.serving(choice.provider, key.tenant)
            or endpoint not in provider.endpoints
        ):
            continue
        price = snapshot.price(choice.provider, choice.model)
        if price is None:
            unpriced.append(f"{choice.provider}/{choice.model}")
            continue
        candidates.append((choice, provider, snapshot.settings.providers[choice.provider].timeouts, price))
    if not candidates:
        if unpriced:
            raise InvalidRequest(
                f"The model '{model}' has no price ({', '.join(unpriced)}), so it cannot be metered; "
                "the gateway operator must add it to the price table or set pricing.default.",
                param="model",
            )
        raise ModelNotFound(
            f"The model '{model}' is not available for this request (its providers are disabled "
            f"or do not serve /v1/{endpoint.value}).",
            param="model",
        )
    return resolution.route, candidates


def _secrets(snapshot: Snapshot, key: VirtualKey, candidates: list[Candidate]) -> list[str | None]:
    """The provider keys this request may have sent (the tenant's own and the shared ones), to redact."""
    return [
        k for c, p, *_ in candidates for k in (snapshot.api_key(key.tenant, c.provider), p.settings.api_key)
    ]


def scopes(snapshot: Snapshot, key: VirtualKey) -> tuple[Scope, ...]:
    tenant_scope = snapshot.tenant_scope(key.tenant)
    alert_at = tenant_scope.alert_at if tenant_scope else (0.5, 0.8, 1.0)
    key_scope = key.scope(alert_at)
    return (key_scope, tenant_scope) if tenant_scope else (key_scope,)


def _headers(ctx: RequestContext, decision: Decision) -> dict[str, str]:
    headers = {
        "x-efflux-provider": ctx.provider or "",
        "x-efflux-upstream-model": ctx.upstream_model or "",
        "x-efflux-attempts": str(ctx.attempts),
    }
    room = decision.headroom
    if room.limit_requests is not None:
        headers["x-ratelimit-limit-requests"] = str(room.limit_requests)
        headers["x-ratelimit-remaining-requests"] = str(max(0, room.remaining_requests or 0))
    if room.limit_tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(room.limit_tokens)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, room.remaining_tokens or 0))
    return headers
