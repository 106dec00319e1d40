"""The ``/ui`` sub-app: pages, static files, login and logout, and the session the pages read.

Every answer carries a strict Content-Security-Policy (scripts and styles only from files of this origin,
no inline code, no framing, no plugins), so even a value that escaped our DOM building could not run.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy.edge.http import json_body, json_response
from proxy.errors import GatewayError, from_http
from proxy.gateway import GATEWAY
from proxy.ui import overview, sessions
from proxy.ui.assets import Asset, load_assets
from proxy.ui.bridge import page_session, same_origin
from proxy.ui.forwarded import is_https

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# A custom header: a cross-site form cannot send it, and a cross-site fetch with it is preflighted (refused).
LOGIN_HEADER = "X-Efflux-UI"
NO_ADMIN_TOKEN = (
    "No admin token is configured on this gateway, so the operator console is off: set server.admin_token "
    "(the example config reads EFFLUX_ADMIN_TOKEN) and restart."
)


class Assets:
    """The dashboard's files, loaded on the first /ui request in a worker thread (read and gzipped once),
    so that a gateway that never serves the dashboard never reads them."""

    def __init__(self) -> None:
        self._files: dict[str, Asset] | None = None
        self._lock = asyncio.Lock()

    async def files(self) -> dict[str, Asset]:
        if self._files is None:
            async with self._lock:
                if self._files is None:
                    self._files = await asyncio.get_running_loop().run_in_executor(None, load_assets)
        return self._files


ASSETS = web.AppKey("ui_assets", Assets)
ADMIN_LOGIN = web.AppKey("ui_admin_login", bool)  # whether an admin token is configured at all
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # answered here, so that errors carry the headers too
        if exc.status < 400:
            exc.headers["Content-Security-Policy"] = CSP
            raise
        response = from_http(exc).response()  # the error envelope, as from /admin and /me
    except GatewayError as exc:
        response = exc.response()
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _serve(request: web.Request, asset: Asset, cache: str) -> web.Response:
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers={"ETag": asset.etag, "Cache-Control": cache})
    gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "")
    response = web.Response(
        body=asset.gzipped if gzip_ok else asset.body,
        headers={"Content-Type": asset.content_type, "ETag": asset.etag, "Cache-Control": cache},
    )
    if gzip_ok:
        response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
    return response


async def static(request: web.Request) -> web.Response:
    path = request.match_info["path"]
    files = await request.app[ASSETS].files()
    asset = files.get(path) if _SAFE_PATH.match(path) and ".." not in path else None
    if asset is None:
        raise web.HTTPNotFound()
    return _serve(request, asset, "no-cache")  # revalidated by ETag: a new version shows at once


async def to_index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


async def index(request: web.Request) -> web.Response:
    return _serve(request, (await request.app[ASSETS].files())["index.html"], "no-store")


async def login_page(request: web.Request) -> web.Response:
    return _serve(request, (await request.app[ASSETS].files())["login.html"], "no-store")


def _set_cookie(request: web.Request, response: web.Response, value: str, max_age: int) -> None:
    response.set_cookie(
        sessions.COOKIE,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),  # over https as the browser sees it (a TLS proxy may be in front)
    )


def login(admin_token: str | None) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        """``{"token": ...}``: the admin token opens the operator view, a virtual key the tenant view."""
        if not same_origin(request) or request.headers.get(LOGIN_HEADER) != "1":
            return json_response({"error": "cross-site login refused"}, 403)
        token = (await json_body(request)).get("token")
        if not isinstance(token, str) or not token.strip():
            return json_response({"error": "Enter the admin token or a virtual key."}, 400)
        token = token.strip()
        gw = request.config_dict[GATEWAY]
        store = gw.store
        if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
            cookie, session = await sessions.create(store, "admin", "admin")
        elif (key := await gw.keys.find(store, gw.snapshot, token)) is not None:
            label = f"{key.name} (tenant {key.tenant})"
            cookie, session = await sessions.create(store, "tenant", label, secret=token)
        elif not admin_token:
            return json_response({"error": f"This is not a valid virtual key. {NO_ADMIN_TOKEN}"}, 401)
        else:
            return json_response({"error": "This is neither the admin token nor a valid virtual key."}, 401)
        response = json_response({"kind": session.kind, "label": session.label})
        _set_cookie(request, response, cookie, int(sessions.LIFETIME))
        return response

    return handle


async def logout(request: web.Request) -> web.Response:
    if await page_session(request) is None:
        raise web.HTTPForbidden(text="No dashboard session to log out of")
    await sessions.delete(request.config_dict[GATEWAY].store, request.cookies.get(sessions.COOKIE))
    response = json_response({"logged_out": True})
    _set_cookie(request, response, "", 0)
    return response


async def session_info(request: web.Request) -> web.Response:
    """The page's session and its CSRF token. Only the cookie is needed here (the page has no token
    yet); a cross-site script cannot read this answer (no CORS), and Origin is checked."""
    if not same_origin(request):
        raise web.HTTPForbidden()
    session = await sessions.load(request.config_dict[GATEWAY].store, request.cookies.get(sessions.COOKIE))
    if session is None:  # 200, not 401: a page asking "am I logged in?" is not an error
        if not request.app[ADMIN_LOGIN]:  # the login page says so before anyone tries a token
            return json_response({"kind": None, "admin_login": False, "notice": NO_ADMIN_TOKEN})
        return json_response({"kind": None})
    return json_response({"kind": session.kind, "label": session.label, "csrf": session.csrf})


def create_ui_app(admin_token: str | None) -> web.Application:
    app = web.Application(middlewares=[headers])
    app[ASSETS] = Assets()
    app[ADMIN_LOGIN] = bool(admin_token)
    app.router.add_get("", to_index)
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login(admin_token))
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/session", session_info)
    app.router.add_get("/api/overview", overview.overview)
    app.router.add_get("/api/budgets", overview.budgets)
    app.router.add_get("/static/{path:.+}", static)
    return app
