"""The admin API (``/admin``): its own sub-app with its own auth (``server.admin_token``).

For now it serves the ledger, ``GET /admin/usage/records`` (PRODUCT section 11); the rest of the admin
API builds on the same sub-app. Without an admin token configured, every admin route answers 404, so an
unconfigured gateway exposes nothing.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from proxy.errors import GatewayError, InvalidRequest, NotFound
from proxy.gateway import GATEWAY, Gateway
from proxy.ledger import RecordQuery

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminAuthRequired(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_admin_token"


def create_admin_app(parent: web.Application, admin_token: str | None) -> web.Application:
    expected = admin_token.encode() if admin_token else None

    @web.middleware
    async def require_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None:
            raise NotFound("The admin API is disabled (set server.admin_token to enable it).")
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise AdminAuthRequired("This endpoint needs the admin token as 'Authorization: Bearer <token>'.")
        return await handler(request)

    admin = web.Application(middlewares=[require_admin])

    def gateway(request: web.Request) -> Gateway:
        return parent[GATEWAY]

    async def usage_records(request: web.Request) -> web.Response:
        q = request.query
        query = RecordQuery(
            request_id=q.get("request_id") or None,
            key=q.get("key") or None,
            tenant=q.get("tenant") or None,
            since=_number(q, "since"),
            until=_number(q, "until"),
            limit=int(_number(q, "limit") or 100),
            cursor=q.get("cursor") or None,
        )
        if not 1 <= query.limit <= 1000:
            raise InvalidRequest("'limit' must be between 1 and 1000.", param="limit")
        page = await gateway(request).store.records(query)
        body = {"data": [dataclasses.asdict(r) for r in page.data], "next_cursor": page.next_cursor}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    admin.router.add_get("/usage/records", usage_records)
    return admin


def _number(query: object, name: str) -> float | None:
    value = query.get(name) if hasattr(query, "get") else None
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"'{name}' must be a number.", param=name) from None
