"""Egress: the provider client through a local HTTP proxy (CONNECT for https upstreams, absolute form
for http ones, Basic auth, HTTPS_PROXY / NO_PROXY from the environment) and TLS with a private CA and
client certificates; failures are ConnectFailed naming the provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from upstream_support import HTTPProxy, PrivateCA, RawServer, answering

from proxy.config import ConfigError, Settings, parse_settings
from proxy.state.snapshot import build_snapshot
from proxy.upstream.client import ConnectFailed, UpstreamClient, UpstreamIOError
from proxy.upstream.egress import Egress
from proxy.upstream.proxy import EnvironmentProxies, parse_proxy
from proxy.upstream.tls import provider_context


@pytest.fixture
def ca(tmp_path: Path) -> PrivateCA:
    return PrivateCA(tmp_path)


@pytest.fixture
async def upstream(ca: PrivateCA) -> AsyncIterator[RawServer]:
    server = await answering(b"secret", ca.server_context("localhost"))
    yield server
    await server.stop()


@pytest.fixture
async def proxy() -> AsyncIterator[HTTPProxy]:
    p = await HTTPProxy().start()
    yield p
    await p.stop()


async def call(client: UpstreamClient, url: str, egress: Egress) -> bytes:
    response = await client.post(url, b"{}", {"Authorization": "Bearer k"}, egress=egress)
    try:
        return await response.read()
    finally:
        response.release()


async def test_a_private_ca_is_trusted_through_tls_ca_file(ca: PrivateCA, upstream: RawServer) -> None:
    client = UpstreamClient(environ={})
    trusted = Egress(provider="private", ssl=provider_context("private", ca_file=str(ca.ca_file)))
    assert await call(client, upstream.url, trusted) == b"secret"
    only = Egress(
        provider="private", ssl=provider_context("private", ca_file=str(ca.ca_file), system_ca=False)
    )
    assert await call(client, upstream.url, only) == b"secret"
    with pytest.raises(ConnectFailed) as caught:  # the system's store does not know the private CA
        await call(client, upstream.url, Egress(provider="private"))
    message = str(caught.value)
    assert "provider 'private'" in message and "certificate" in message and "localhost" in message
    await client.close()


async def test_a_client_certificate_is_presented(ca: PrivateCA, tmp_path: Path) -> None:
    server = await answering(b"secret", ca.server_context("localhost", client_ca=True))
    cert, key = ca.issue("gateway", client=True)
    client = UpstreamClient(environ={})
    mutual = provider_context("mtls", ca_file=str(ca.ca_file), cert_file=str(cert), key_file=str(key))
    assert await call(client, server.url, Egress(provider="mtls", ssl=mutual)) == b"secret"
    anonymous = provider_context("mtls", ca_file=str(ca.ca_file))
    # The server refuses the handshake (with TLS 1.3, after the client's side of it has completed).
    with pytest.raises(UpstreamIOError):
        await call(client, server.url, Egress(provider="mtls", ssl=anonymous))
    await client.close()
    await server.stop()


async def test_https_through_a_connect_proxy(ca: PrivateCA, upstream: RawServer, proxy: HTTPProxy) -> None:
    client = UpstreamClient(environ={})
    context = provider_context("tunnelled", ca_file=str(ca.ca_file))
    egress = Egress(provider="tunnelled", ssl=context, proxy=parse_proxy(proxy.url()))
    for _ in range(2):
        assert await call(client, upstream.url, egress) == b"secret"
    assert proxy.tunnels == 1  # the tunnel's connection went back to the pool and was reused
    assert proxy.heads[0].startswith(f"CONNECT localhost:{upstream.port} HTTP/1.1\r\n".encode())
    assert b"proxy-authorization" not in proxy.heads[0].lower()
    # The provider saw an ordinary origin-form request: the tunnel is TLS end to end.
    assert upstream.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    # The pool's key includes the proxy: a direct call to the same origin opens its own connection.
    assert await call(client, upstream.url, Egress(provider="tunnelled", ssl=context)) == b"secret"
    assert client.idle_connections() == 2
    await client.close()


async def test_proxy_authentication(ca: PrivateCA, upstream: RawServer) -> None:
    proxy = await HTTPProxy(credentials="alice:s3cr@t").start()
    client = UpstreamClient(environ={})
    context = provider_context("tunnelled", ca_file=str(ca.ca_file))
    good = Egress(provider="tunnelled", ssl=context, proxy=parse_proxy(proxy.url("alice:s3cr%40t")))
    assert await call(client, upstream.url, good) == b"secret"
    assert b"Proxy-Authorization: Basic YWxpY2U6czNjckB0\r\n" in proxy.heads[0]
    for credentials in (None, "alice:wrong"):
        bad = Egress(provider="tunnelled", ssl=context, proxy=parse_proxy(proxy.url(credentials)))
        with pytest.raises(ConnectFailed) as caught:
            await call(client, upstream.url, bad)
        assert "provider 'tunnelled'" in str(caught.value) and "407" in str(caught.value)
        assert "wrong" not in str(caught.value)  # never the credential
    await client.close()
    await proxy.stop()


async def test_plain_http_through_a_proxy_uses_the_absolute_form() -> None:
    proxy = await HTTPProxy(credentials="bob:pw").start()
    server = await answering(b"plain")
    client = UpstreamClient(environ={})
    egress = Egress(provider="plain", proxy=parse_proxy(proxy.url("bob:pw")))
    for _ in range(2):
        assert await call(client, server.url, egress) == b"plain"
    head = proxy.heads[0]
    assert head.startswith(f"POST {server.url} HTTP/1.1\r\n".encode())
    assert b"\r\nProxy-Authorization: Basic Ym9iOnB3\r\n" in head
    assert len(proxy.heads) == 1 and server.connections == 1  # kept alive through the proxy
    assert b"proxy-authorization" not in server.requests[0].lower()
    await client.close()
    await server.stop()
    await proxy.stop()


async def test_the_environment_proxy_and_no_proxy(ca: PrivateCA) -> None:
    """The upstream is ``upstream.test``, a name only the proxy can resolve: a call that bypasses the
    proxy fails to connect, one through it succeeds."""
    upstream = await answering(b"secret", ca.server_context("upstream.test"))
    url = f"https://upstream.test:{upstream.port}/v1/chat/completions"
    proxy = await HTTPProxy(names={"upstream.test": "127.0.0.1"}).start()
    context = provider_context("p", ca_file=str(ca.ca_file))
    via_env = UpstreamClient(environ={"https_proxy": proxy.url(), "no_proxy": "example.com"})
    assert await call(via_env, url, Egress(provider="p", ssl=context)) == b"secret"
    assert proxy.tunnels == 1
    await via_env.close()
    for no_proxy in ("upstream.test", ".test", "*", f"example.com, upstream.test:{upstream.port}"):
        bypass = UpstreamClient(environ={"HTTPS_PROXY": proxy.url(), "NO_PROXY": no_proxy})
        with pytest.raises(ConnectFailed) as caught:  # went direct: the name does not resolve here
            await call(bypass, url, Egress(provider="p", ssl=context))
        assert "cannot connect to upstream.test" in str(caught.value)
        await bypass.close()
    assert proxy.tunnels == 1  # none of the NO_PROXY calls went through it
    # A provider's own proxy setting wins over NO_PROXY and the environment.
    explicit = UpstreamClient(environ={"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "*"})
    egress = Egress(provider="p", ssl=context, proxy=parse_proxy(proxy.url()))
    assert await call(explicit, url, egress) == b"secret"
    assert proxy.tunnels == 2
    await explicit.close()
    await proxy.stop()
    await upstream.stop()


def test_no_proxy_matching() -> None:
    env = EnvironmentProxies(
        {"HTTPS_PROXY": "proxy.corp:3128", "NO_PROXY": "internal.corp,.svc, 10.0.0.1,api.x:8443"}
    )
    assert env.https is not None and (env.https.host, env.https.port) == ("proxy.corp", 3128)
    assert env.http is None
    assert env.for_origin(("https", "api.openai.com", 443)) is env.https
    assert env.for_origin(("https", "internal.corp", 443)) is None
    assert env.for_origin(("https", "a.internal.corp", 443)) is None
    assert env.for_origin(("https", "notinternal.corp", 443)) is env.https
    assert env.for_origin(("https", "model.svc", 443)) is None
    assert env.for_origin(("https", "10.0.0.1", 443)) is None
    assert env.for_origin(("https", "api.x", 8443)) is None
    assert env.for_origin(("https", "api.x", 443)) is env.https
    assert env.for_origin(("http", "api.openai.com", 80)) is None  # no HTTP_PROXY
    for loopback in ("localhost", "127.0.0.1", "127.8.9.1", "::1"):  # never through the environment's proxy
        assert env.for_origin(("https", loopback, 443)) is None
    with pytest.raises(ValueError):
        parse_proxy("https://proxy:443")


async def test_an_unreachable_proxy_names_the_provider() -> None:
    client = UpstreamClient(environ={})
    egress = Egress(provider="far", proxy=parse_proxy("http://127.0.0.1:9"))
    with pytest.raises(ConnectFailed) as caught:
        await call(client, "https://localhost:1/v1", egress)
    assert "provider 'far'" in str(caught.value) and "egress proxy 127.0.0.1:9" in str(caught.value)
    await client.close()


def test_tls_and_proxy_settings_fail_at_load_naming_provider_and_file(tmp_path: Path, ca: PrivateCA) -> None:
    def settings(provider: dict[str, object]) -> Settings:
        raw = {
            "providers": {"secure": {"plugin": "openai_compatible", "base_url": "https://x/v1", **provider}}
        }
        return parse_settings(raw)

    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as caught:
        build_snapshot(settings({"tls": {"ca_file": str(missing)}}))
    message = str(caught.value)
    assert "providers.secure.tls" in message and "'secure'" in message and "missing.pem" in message
    not_a_cert = tmp_path / "junk.pem"
    not_a_cert.write_text("not a certificate")
    with pytest.raises(ConfigError) as caught:
        build_snapshot(settings({"tls": {"cert_file": str(not_a_cert)}}))
    assert "junk.pem" in str(caught.value) and "'secure'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        settings({"tls": {"key_file": str(not_a_cert)}})
    assert "providers.secure.tls" in str(caught.value) and "key_file needs cert_file" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        settings({"proxy": "socks5://127.0.0.1:1080"})
    assert "providers.secure" in str(caught.value) and "proxy" in str(caught.value)
    snapshot = build_snapshot(
        settings(
            {
                "tls": {"ca_file": str(ca.ca_file)},
                "proxy": "http://u:p@127.0.0.1:3128",
                "max_response_bytes": 1000,
            }
        )
    )
    egress = snapshot.egress["secure"]
    assert egress.provider == "secure" and egress.ssl is not None and egress.max_response_bytes == 1000
    assert egress.proxy is not None and egress.proxy.authorization == "Basic dTpw"
    assert repr(egress.proxy) == "EgressProxy(127.0.0.1:3128)"  # never the credential
