"""``POST /v1/messages/count_tokens``: how many input tokens a Messages request would be.

    authenticate -> read body -> resolve -> admit (a request, no tokens) -> count -> record at zero

When the route's first target speaks Messages (the ``anthropic`` plugin declares
``Endpoint.COUNT_TOKENS``), the provider counts: the body goes to its ``/v1/messages/count_tokens`` (over
the route's Messages targets, with the usual fallback) and its answer comes back unchanged. Otherwise, or
when every such target failed, the gateway answers its own estimate, the one it records when a provider
reports no usage (text at 4 bytes per token, images and documents at their reservation:
:mod:`proxy.metering.reserve`), marked with the header ``x-efflux-estimated: true``.

A count is free: it reserves no tokens and no money, but it is a request like any other for the key's
requests-per-minute limit and a spent budget, and it is recorded in the ledger once, at zero tokens and
zero cost (``endpoint: messages/count_tokens``), so that every admitted request has its record.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from proxy.dataplane.body import read_body
from proxy.dataplane.dialect import DIALECT
from proxy.dataplane.dispatch import Candidate, Refused, Served, dispatch
from proxy.dataplane.spine import authenticate, resolve, scopes
from proxy.errors import ProviderError
from proxy.gateway import CONTEXT, GATEWAY
from proxy.messages.dialect import MessagesDialect
from proxy.metering.context import RequestContext
from proxy.metering.meter import Plan, admit, build_record, settle
from proxy.metering.reserve import MAX_PROMPT_ESTIMATE, Prompt, measure
from proxy.plugin import Call, Endpoint, Usage
from proxy.routing.guard import GUARD
from proxy.store.records import Outcome

ESTIMATED = "x-efflux-estimated"


async def count_tokens(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    snapshot = gw.snapshot
    ctx = request[CONTEXT]
    dialect = request[DIALECT] = MessagesDialect(request)  # errors in Anthropic's envelope

    key = await authenticate(request, snapshot)
    ctx.key, ctx.tenant = key.name, key.tenant
    server = snapshot.settings.server
    body = await read_body(request, Endpoint.COUNT_TOKENS, server.max_body_bytes, server.body_timeout)
    ctx.model = body.model
    route, candidates = resolve(snapshot, key, body.model, Endpoint.COUNT_TOKENS, translate=True)
    ctx.route = route.name
    reserve = snapshot.settings.metering.reserve
    plan = Plan(scopes(snapshot, key), 0, 0, 0, Prompt(0), reserve.image_tokens, MAX_PROMPT_ESTIMATE)
    decision = await admit(gw.store, ctx.request_id, plan, snapshot.settings.store.on_outage == "fail_open")
    first = candidates[0]
    _target(ctx, first)
    ctx.usage = Usage()  # free: whatever answers, nothing is billed
    forwarded = dialect.forwarded_headers()

    def make_call(candidate: Candidate) -> Call:
        api_key = snapshot.api_key(key.tenant, candidate.choice.provider)
        model = candidate.choice.model
        return Call(Endpoint.COUNT_TOKENS, body.obj, model, False, False, api_key, headers=forwarded)

    try:
        native = [c for c in candidates if not c.translated]
        if not first.translated:
            result = await dispatch(
                gw.upstream, native, make_call, guard=request.app.get(GUARD), route=route, model=body.model
            )
            ctx.attempts = len(result.attempts)
            if isinstance(result, Refused):
                _target(ctx, result.candidate)
                ctx.outcome, ctx.status = Outcome.REJECTED, result.error.status
                raise ProviderError(result.error)
            if isinstance(result, Served):
                _target(ctx, result.candidate)
                ctx.outcome, ctx.status = Outcome.COMPLETED, 200
                headers = {"x-efflux-provider": result.candidate.choice.provider, "x-efflux-attempts":
                           str(ctx.attempts)}  # fmt: skip
                return web.Response(body=result.reply.body, headers=headers, content_type="application/json")
        prompt = measure(body.obj, body.size, reserve)
        price = first.price
        image_tokens = price.image_tokens or reserve.image_tokens
        ceiling = price.context_length or MAX_PROMPT_ESTIMATE
        tokens = prompt.estimate(image_tokens, ceiling)
        ctx.outcome, ctx.status = Outcome.COMPLETED, 200
        return web.Response(
            body=orjson.dumps({"input_tokens": tokens}),
            headers={ESTIMATED: "true"},
            content_type="application/json",
        )
    finally:
        ctx.record = record = build_record(ctx, str(Endpoint.COUNT_TOKENS), plan)
        await settle(gw.store, record, plan, decision.reserved)


def _target(ctx: RequestContext, candidate: Candidate) -> None:
    choice = candidate.choice
    ctx.provider, ctx.upstream_model, ctx.price = choice.provider, choice.model, candidate.price
