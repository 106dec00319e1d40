"""The request spine of the data plane: one function, read top to bottom.

    authenticate -> read body -> resolve -> admit -> dispatch -> respond (JSON or relay) -> settle

``serve`` runs it for ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``, and, with a
:class:`~proxy.dataplane.dialect.Dialect`, for endpoints in another wire format (``/v1/responses``): each
candidate then serves natively or through chat, translated by the dialect. The OpenAI family's other
endpoints (moderations, images, audio, rerank) run the same steps in :mod:`proxy.dataplane.passthrough`.
Everything after admission sits in ``try/finally`` so that every admitted request is settled exactly once,
whatever happens (provider error, client gone, cancellation).
"""

from __future__ import annotations

import dataclasses
import time

from aiohttp import web

from proxy.dataplane.body import ClientBody, read_body
from proxy.dataplane.dialect import DIALECT, Dialect
from proxy.dataplane.dispatch import Candidate, Failed, OpenStream, Refused, Served, dispatch
from proxy.dataplane.relay import error_event, relay
from proxy.errors import (
    GatewayError,
    InvalidApiKey,
    InvalidRequest,
    ModelNotAllowed,
    ModelNotFound,
    ProviderError,
    UpstreamFailed,
)
from proxy.gateway import CONTEXT, GATEWAY, Gateway
from proxy.metering.context import RequestContext
from proxy.metering.meter import Plan, admit, build_record, make_plan, settle
from proxy.metering.pricing import UNPRICED
from proxy.observe.metrics import OTHER
from proxy.plugin import UNIT_ENDPOINTS, Call, Endpoint, JSONObject
from proxy.routing.guard import GUARD
from proxy.routing.table import Route, deployment_of, model_allowed
from proxy.state.snapshot import Snapshot
from proxy.store.base import Decision, Scope
from proxy.store.records import Outcome
from proxy.tenancy.keys import VirtualKey
from proxy.tenancy.redaction import redact
from proxy.upstream.egress import DEFAULT_EGRESS

_UNANSWERED = (Failed, Refused)  # built once: a tuple in the call would be built per request
_NO_HEADERS: dict[str, str] = {}


async def serve(
    request: web.Request, endpoint: Endpoint, dialect: Dialect | None = None
) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    snapshot = gw.snapshot  # this request's config, whatever reloads happen meanwhile
    ctx = request[CONTEXT]
    if dialect is not None:
        request[DIALECT] = dialect  # the edge answers errors in its envelope

    key = await authenticate(request, snapshot)
    ctx.key, ctx.tenant = key.name, key.tenant
    server = snapshot.settings.server
    body = await read_body(request, endpoint, server.max_body_bytes, server.body_timeout)
    ctx.model = body.model
    chat_body: JSONObject | None = None
    if dialect is None:
        route, candidates = resolve(snapshot, key, body.model, endpoint)
    else:
        await dialect.prepare(gw.store, key, body)
        route, candidates = resolve(snapshot, key, body.model, endpoint, translate=True)
        chat_body, candidates = _translate(dialect, body, candidates)
    ctx.route = route.name  # the metric label: the routing table's name, never the client's string
    metering = snapshot.settings.metering
    plan = make_plan(
        scopes(snapshot, key),
        body,
        [c.price for c in candidates],
        metering.default_max_tokens,
        metering.reserve,
    )
    decision = await admit(gw.store, ctx.request_id, plan, snapshot.settings.store.on_outage == "fail_open")
    record_target(ctx, candidates[0])  # recorded until another target answers

    forwarded = _NO_HEADERS if dialect is None else dialect.forwarded_headers()

    def make_call(candidate: Candidate) -> Call:
        choice = candidate.choice
        api_key = snapshot.api_key(key.tenant, choice.provider)
        deployment = deployment_of(route, choice, body.model)
        if candidate.translated and chat_body is not None:  # the dialect reads the usage chunk itself
            return Call(Endpoint.CHAT, chat_body, choice.model, body.stream, True, api_key, deployment)
        return Call(
            endpoint,
            body.obj,
            choice.model,
            body.stream,
            body.include_usage,
            api_key,
            deployment,
            headers=forwarded,
        )

    try:
        result = await dispatch(
            gw.upstream,
            candidates,
            make_call,
            on_attempt=lambda a: gw.metrics.upstream_errors.labels(
                a.provider, "timeout" if a.timeout else "error"
            ).inc(),
            guard=request.app.get(GUARD),
            route=route,
            model=body.model,
            max_event_bytes=snapshot.settings.server.max_sse_event_bytes,
            dialect=dialect,
        )
        ctx.attempts = len(result.attempts)
        if isinstance(result, _UNANSWERED):
            raise failure(ctx, result, body.model, provider_secrets(snapshot, key, candidates))
        record_target(ctx, result.candidate)
        ctx.answered = True  # from here a missing usage is estimated, not taken as nothing to bill
        headers = answer_headers(ctx, decision)
        if isinstance(result, Served):
            answer: web.StreamResponse = _reply(request, ctx, result, headers)
        else:
            assert isinstance(result, OpenStream), "only Call.raw answers are OpenBody"
            answer = await relay(
                request,
                result,
                headers,
                ctx,
                metering.on_client_disconnect == "drain",
                metering.drain_timeout,
                server.write_timeout,
                stream_error=error_event if dialect is None else dialect.stream_error,
            )
            ctx.status = 200
        if dialect is not None and ctx.outcome is Outcome.COMPLETED:
            await dialect.finish(gw.store, key, result.candidate.translated)
        return answer
    finally:
        await settle_request(gw, ctx, str(endpoint), plan, decision.reserved)


