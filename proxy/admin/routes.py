"""The routing overlay: ``GET /admin/routes``, ``PUT|DELETE /admin/routes/{model}``.

A route put here is a document every replica serves within a second, resolved after YAML's exact names
and before synced models and wildcards. YAML routes are listed (``source: yaml``) but cannot be changed
here: the file is their source of truth (change it and reload).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from proxy.admin.openapi import operation
from proxy.config import ConfigError, TargetConfig
from proxy.edge.http import gateway, json_body, json_response
from proxy.errors import InvalidRequest, NotFound
from proxy.routing.table import Route
from proxy.state.overlay import ROUTES, validate_route


class RouteBody(BaseModel):
    targets: list[TargetConfig]


class RouteModel(BaseModel):
    model: str
    source: str  # "yaml" | "overlay"
    targets: list[TargetConfig]


class RouteList(BaseModel):
    data: list[RouteModel]
    next_cursor: str | None


def _json(route: Route, source: str) -> dict[str, object]:
    return {
        "model": route.name,
        "source": source,
        "targets": [
            {"provider": t.provider, "model": t.model, "priority": t.priority, "weight": t.weight}
            for t in route.targets
        ],
    }


@operation(
    "Routes: YAML's and the overlay's (the overlay as every replica serves it)",
    response=RouteList,
    tag="routes",
)
async def list_routes(request: web.Request) -> web.Response:
    snapshot = gateway(request).snapshot
    data = [_json(r, "yaml") for r in snapshot.routing.exact.values()]
    data += [_json(r, "yaml") for r in snapshot.routing.patterns]
    data += [
        _json(r, "overlay") for name, r in snapshot.overlay.items() if name not in snapshot.routing.exact
    ]
    return json_response({"data": data, "next_cursor": None})


@operation(
    "Add or replace an overlay route (validated like a YAML route)",
    body=RouteBody,
    response=RouteModel,
    tag="routes",
)
async def put_route(request: web.Request) -> web.Response:
    gw = gateway(request)
    model = request.match_info["model"]
    body = await json_body(request)
    if model in gw.snapshot.routing.exact:
        raise InvalidRequest(
            f"'{model}' is routed in the YAML config, which wins over the overlay: change it there, reload.",
            param="model",
        )
    try:
        config = validate_route(model, body, gw.snapshot.providers)
    except ConfigError as exc:
        first = str(exc).splitlines()[0]
        raise InvalidRequest(f"Invalid route: {exc}", param=first.split(":", 1)[0]) from None
    await gw.store.put_doc(ROUTES, model, config.model_dump_json(exclude_none=True).encode())
    if gw.live is not None:
        await gw.live.refresh()  # this replica serves it before answering; the others within a poll
    route = gw.snapshot.overlay.get(model)
    return json_response(_json(route, "overlay") if route else {"model": model, "source": "overlay"})


@operation("Delete an overlay route", tag="routes", status=204)
async def delete_route(request: web.Request) -> web.Response:
    gw = gateway(request)
    model = request.match_info["model"]
    if not await gw.store.delete_doc(ROUTES, model):
        raise NotFound(f"No overlay route for '{model}'.", param="model")
    if gw.live is not None:
        await gw.live.refresh()
    return web.Response(status=204)


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/routes", list_routes)
    router.add_put("/routes/{model:.+}", put_route)
    router.add_delete("/routes/{model:.+}", delete_route)
