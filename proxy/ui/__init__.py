"""The web dashboard, served by the gateway under ``/ui/`` (operator view with the admin token, tenant
view with a virtual key).

    sessions.py   login sessions kept in the store; a tenant's key sealed under a key only the cookie holds
    bridge.py     cookie + CSRF header + Origin checks; the bridge that lets pages call /admin and /me
    forwarded.py  the origin the browser used, through a trusted proxy (server.trusted_proxies)
    pages.py      the /ui sub-app: pages, static files, login/logout, CSP and other headers
    overview.py   /ui/api/overview and /ui/api/budgets: usage aggregated on the server in one answer
    assets.py     the static files, read and gzipped once (charts are SVG drawn by static/js/charts.js)
    static/       index.html, login.html, app.css, js/ (plain ES modules, one per page)

The pages use the admin and self-service APIs themselves (through the bridge) so that the dashboard shows
what the API says; only the overview is computed here, by the services the API uses.
"""

from __future__ import annotations

from aiohttp import web

from proxy.ui.bridge import bridge
from proxy.ui.pages import create_ui_app


def mount(
    app: web.Application, admin_token: str | None, *, admin: web.Application, me: web.Application
) -> None:
    """Serve the dashboard under ``/ui`` and let its sessions reach ``/admin`` and ``/me``: the bridge
    runs first in those two sub-apps (only there, so the data plane never pays for it)."""
    ui_bridge = bridge(admin_token)
    admin.middlewares.insert(0, ui_bridge)
    me.middlewares.insert(0, ui_bridge)
    app.add_subapp("/ui", create_ui_app(admin_token))
