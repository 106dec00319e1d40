"""Wires the gateway: the edge middleware, the routes, and the resources' lifetimes.

create_app(settings)
  middleware  edge: request id, error envelope (the endpoint's dialect's), access log line, request metrics
  signal      on_response_prepare: the request id headers, on every answer (streams included)
  routes      /v1/chat/completions /v1/completions /v1/embeddings -> spine.serve
              /v1/moderations /v1/images/generations /v1/audio/* /v1/rerank
                                                                    -> passthrough.serve_passthrough
              /v1/models, /v1/models/{id}                           -> proxy.dataplane.models
              /v1/responses, /v1/responses/{id}[/input_items|/cancel] -> proxy.responses
              /v1/messages, /v1/messages/count_tokens               -> proxy.messages
              /healthz /readyz /metrics                             -> here
  resources   the store, the provider client (proxy.upstream.client), an aiohttp session for off-path
              calls, the alerter (one cleanup_ctx)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web

from proxy import ui
from proxy.admin import create_admin_app
from proxy.config import Settings
from proxy.dataplane import models
from proxy.dataplane.dialect import DIALECT
from proxy.dataplane.passthrough import serve_passthrough
from proxy.dataplane.spine import serve
from proxy.edge.overload import limit_concurrency
from proxy.edge.traces import TRACING, finish_trace, start_trace, stop_tracing
from proxy.errors import GatewayError, MethodNotAllowed, NotFound, from_http
from proxy.gateway import CONTEXT, GATEWAY, METRICS, Gateway
from proxy.me.app import create_me_app
from proxy.messages.count_tokens import count_tokens
from proxy.messages.dialect import messages
from proxy.metering.alerts import Alerter, watch_ledger
from proxy.metering.context import RequestContext
from proxy.metering.meter import start_background
from proxy.observe.logs import access
from proxy.observe.metrics import OTHER, Metrics
from proxy.observe.tracing import CURRENT, open_tracing
from proxy.plugin import UNIT_ENDPOINTS, Endpoint
from proxy.responses import handlers as responses
from proxy.routing import guard
from proxy.services import ledger, reload, sync
from proxy.state import catalogues, overlay
from proxy.state.live import Layer, Live
from proxy.state.snapshot import Snapshot, build_snapshot
from proxy.store import Store, StoreUnavailable, open_store
from proxy.tenancy import provider_secrets
from proxy.tenancy.documents import LAYERS as TENANCY_LAYERS
from proxy.tenancy.vault import check_secrets
from proxy.upstream.client import UpstreamClient

log = logging.getLogger("efflux")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
MODEL_LOGGED = 256  # characters of a client's model name kept in the access log
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The snapshot's layers from shared documents, in order: (document kind, layer). Features register here.
LAYERS: list[tuple[str, Layer]] = [
    *TENANCY_LAYERS,
    (overlay.PROVIDERS, overlay.providers_layer),  # before routes and catalogues: they see run-time providers
    (overlay.ROUTES, overlay.routes_layer),
    (catalogues.KIND, catalogues.catalogue_layer),  # after the overlay: a bare synced name yields to it
    (provider_secrets.KIND, provider_secrets.provider_secrets_layer),  # keys pasted in the console
]


_ID_PREFIX = "req_" + secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """Unique without a system call per request: a random per-process prefix and a counter."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place where errors become the OpenAI envelope and each request becomes one log line."""
    client_id = request.headers.get("x-request-id")
    if client_id is not None and not _CLIENT_REQUEST_ID.match(client_id):
        client_id = None
    ctx = RequestContext(new_request_id(), client_id, time.monotonic(), time.time())
    request[CONTEXT] = ctx
    metrics = request.app[METRICS]
    metrics.in_flight.inc()
    status = 500
    reason = "internal_error"  # the error code of a refusal (the rejections metric)
    tracing = request.app.get(TRACING)
    trace = None
    if tracing is not None and request.path.startswith("/v1/"):
        trace = start_trace(tracing, request, ctx)
        token = CURRENT.set(trace)
    try:
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = _error_response(request, exc)
            reason = exc.code or reason
        except web.HTTPNotFound:
            response = NotFound(f"No route for {request.method} {request.path}.").response()
        except web.HTTPMethodNotAllowed:
            response = MethodNotAllowed(f"{request.method} is not allowed on {request.path}.").response()
        except (web.HTTPRedirection, web.HTTPSuccessful) as exc:  # answers, not errors: Location kept
            response = web.Response(status=exc.status, headers=exc.headers, body=exc.body)
        except web.HTTPException as exc:
            error = from_http(exc)
            response, reason = _error_response(request, error), error.code or reason
        except Exception:
            log.exception(
                "unhandled error", extra={"fields": {"msg": "unhandled error", "request_id": ctx.request_id}}
            )
            response = GatewayError(f"Internal gateway error (request id {ctx.request_id}).").response()
        status = response.status
        return response
    finally:
        metrics.in_flight.dec()
        elapsed = time.monotonic() - ctx.started
        if ctx.model is not None:
            # The label is the routing table's name for the model, never the client's own string.
            label = ctx.route or OTHER
            endpoint = request.path.removeprefix("/v1/")
            metrics.request(endpoint, label, ctx.provider or "", status).inc()
            if ctx.provider:
                metrics.route(label, ctx.provider).latency.observe(elapsed)
        if ctx.record is not None:
            if ctx.record.cost_micro_usd:
                metrics.spend(ctx.tenant or "", ctx.key or "").inc(ctx.record.cost_micro_usd)
        elif status >= 400 and request.path.startswith("/v1/"):
            metrics.rejection(ctx.tenant or "", ctx.key or "", reason).inc()
        if trace is not None:
            finish_trace(trace, request, ctx, status, _clip(ctx.model))
            CURRENT.reset(token)
        gateway = request.app.get(GATEWAY)
        if gateway is not None and ctx.record is None and request.path.startswith("/v1/"):
            gateway.rejections.record(status)  # refused before admission: no usage record tells of it
        if gateway is None or gateway.snapshot.settings.server.access_log:
            _access_line(request, ctx, client_id, status, elapsed)


