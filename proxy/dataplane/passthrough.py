"""The spine of the OpenAI family's other endpoints, passed through and metered in their own units.

    authenticate -> read body (JSON, or a multipart upload up to its model) -> resolve -> admit (units)
    -> dispatch -> answer (JSON, or audio bytes as they arrive) -> settle

``/v1/moderations``, ``/v1/images/generations``, ``/v1/audio/speech``, ``/v1/audio/transcriptions``,
``/v1/audio/translations`` and ``/v1/rerank`` go to the targets whose plugin declares the endpoint; the
body goes through untouched but for the model name. The units (:mod:`proxy.metering.units`) come from the
provider's answer (images made, audio seconds, searches) or from the request (characters of speech
input). An upload is streamed to the provider as it arrives (:mod:`proxy.dataplane.multipart`), so once
a target has taken it no other can be tried: fallback happens only before (connect errors, open
breakers). Speech is relayed as it comes (:func:`relay_body`), never held whole.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from proxy.dataplane.body import read_body
from proxy.dataplane.dispatch import Candidate, Failed, OpenBody, Refused, Served, dispatch
from proxy.dataplane.multipart import MultipartUpload, UploadBroken, open_upload
from proxy.dataplane.relay import WriteWatch
from proxy.dataplane.spine import (
    answer_headers,
    authenticate,
    failure,
    provider_secrets,
    record_target,
    resolve,
    scopes,
    settle_request,
)
from proxy.errors import RequestTooLarge
from proxy.gateway import CONTEXT, GATEWAY
from proxy.metering.context import RequestContext
from proxy.metering.meter import admit
from proxy.metering.pricing import Price
from proxy.metering.reserve import measure
from proxy.metering.units import UNIT_OF, UNPRICED, audio_seconds, unit_plan, worst_units
from proxy.plugin import UPLOAD_ENDPOINTS, Call, Endpoint, JSONObject, Usage
from proxy.routing.guard import GUARD
from proxy.routing.table import deployment_of
from proxy.store.records import Outcome
from proxy.upstream.client import UpstreamIOError


async def serve_passthrough(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    snapshot = gw.snapshot
    ctx = request[CONTEXT]

    key = await authenticate(request, snapshot)
    ctx.key, ctx.tenant = key.name, key.tenant
    server = snapshot.settings.server
    upload: MultipartUpload | None = None
    obj: JSONObject = {}
    size = 0
    if endpoint in UPLOAD_ENDPOINTS:
        upload = await open_upload(request, server.max_upload_bytes, server.body_timeout)
        model = upload.model
    else:
        body = await read_body(request, endpoint, server.max_body_bytes, server.body_timeout)
        model, obj, size = body.model, body.obj, body.size
    ctx.model = model
    route, candidates = resolve(snapshot, key, model, endpoint)
    ctx.route = route.name
    metering = snapshot.settings.metering
    # An upload sent chunked has no length yet: its worst case is the largest one accepted.
    upload_bytes = (
        0 if upload is None else server.max_upload_bytes if upload.length is None else upload.length
    )
    units = worst_units(endpoint, obj, upload_bytes)
    prompt = measure(obj, size, metering.reserve)
    plan = unit_plan(scopes(snapshot, key), prompt, units, [c.price for c in candidates], metering.reserve)
    decision = await admit(gw.store, ctx.request_id, plan, snapshot.settings.store.on_outage == "fail_open")
    record_target(ctx, candidates[0])
    ctx.unit = UNIT_OF.get(endpoint)

    def make_call(candidate: Candidate) -> Call:
        choice = candidate.choice
        api_key = snapshot.api_key(key.tenant, choice.provider)
        raw = endpoint is Endpoint.SPEECH
        deployment = deployment_of(route, choice, model)
        return Call(endpoint, obj, choice.model, False, False, api_key, deployment, upload=upload, raw=raw)

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
            model=model,
            spent=(lambda: upload.started) if upload is not None else None,
        )
        ctx.attempts = len(result.attempts)
        if isinstance(result, Failed | Refused):
            raise failure(ctx, result, model, provider_secrets(snapshot, key, candidates))
        record_target(ctx, result.candidate)
        ctx.answered = True
        headers = answer_headers(ctx, decision)
        if isinstance(result, Served):
            ctx.usage = _units(endpoint, result.reply.usage, ctx, upload)
            ctx.estimated = ctx.estimated or _unpriced(endpoint, result.candidate.price, ctx.usage)
            ctx.outcome, ctx.status = Outcome.COMPLETED, 200
            if request.transport is None or request.transport.is_closing():
                ctx.outcome = Outcome.CLIENT_ABORTED
            ctx.ttfb = time.monotonic() - ctx.started
            content_type = result.reply.content_type
            return web.Response(body=result.reply.body, headers={**headers, "Content-Type": content_type})
        assert isinstance(result, OpenBody), "only a raw call is answered as it arrives"
        ctx.usage = Usage(units=units)  # speech: the characters it was asked to read
        ctx.estimated = _unpriced(endpoint, result.candidate.price, ctx.usage)
        return await relay_body(request, result, headers, ctx, server.write_timeout)
    except UploadBroken:
        ctx.outcome, ctx.status = Outcome.CLIENT_ABORTED, UploadBroken.status
        raise
    except RequestTooLarge:  # a chunked upload that grew past server.max_upload_bytes on its way
        ctx.outcome, ctx.status = Outcome.REJECTED, RequestTooLarge.status
        raise
    finally:
        await settle_request(gw, ctx, str(endpoint), plan, decision.reserved)


def _unpriced(endpoint: Endpoint, price: Price, usage: Usage) -> bool:
    """Whether the cost is not the provider's price: no price at all, or units the price does not price
    (a model priced per token only, say ``pricing.default``) and no tokens to charge instead.
    Moderations are free unless the table prices them: never an estimate."""
    if endpoint is Endpoint.MODERATIONS:
        return False
    tokens = usage.prompt_tokens or usage.completion_tokens
    return price is UNPRICED or (price.unit is None and bool(usage.units) and not tokens)


def _units(
    endpoint: Endpoint, usage: Usage | None, ctx: RequestContext, upload: MultipartUpload | None
) -> Usage:
    """The answer's usage with its units, estimated (and flagged) where the answer gave none."""
    usage = usage if usage is not None else Usage()
    if usage.units is not None or endpoint not in UNIT_OF:
        return usage
    if upload is not None:
        if usage.prompt_tokens or usage.completion_tokens:
            return usage  # token-priced (gpt-4o-transcribe): its own figures, no seconds to guess
        usage.units = audio_seconds(upload.received, upload.filename)
    else:
        usage.units = 1  # an answer that did not say: one unit (one image, one search)
    ctx.estimated = True
    return usage


