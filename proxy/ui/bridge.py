"""How a dashboard request proves it comes from a logged-in page of this origin, and the bridge that lets
such a request use the admin and self-service APIs.

A page's API call carries the session cookie (HttpOnly, SameSite=Strict: scripts cannot read it, other
sites cannot send it) and ``X-CSRF-Token`` (the session's token, which only a same-origin script can read
from ``/ui/api/session``), and its ``Origin``, when the browser sends one, must be this server's. All
three are required on every call, reads included, so nothing depends on a method being "safe".

The bridge is the first middleware of the admin and /me sub-apps (added by :func:`proxy.ui.mount`): a
request to ``/admin/...`` with an admin session, or to ``/me...`` with a tenant session, that passes
those checks gets the ``Authorization`` header the API expects (the configured admin token, or the
session's virtual key) and goes on to the API's own auth unchanged. A request that already has an
``Authorization`` header, or no session cookie, is never touched, so API clients see no difference.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import CIMultiDict

from proxy.gateway import GATEWAY
from proxy.ui import sessions
from proxy.ui.forwarded import public_origin
from proxy.ui.sessions import Session

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSRF_HEADER = "X-CSRF-Token"


def same_origin(request: web.Request) -> bool:
    """A browser sends ``Origin`` on every cross-site request it makes with a body, and on fetches;
    when present it must name this server, as the browser reached it (through a trusted proxy, perhaps:
    :mod:`proxy.ui.forwarded`). Absent (same-origin GET navigations) is allowed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin == public_origin(request)


async def page_session(request: web.Request) -> Session | None:
    """The session of a call made by one of our pages (cookie + CSRF header + origin), or None."""
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie is None or not same_origin(request):
        return None
    session = await sessions.load(request.config_dict[GATEWAY].store, cookie)
    sent = request.headers.get(CSRF_HEADER, "")
    if session is None or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        return None
    return session


def bridge(admin_token: str | None) -> Middleware:
    @web.middleware
    async def ui_bridge(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        wants_admin = path.startswith("/admin/")
        wants_me = path == "/me" or path.startswith("/me/")
        if (
            not (wants_admin or wants_me)
            or "Authorization" in request.headers
            or sessions.COOKIE not in request.cookies
        ):
            return await handler(request)
        session = await page_session(request)
        secret: str | None = None
        if session is not None and session.kind == "admin" and wants_admin:
            secret = admin_token
        elif session is not None and session.kind == "tenant" and wants_me:
            secret = session.secret
        if secret is None:  # the API's own auth answers 401/404 as for any caller without credentials
            return await handler(request)
        headers = CIMultiDict(request.headers)
        headers["Authorization"] = f"Bearer {secret}"
        return await handler(request.clone(headers=headers))

    return ui_bridge
