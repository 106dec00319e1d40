"""Egress proxies: which proxy a provider's connection goes through, and the CONNECT tunnel.

- A provider's ``proxy: http://[user:pass@]host:port`` setting wins; otherwise the environment's
  ``HTTPS_PROXY`` (https upstreams) or ``HTTP_PROXY`` (http upstreams), lower-case forms first, unless
  ``NO_PROXY`` names the host (``*``; a name, which also covers its subdomains; ``.name``; ``host:port``;
  an IP literal). Loopback hosts (``localhost``, 127.0.0.0/8, ``::1``) never take the environment's proxy:
  the proxy's loopback is not ours. The environment is read once, when the client is made.
- https upstreams: ``CONNECT host:port`` to the proxy, then TLS to the provider through the tunnel (SNI
  and the certificate's hostname are the provider's). http upstreams: the request in absolute form to
  the proxy. Credentials in the proxy URL go as ``Proxy-Authorization: Basic``.
- The proxy itself is reached over plain TCP (an ``https://`` proxy URL is refused).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from proxy.upstream.errors import ConnectFailed, named

MAX_CONNECT_HEAD = 16 * 1024  # the proxy's answer to CONNECT


@dataclass(frozen=True, slots=True)
class EgressProxy:
    """A parsed proxy URL. Frozen: shared by every connection through it."""

    host: str
    port: int
    authorization: str  # the Proxy-Authorization value, "" without credentials
    key: str  # host, port and credential: part of the pool's key (a tunnel is authorized once, at CONNECT)

    def __repr__(self) -> str:  # never the credential
        return f"EgressProxy({self.host}:{self.port})"


def parse_proxy(url: str) -> EgressProxy:
    """``http://[user:pass@]host[:port]``; raises ValueError."""
    if "://" not in url:
        url = f"http://{url}"  # the environment's usual "host:port"
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("a proxy URL is http://[user:pass@]host:port")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError("a proxy URL is http://[user:pass@]host:port (bad port)") from None
    authorization = ""
    if parts.username is not None:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(secret).decode("ascii")
    return EgressProxy(parts.hostname, port, authorization, f"{parts.hostname}:{port} {authorization}")


class EnvironmentProxies:
    """The proxies the environment asks for, and its exceptions."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.https = _proxy_from(env, "https_proxy")
        self.http = _proxy_from(env, "http_proxy")
        raw = env.get("no_proxy") or env.get("NO_PROXY") or ""
        self._no_proxy = [e.strip().lower() for e in raw.split(",") if e.strip()]
        self._decided: dict[tuple[str, str, int], EgressProxy | None] = {}

    def for_origin(self, key: tuple[str, str, int]) -> EgressProxy | None:
        try:
            return self._decided[key]
        except KeyError:
            pass
        scheme, host, port = key
        proxy = self.https if scheme == "https" else self.http
        if proxy is not None and (_loopback(host) or self._bypassed(host.lower(), port)):
            proxy = None
        if len(self._decided) < 4096:
            self._decided[key] = proxy
        return proxy

    def _bypassed(self, host: str, port: int) -> bool:
        for entry in self._no_proxy:
            if entry == "*":
                return True
            name, _, only_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            if only_port and only_port != str(port):
                continue
            name = name.strip("[]").lstrip(".")
            if host == name or host.endswith("." + name):
                return True
        return False


def _loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _proxy_from(env: Mapping[str, str], name: str) -> EgressProxy | None:
    value = env.get(name) or env.get(name.upper())
    if not value:
        return None
    try:
        return parse_proxy(value)
    except ValueError as exc:
        raise ValueError(f"{name.upper()}: {exc}") from None


class _ConnectAnswer(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT; nothing else may come before the tunnel's TLS."""

    def __init__(self) -> None:
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end >= 0:
            self.done.set_result(self._buf[: end + 4] if end + 4 == len(self._buf) else b"")
        elif len(self._buf) > MAX_CONNECT_HEAD:
            self.done.set_result(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(b"")


async def open_tunnel(
    proxy: EgressProxy, host: str, port: int, provider: str
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    """A TCP connection to ``proxy`` turned into a tunnel to ``host:port``; raises ConnectFailed."""
    loop = asyncio.get_running_loop()
    try:
        transport, answer = await loop.create_connection(_ConnectAnswer, proxy.host, proxy.port)
    except OSError as exc:
        raise ConnectFailed(
            named(provider, f"cannot connect to the egress proxy {proxy.host}:{proxy.port} ({exc})")
        ) from None
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.authorization:
        lines += f"Proxy-Authorization: {proxy.authorization}\r\n"
    transport.write((lines + "\r\n").encode("latin-1"))
    try:
        head = await answer.done
    except BaseException:
        transport.close()
        raise
    status_line = head.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].startswith(b"2"):
        transport.close()
        shown = status_line[:60].decode("latin-1") or "no valid answer"
        raise ConnectFailed(
            named(
                provider, f"the egress proxy {proxy.host}:{proxy.port} refused CONNECT {authority} ({shown})"
            )
        )
    return transport, answer
