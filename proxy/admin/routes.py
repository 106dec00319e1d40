"""The routing overlay: ``GET /admin/routes``, ``PUT|DELETE /admin/routes/{model}``
(:mod:`proxy.services.routes`). YAML routes are listed but changed only in the file."""

from __future__ import annotations

from aiohttp import web

from proxy.admin.openapi import operation
from proxy.edge.http import gateway, json_body, json_response
from proxy.services import routes
from proxy.services.routes import RouteBody, RouteList, RouteModel


@operation(
    "Routes: YAML's and the overlay's (the overlay as every replica serves it)",
    response=RouteList,
    tag="routes",
)
async def list_routes(request: web.Request) -> web.Response:
    return json_response(routes.list_routes(gateway(request).snapshot))


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
    return json_response(await routes.put_route(gw, model, body))


@operation("Delete an overlay route", tag="routes", status=204)
async def delete_route(request: web.Request) -> web.Response:
    await routes.delete_route(gateway(request), request.match_info["model"])
    return web.Response(status=204)


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/routes", list_routes)
    router.add_put("/routes/{model:.+}", put_route)
    router.add_delete("/routes/{model:.+}", delete_route)
