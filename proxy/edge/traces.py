"""The request's span (with tracing on, :mod:`proxy.observe.tracing`): opened by the edge for each
``/v1/`` request, with the client's ``traceparent`` as its parent, and ended with the attributes read
from the request's :class:`~proxy.metering.context.RequestContext`, the same figures as the access line.
Dispatch opens the attempts under it (``tracing.CURRENT``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from proxy.gateway import GATEWAY
from proxy.metering.context import RequestContext
from proxy.observe.tracing import RequestTrace, Tracing, operation

TRACING = web.AppKey("tracing", Tracing)  # set only when tracing is on


def start_trace(tracing: Tracing, request: web.Request, ctx: RequestContext) -> RequestTrace:
    trace = tracing.start(
        f"{request.method} {request.path}",
        request.headers,
        {
            "gen_ai.operation.name": operation(request.path.removeprefix("/v1/")),
            "http.request.method": request.method,
            "url.path": request.path,
            "efflux.request_id": ctx.request_id,
        },
    )
    gw = request.app.get(GATEWAY)
    trace.capture = gw is not None and gw.snapshot.settings.telemetry.capture_content
    return trace


def finish_trace(
    trace: RequestTrace, request: web.Request, ctx: RequestContext, status: int, model: str | None
) -> None:
    """Name the span ``<operation> <model>`` (``model``: the name asked for, clipped as in the access
    log), set its attributes and end it. No content here (see ``telemetry.capture_content``)."""
    attributes: dict[str, str | int | float | bool] = {"http.response.status_code": status}
    if model is not None:
        attributes["gen_ai.request.model"] = model
    if ctx.provider:
        attributes["gen_ai.provider.name"] = _plugin(request, ctx.provider)
        attributes["efflux.provider"] = ctx.provider
    if ctx.upstream_model:
        attributes["gen_ai.response.model"] = ctx.upstream_model
    for attribute, value in (
        ("efflux.key", ctx.key),
        ("efflux.tenant", ctx.tenant),
        ("efflux.route", ctx.route),
    ):
        if value is not None:
            attributes[attribute] = value
    record = ctx.record
    if record is not None:
        attributes["gen_ai.usage.input_tokens"] = record.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = record.completion_tokens
        attributes["efflux.outcome"] = str(record.outcome)
        attributes["efflux.cost_micro_usd"] = record.cost_micro_usd
        attributes["efflux.attempts"] = ctx.attempts
    name = (
        f"{operation(request.path.removeprefix('/v1/'))} {model}"
        if model
        else f"{request.method} {request.path}"
    )
    trace.finish(name, attributes, str(status) if status >= 500 else None)


def _plugin(request: web.Request, provider: str) -> str:
    """gen_ai.provider.name: the provider's plugin (``openai``, ``anthropic``...), not its config name."""
    gw = request.app.get(GATEWAY)
    config = gw.snapshot.settings.providers.get(provider) if gw is not None else None
    return config.plugin if config is not None else provider


async def stop_tracing(app: web.Application) -> None:
    """``on_cleanup``: flush the spans still queued. Blocking (an HTTP export), so off the loop."""
    await asyncio.get_running_loop().run_in_executor(None, app[TRACING].shutdown)