def _error_response(request: web.Request, error: GatewayError) -> web.Response:
    """The error in the envelope of the request's endpoint: its dialect's (``/v1/responses``...) or
    OpenAI's."""
    dialect = request.get(DIALECT)
    return error.response() if dialect is None else dialect.error_response(error)


async def request_id_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer names its request (``on_response_prepare``): set as the headers go out, so a stream,
    prepared inside the handler, carries them as a JSON answer or an error does."""
    ctx = request.get(CONTEXT)
    if ctx is not None:
        response.headers["x-request-id"] = ctx.client_request_id or ctx.request_id
        response.headers["x-efflux-request-id"] = ctx.request_id


def _clip(name: str | None) -> str | None:
    """A client's model name for the access log: whole up to ``MODEL_LOGGED`` characters."""
    if name is None or len(name) <= MODEL_LOGGED:
        return name
    return name[:MODEL_LOGGED] + "..."


def _access_line(
    request: web.Request, ctx: RequestContext, client_id: str | None, status: int, elapsed: float
) -> None:
    record = ctx.record  # the settled figures (None: the request was not admitted)
    access(
        {
            "msg": "request",
            "request_id": ctx.request_id,
            "client_request_id": client_id,
            "method": request.method,
            "path": request.path,
            "status": status,
            "key": ctx.key,
            "tenant": ctx.tenant,
            "model": _clip(ctx.model),
            "provider": ctx.provider,
            "upstream_model": ctx.upstream_model,
            "outcome": record.outcome if record else None,
            "prompt_tokens": record.prompt_tokens if record else 0,
            "completion_tokens": record.completion_tokens if record else 0,
            "cost_micro_usd": record.cost_micro_usd if record else 0,
            "latency_ms": round(elapsed * 1000, 1),
            "ttfb_ms": None if ctx.ttfb is None else round(ctx.ttfb * 1000, 1),
            "attempts": ctx.attempts,
        }
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await serve(request, Endpoint.CHAT)


async def completions(request: web.Request) -> web.StreamResponse:
    return await serve(request, Endpoint.COMPLETIONS)


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await serve(request, Endpoint.EMBEDDINGS)


def _passthrough(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_passthrough(request, endpoint)

    return handler


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    gw = request.app.get(GATEWAY)
    checks: dict[str, str] = {"config": "ok" if gw is not None else "loading"}
    ready = gw is not None and gw.accepting
    if gw is not None:
        try:
            await gw.store.ping()
            checks["store"] = "ok"
        except StoreUnavailable:
            checks["store"] = "unreachable"
            ready = False
        if not gw.accepting:
            checks["shutdown"] = "draining"
    return _json({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def create_app(
    settings: Settings,
    *,
    snapshot: Snapshot | None = None,
    store: Store | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> web.Application:
    """The gateway as an aiohttp application (mountable with ``app.add_subapp("/llm", gateway)``).
    ``config_path``: the file ``settings`` came from, re-read on reload (SIGHUP, admin API, file watch).

    Raises :class:`proxy.config.ConfigError` when the settings cannot serve.
    """
    check_secrets(settings)  # a weak or reused secret refuses to start (ConfigError names the setting)
    snapshot = snapshot or build_snapshot(settings)
    app = web.Application(
        middlewares=[edge, limit_concurrency(settings.server.max_concurrency)],
        client_max_size=settings.server.max_body_bytes,
    )
    app[METRICS] = Metrics()
    app.on_response_prepare.append(request_id_headers)
    tracing = open_tracing(os.environ)
    if tracing is not None:
        app[TRACING] = tracing
        app.on_cleanup.append(stop_tracing)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        http = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, json_serialize=lambda o: orjson.dumps(o).decode()
        )
        the_store = store or open_store(settings)
        webhooks = {name: t.alerts.webhook for name, t in settings.tenants.items() if t.alerts.webhook}
        alerter = Alerter(http, webhooks, settings.alerts, the_store)
        upstream = UpstreamClient()
        app[METRICS].watch_upstream(upstream)
        gateway = app[GATEWAY] = Gateway(snapshot, the_store, http, upstream, app[METRICS], alerter)
        gateway.live = live = Live(gateway, snapshot)
        for kind, layer in LAYERS:
            live.add_layer(kind, layer)
        if live.layers:
            try:
                await live.refresh()
            except StoreUnavailable:
                log.warning("store unreachable at startup: serving the YAML config only")
        watcher = asyncio.get_running_loop().create_task(live.run(), name="efflux-live")
        metering_tasks = start_background(the_store, alerter)  # journal replay, alert feed
        reported = app[METRICS].ledger_writer

        def ledger_lag() -> float | None:
            # The ledger database's writer, where the gateway has one (its ``lag`` in seconds); else what
            # a writer reported through the metrics (None: no writer).
            writer = gateway.ledger_writer
            return writer.lag if writer is not None else reported.lag_seconds

        watch = watch_ledger(alerter, ledger_lag)
        metering_tasks.append(asyncio.get_running_loop().create_task(watch, name="efflux-ledger-lag"))
        try:
            yield
        finally:
            watcher.cancel()
            for task in metering_tasks:
                task.cancel()
            gateway.accepting = False
            await alerter.close()
            await the_store.close()
            await upstream.close()
            await http.close()

    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(guard.background)  # breakers (shared through the store), balancing, retry budget
    app.cleanup_ctx.append(sync.background)  # model sync schedule
    app.cleanup_ctx.append(reload.background(config_path))  # hot reload: SIGHUP, file watch, peers
    app.cleanup_ctx.append(ledger.background)  # ledger: postgres, its writer (proxy/ledger)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    for endpoint in UNIT_ENDPOINTS:  # moderations, images, audio, rerank (dataplane/passthrough.py)
        app.router.add_post(f"/v1/{endpoint.value}", _passthrough(endpoint))
    app.router.add_post("/v1/messages", messages)  # Anthropic's clients (proxy/messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_post("/v1/responses", responses.create)
    app.router.add_get("/v1/responses/{id}", responses.retrieve)
    app.router.add_delete("/v1/responses/{id}", responses.delete)
    app.router.add_get("/v1/responses/{id}/input_items", responses.input_items)
    app.router.add_post("/v1/responses/{id}/cancel", responses.cancel)
    app.router.add_get("/v1/models", models.list_models)
    app.router.add_get("/v1/models/{model:.+}", models.get_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    admin, me = create_admin_app(settings.server.admin_token), create_me_app()
    ui.mount(app, settings.server.admin_token, admin=admin, me=me)  # the dashboard under /ui (proxy/ui)
    app.add_subapp("/admin", admin)
    app.add_subapp("/me", me)
    return app
