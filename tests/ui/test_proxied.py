"""The dashboard behind a TLS-terminating proxy (``server.trusted_proxies``), its redirect, and aiohttp's
own HTTP errors on ``/ui`` answered as error envelopes. In process, no browser: these are HTTP facts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support import ADMIN_TOKEN, base_config

PROXIED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example.com"}
PUBLIC_ORIGIN = "https://gw.example.com"


async def build(make_gateway: Callable[..., Any], fake: Any, **server: Any) -> Any:
    return await make_gateway(base_config(fake.url, server={"admin_token": ADMIN_TOKEN, **server}))


async def login(client: Any, headers: dict[str, str], token: str = ADMIN_TOKEN) -> Any:
    return await client.post("/ui/login", json={"token": token}, headers={"X-Efflux-UI": "1", **headers})


async def test_behind_a_trusted_proxy_login_works_and_the_cookie_is_secure(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    client = await build(make_gateway, fake, trusted_proxies=["127.0.0.0/8"])
    resp = await login(client, {**PROXIED, "Origin": PUBLIC_ORIGIN})
    assert resp.status == 200, await resp.text()
    cookie = resp.cookies["efflux_ui"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"

    # the pages' calls come through the same proxy (the client does not send a Secure cookie over http)
    page = {**PROXIED, "Origin": PUBLIC_ORIGIN, "Cookie": f"efflux_ui={cookie.value}"}
    session = await (await client.get("/ui/api/session", headers=page)).json()
    assert session["kind"] == "admin"
    keys = await client.get("/admin/keys", headers={**page, "X-CSRF-Token": session["csrf"]})
    assert keys.status == 200, await keys.text()
    # a page of another origin is still refused, proxy or not
    assert (await login(client, {**PROXIED, "Origin": "https://evil.example"})).status == 403
    other = {**page, "Origin": "https://evil.example", "X-CSRF-Token": session["csrf"]}
    assert (await client.get("/admin/keys", headers=other)).status == 401


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    for trusted in ([], ["10.0.0.0/8", "::1/128"]):  # none, or networks the test client is not in
        client = await build(make_gateway, fake, trusted_proxies=trusted)
        assert (await login(client, {**PROXIED, "Origin": PUBLIC_ORIGIN})).status == 403
        direct = await login(client, {**PROXIED, "Origin": f"http://{client.host}:{client.port}"})
        assert direct.status == 200
        assert not direct.cookies["efflux_ui"]["secure"]  # plain http: a Secure cookie would never return


async def test_a_trusted_proxy_saying_http_gets_no_secure_cookie(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    client = await build(make_gateway, fake, trusted_proxies=["127.0.0.1"])
    headers = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "gw.internal:8080"}
    resp = await login(client, {**headers, "Origin": "http://gw.internal:8080"})
    assert resp.status == 200
    assert not resp.cookies["efflux_ui"]["secure"]
    # a malformed value is not believed: the request's own scheme and host stand
    bad = {"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "a b/c"}
    assert (await login(client, {**bad, "Origin": f"http://{client.host}:{client.port}"})).status == 200


async def test_ui_redirects_to_ui_slash(make_gateway: Callable[..., Any], fake: Any) -> None:
    client = await build(make_gateway, fake)
    resp = await client.get("/ui", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/ui/"
    assert "internal_error" not in await resp.text()


async def test_aiohttp_errors_on_ui_are_envelopes(make_gateway: Callable[..., Any], fake: Any) -> None:
    client = await build(make_gateway, fake, max_body_bytes=1024)
    origin = {"Origin": f"http://{client.host}:{client.port}"}
    resp = await client.post("/ui/login", data=b'{"token": "' + b"x" * 4096 + b'"}', headers=origin)
    assert resp.status == 403  # no login header: refused before the body is read
    resp = await login(client, origin, token="x" * 4096)
    assert resp.status == 413
    error = (await resp.json())["error"]
    assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
    assert "1024" in error["message"]
    assert "Content-Security-Policy" in resp.headers
    missing = await client.get("/ui/static/nothing-here.js")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
