"""The admin API (``/admin``): its own sub-app with its own auth (``server.admin_token``).

Each area is a module with a ``register(router)`` function (``usage``, ...); handlers parse the
request, call :mod:`proxy.services` and answer (helpers in :mod:`proxy.edge.http`). Without an admin token
configured every admin route answers 404, so an unconfigured gateway exposes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.admin import (
    analytics,
    breakers,
    keys,
    models,
    openapi,
    providers,
    reload,
    reports,
    routes,
    tenants,
    usage,
)
from proxy.errors import GatewayError, NotFound

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminAuthRequired(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_admin_token"


def create_admin_app(admin_token: str | None) -> web.Application:
    expected = admin_token.encode() if admin_token else None

    @web.middleware
    async def require_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None:
            raise NotFound("The admin API is disabled (set server.admin_token to enable it).")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise AdminAuthRequired("This endpoint needs the admin token as 'Authorization: Bearer <token>'.")
        return await handler(request)

    admin = web.Application(middlewares=[require_admin])
    usage.register(admin.router)
    breakers.register(admin.router)
    providers.register(admin.router)
    routes.register(admin.router)
    models.register(admin.router)
    reload.register(admin.router)
    keys.register(admin.router)
    tenants.register(admin.router)
    analytics.register(admin.router)
    reports.register(admin.router)
    openapi.register(admin)
    return admin