def _translate(
    dialect: Dialect, body: ClientBody, candidates: list[Candidate]
) -> tuple[JSONObject | None, list[Candidate]]:
    """The chat body for the candidates that serve the dialect through chat, translated once. When it
    cannot be translated, those candidates are dropped; with none left, the client gets the reason."""
    if not any(c.translated for c in candidates):
        return None, candidates
    try:
        return dialect.to_chat(body.obj), candidates
    except InvalidRequest:
        native = [c for c in candidates if not c.translated]
        if not native:
            raise
        return None, native


def record_target(ctx: RequestContext, candidate: Candidate) -> None:
    choice = candidate.choice
    ctx.provider, ctx.upstream_model, ctx.price = choice.provider, choice.model, candidate.price


def failure(
    ctx: RequestContext, result: Failed | Refused, model: str, secrets: list[str | None]
) -> GatewayError:
    """The client's error when no target answered, recorded in ``ctx``; ``secrets`` are redacted."""
    if isinstance(result, Refused):
        record_target(ctx, result.candidate)
        ctx.outcome, ctx.status = Outcome.REJECTED, result.error.status
        # Some providers quote the key they were given; it must not reach the client (or its logs).
        message = redact(result.error.message, secrets)
        return ProviderError(dataclasses.replace(result.error, message=message))
    ctx.status = 504 if result.timed_out else 502
    tried = redact(result.describe(), secrets) or "no target could be tried"
    return UpstreamFailed(
        f"Every provider for model '{model}' failed ({tried}).",
        timeout=result.timed_out,
        retry_after=result.retry_after,
        provider_status=result.provider_status,
    )


def _reply(
    request: web.Request, ctx: RequestContext, served: Served, headers: dict[str, str]
) -> web.Response:
    reply = served.reply
    ctx.usage, ctx.output_chars = reply.usage, reply.output_chars
    ctx.outcome, ctx.status = Outcome.COMPLETED, 200
    if request.transport is None or request.transport.is_closing():
        ctx.outcome = Outcome.CLIENT_ABORTED
    ctx.ttfb = time.monotonic() - ctx.started
    return web.Response(body=reply.body, headers={**headers, "Content-Type": reply.content_type})


async def settle_request(gw: Gateway, ctx: RequestContext, endpoint: str, plan: Plan, reserved: bool) -> None:
    """Settle the request (``endpoint``: the StrEnum's value, without the enum property lookup)."""
    record = ctx.record = build_record(ctx, endpoint, plan)
    crossings = await settle(gw.store, record, plan, reserved)
    m = gw.metrics.route(ctx.route or OTHER, record.provider)
    m.prompt.inc(record.prompt_tokens)
    m.completion.inc(record.completion_tokens)
    if record.cached_tokens:
        m.cached.inc(record.cached_tokens)
    m.cost.inc(record.cost_micro_usd)
    if record.price_source == "none" and ctx.answered:  # served (a provider answered) without a price
        gw.unpriced.served(gw.metrics, gw.alerts, record.provider, record.upstream_model)
    if ctx.ttfb is not None:
        m.ttfb.observe(ctx.ttfb)
    if crossings:
        gw.metrics.alerts.labels("budget").inc(len(crossings))
        gw.alerts.budget(crossings)


