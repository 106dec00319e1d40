"""``GET /ui/api/overview`` and ``GET /ui/api/budgets``: what the dashboard's first screen needs, in one
answer each, aggregated on the server (:mod:`proxy.services.overview`, :mod:`proxy.services.budgets`).

A tenant session sees only its own key's records (the key and tenant are taken from the session's key,
never from the query), an admin session may narrow by ``tenant`` or ``key``.
"""

from __future__ import annotations

from aiohttp import web

from proxy.edge.http import gateway, json_response, number
from proxy.services import budgets as budget_service
from proxy.services import overview as overview_service
from proxy.ui.bridge import page_session
from proxy.ui.sessions import Session


async def caller(request: web.Request) -> tuple[Session, dict[str, str]]:
    """The page's session and the ledger filters it is held to (a tenant: its own key only)."""
    session = await page_session(request)
    if session is None:
        raise web.HTTPUnauthorized(text="Log in to the dashboard")
    if session.kind == "admin":
        q = request.query
        return session, {k: q[k] for k in ("tenant", "key") if q.get(k)}
    gw = gateway(request)
    key = await gw.keys.find(gw.store, gw.snapshot, session.secret or "")
    if key is None:  # revoked since login
        raise web.HTTPUnauthorized(text="This session's key was revoked: log in again")
    return session, {"tenant": key.tenant, "key": key.name}


async def overview(request: web.Request) -> web.Response:
    _, filters = await caller(request)
    since, until = number(request.query, "since"), number(request.query, "until")
    return json_response(await overview_service.overview(gateway(request), filters, since, until))


async def budgets(request: web.Request) -> web.Response:
    """Spend against budget for every tenant and key with a budget (a tenant session: its own two)."""
    _, filters = await caller(request)
    rows = await budget_service.table(gateway(request), tenant=filters.get("tenant"), key=filters.get("key"))
    return json_response({"data": rows})