async def relay_body(
    request: web.Request,
    opened: OpenBody,
    headers: dict[str, str],
    ctx: RequestContext,
    write_timeout: float,
) -> web.StreamResponse:
    """The provider's body to the client as it arrives, one write per read (``write`` waits for the
    client's socket, which bounds memory). A provider that breaks or stalls mid-body leaves the client a
    body cut short (no final chunk: clients see an incomplete answer, never a whole one); a client that
    goes away stops the relay at once (closing tells the provider to stop)."""
    upstream = opened.response
    content_type = upstream.headers.get("content-type", "application/octet-stream")
    response = web.StreamResponse(status=200, headers={**headers, "Content-Type": content_type})
    client_ok, error = True, False
    watch: WriteWatch | None = None
    try:
        try:
            await response.prepare(request)
        except (ConnectionError, RuntimeError):
            client_ok = False
        transport = request.transport
        if write_timeout and client_ok and transport is not None:
            watch = WriteWatch(transport, write_timeout)
        while client_ok:
            try:
                chunk = await upstream.readany()
            except (TimeoutError, UpstreamIOError):
                error = True
                break
            if not chunk:
                break
            if ctx.ttfb is None:
                ctx.ttfb = time.monotonic() - ctx.started
            try:
                await response.write(chunk)
            except (ConnectionError, RuntimeError):
                client_ok = False
            except asyncio.CancelledError:
                if request.transport is not None and not request.transport.is_closing():
                    raise
                client_ok = False
        if error and client_ok and request.transport is not None:
            request.transport.abort()  # the client must not take a cut body for a whole one
        elif client_ok:
            try:
                await response.write_eof()
            except (ConnectionError, RuntimeError):
                client_ok = False
    finally:
        if watch is not None:
            watch.stop()
        upstream.release()
        opened.done(not error)
    ctx.outcome = (
        Outcome.CLIENT_ABORTED if not client_ok else Outcome.UPSTREAM_ERROR if error else Outcome.COMPLETED
    )
    ctx.status = 200
    return response