async def authenticate(request: web.Request, snapshot: Snapshot) -> VirtualKey:
    header = request.headers.get("Authorization")
    secret: str | None = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            secret = value.strip()
    else:  # Azure-style clients, and Anthropic's (its SDK sends the key as x-api-key)
        secret = request.headers.get("api-key") or request.headers.get("x-api-key")
    if not secret:
        raise InvalidApiKey()
    key = snapshot.keys.lookup(secret)
    if key is None:  # perhaps created on another replica a moment ago: the store knows it already
        gw = request.config_dict[GATEWAY]
        key = await gw.keys.stored(gw.store, snapshot, secret)
        if key is None:
            raise InvalidApiKey()
    return key


def resolve(
    snapshot: Snapshot, key: VirtualKey, model: str, endpoint: Endpoint, translate: bool = False
) -> tuple[Route, list[Candidate]]:
    """The targets that may serve this request, in order, each with its price and timeouts (the
    provider's, with the route's own timeouts laid over them). With ``translate``, a target that does
    not serve ``endpoint`` but serves chat is a candidate too, marked ``translated``."""
    if not model_allowed(key.models, model):
        raise ModelNotAllowed(f"This key may not use the model '{model}'.", param="model")
    resolution = snapshot.resolve(model)
    if resolution is None:
        raise ModelNotFound(f"The model '{model}' does not exist on this gateway.", param="model")
    route = resolution.route
    overrides = route.config.timeouts if route.config is not None else None
    candidates: list[Candidate] = []
    unpriced: list[str] = []
    for choice in resolution.choices:
        provider = snapshot.providers.get(choice.provider)
        if provider is None or not snapshot.serving(choice.provider, key.tenant):
            continue
        translated = endpoint not in provider.endpoints
        if translated and not (translate and Endpoint.CHAT in provider.endpoints):
            continue
        price = snapshot.price(choice.provider, choice.model)
        if price is None and endpoint in UNIT_ENDPOINTS:
            price = UNPRICED  # served all the same, its record flagged as an estimate
        if price is None:
            if not snapshot.allows_unpriced(choice.provider):
                unpriced.append(f"{choice.provider}/{choice.model}")
                continue
            price = UNPRICED  # served, recorded with price_source: none (pricing.unknown: allow)
        config = snapshot.settings.providers[choice.provider]
        timeouts = config.timeouts if overrides is None else overrides.apply(config.timeouts)
        candidates.append(
            Candidate(
                choice,
                provider,
                timeouts,
                price,
                breaker=config.breaker,
                egress=snapshot.egress.get(choice.provider, DEFAULT_EGRESS),
                credential=snapshot.credential(key.tenant, choice.provider),
                translated=translated,
            )
        )
    if not candidates:
        if unpriced:
            raise InvalidRequest(
                f"The model '{model}' has no price ({', '.join(unpriced)}), so it cannot be metered; "
                "the gateway operator must add it to the price table, set pricing.default, or allow "
                "unpriced models (pricing.unknown: allow).",
                param="model",
            )
        raise ModelNotFound(
            f"The model '{model}' is not available for this request (its providers are disabled "
            f"or do not serve /v1/{endpoint.value}).",
            param="model",
        )
    return route, candidates


def provider_secrets(snapshot: Snapshot, key: VirtualKey, candidates: list[Candidate]) -> list[str | None]:
    """The provider keys this request may have sent (the tenant's own and the shared ones), to redact."""
    return [
        k
        for c in candidates
        for k in (snapshot.api_key(key.tenant, c.choice.provider), c.provider.settings.api_key)
    ]


def scopes(snapshot: Snapshot, key: VirtualKey) -> tuple[Scope, ...]:
    tenant_scope = snapshot.tenant_scope(key.tenant)
    alert_at = tenant_scope.alert_at if tenant_scope else (0.5, 0.8, 1.0)
    key_scope = key.scope(alert_at)
    return (key_scope, tenant_scope) if tenant_scope else (key_scope,)


def answer_headers(ctx: RequestContext, decision: Decision) -> dict[str, str]:
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
