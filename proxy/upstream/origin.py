"""Where a request goes: a URL taken apart once, and the request head written for it."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# A keep-alive pool's key: scheme, host, port, egress proxy ("" for none), TLS context: connections made
# with one provider's client certificate or CA are never handed to another's calls.
PoolKey = tuple[str, str, int, str, ssl.SSLContext | None]

USER_AGENT = "efflux-gateway"
# What this client decodes. Asked for (as aiohttp's client did): large JSON answers, embedding batches
# above all, shrink several times on the wire; servers leave small answers and event streams alone.
ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True, slots=True)
class Origin:
    """A provider URL taken apart once (cached by :func:`origin`): where to connect, and the request
    line's target. Frozen: one instance is shared by every request to the same URL."""

    key: tuple[str, str, int]  # scheme, host, port
    host: str
    port: int
    tls: bool
    path: str  # path and query
    host_header: str
    url: str  # scheme://host:port, the origin's name in metrics and errors


@functools.lru_cache(maxsize=1024)
def origin(url: str) -> Origin:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    default_port = parts.port is None or parts.port == (443 if tls else 80)
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Origin(
        (parts.scheme, host, port),
        host,
        port,
        tls,
        path,
        shown if default_port else f"{shown}:{port}",
        f"{parts.scheme}://{shown}:{port}",
    )


_RESERVED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "user-agent",
        "accept-encoding",
        "proxy-authorization",
        "te",
        "upgrade",
    }
)


def request_head(
    where: Origin, headers: Mapping[str, str], length: int | None, proxy_authorization: str | None = None
) -> bytes:
    """The request line and headers of a ``POST``. ``proxy_authorization``: the request goes to an egress
    proxy in absolute form (a plain-HTTP upstream through a proxy), with this credential (or "").
    ``length`` None: a body of unknown length (an upload sent as it arrives), sent chunked."""
    target = where.path if proxy_authorization is None else f"{where.url}{where.path}"
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    lines = [f"POST {target} HTTP/1.1\r\nHost: {where.host_header}\r\n{framing}\r\n"]
    if proxy_authorization:
        lines.append(f"Proxy-Authorization: {proxy_authorization}\r\n")
    agent = USER_AGENT
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            # A provider key or configured header with a line break would split the request.
            raise ValueError(f"header {name!r} has a character not allowed in HTTP headers")
        lower = name.lower()
        if lower in _RESERVED:  # framing, encodings and hops are ours; a configured User-Agent replaces ours
            if lower == "user-agent":
                agent = value
            continue
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"User-Agent: {agent}\r\nAccept-Encoding: {ACCEPT_ENCODING}\r\n\r\n")
    return "".join(lines).encode("latin-1")
