"""The origin a browser used to reach the dashboard, which a reverse proxy in front may hide.

Behind a TLS-terminating proxy the gateway sees plain http from the proxy, while the browser's page is
``https://public-host``. The proxy says so in ``X-Forwarded-Proto`` and ``X-Forwarded-Host``; those
headers are believed only when the direct peer is inside one of ``server.trusted_proxies`` (anyone else
could send them). With several values (a chain of proxies) the last one counts: the one our proxy wrote.
A value that is not a plain scheme or host is ignored.

The dashboard's origin check (:mod:`proxy.ui.bridge`) and its cookie's ``Secure`` flag
(:mod:`proxy.ui.pages`) use this origin; the gateway writes no absolute URL (its one redirect is
relative), so nothing else needs it.
"""

from __future__ import annotations

import ipaddress
import re

from aiohttp import web

from proxy.gateway import GATEWAY

_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_DEFAULT_PORT = {"http": ":80", "https": ":443"}


def public_origin(request: web.Request) -> str:
    """``scheme://host`` as the browser wrote it (default port left out)."""
    scheme, host = request.scheme, request.host
    if _from_trusted_proxy(request):
        proto = _last(request.headers.get("X-Forwarded-Proto")).lower()
        if proto in _DEFAULT_PORT:
            scheme = proto
        forwarded_host = _last(request.headers.get("X-Forwarded-Host"))
        if _HOST.match(forwarded_host):
            host = forwarded_host
    return f"{scheme}://{host.removesuffix(_DEFAULT_PORT.get(scheme, ''))}"


def is_https(request: web.Request) -> bool:
    return public_origin(request).startswith("https://")


def _last(value: str | None) -> str:
    return value.rpartition(",")[2].strip() if value else ""


def _from_trusted_proxy(request: web.Request) -> bool:
    networks = request.config_dict[GATEWAY].snapshot.settings.server.trusted_proxies
    if not networks or request.remote is None:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:  # a unix socket's peer, for one
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped  # a dual-stack listener shows IPv4 peers as ::ffff:a.b.c.d
    return any(peer in network for network in networks)
