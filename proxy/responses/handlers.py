"""The ``/v1/responses`` routes: create (the spine, with the Responses dialect) and, for the responses the
gateway keeps, retrieve, delete, list input items and cancel. Each answers only the key that created the
response; to any other key a kept response does not exist."""

from __future__ import annotations

import orjson
from aiohttp import web

from proxy.dataplane.spine import authenticate, serve
from proxy.errors import InvalidRequest
from proxy.gateway import CONTEXT, GATEWAY
from proxy.plugin import Endpoint, JSONObject
from proxy.responses import kept
from proxy.responses.dialect import Responses

MAX_PAGE = 100  # input items per page


async def create(request: web.Request) -> web.StreamResponse:
    settings = request.app[GATEWAY].snapshot.settings
    return await serve(request, Endpoint.RESPONSES, Responses(settings.responses.ttl))


async def retrieve(request: web.Request) -> web.Response:
    doc = await _kept(request)
    return _json(doc["response"])


async def delete(request: web.Request) -> web.Response:
    await _kept(request)
    response_id = request.match_info["id"]
    await kept.forget(request.app[GATEWAY].store, response_id)
    return _json({"id": response_id, "object": "response", "deleted": True})


async def input_items(request: web.Request) -> web.Response:
    doc = await _kept(request)
    items = doc.get("input")
    items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be asc or desc.", param="order")
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_PAGE}.", param="limit")
    if order == "desc":
        items.reverse()
    after = request.query.get("after")
    if after is not None:
        ids = [i.get("id") for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return _json(
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit,
        }
    )


async def cancel(request: web.Request) -> web.Response:
    await _kept(request)
    raise InvalidRequest(
        "Only background responses can be cancelled; this response was answered synchronously "
        "(the gateway serves no background responses on routes it translates).",
        param="response_id",
    )


async def _kept(request: web.Request) -> JSONObject:
    gw = request.app[GATEWAY]
    key = await authenticate(request, gw.snapshot)
    ctx = request[CONTEXT]
    ctx.key, ctx.tenant = key.name, key.tenant  # the access line names who asked
    return await kept.get(gw.store, request.match_info["id"], key)


def _json(obj: object) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type="application/json")
