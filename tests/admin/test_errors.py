"""aiohttp's own HTTP errors raised under ``/admin`` and ``/me`` (a body past ``server.max_body_bytes``, a
wrong method) answer with their status and an OpenAI-style envelope naming what went wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from support import ADMIN, ADMIN_TOKEN, AUTH, base_config

from proxy.errors import from_http


async def test_a_body_too_large_on_admin_and_me_is_413_request_too_large(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    client = await make_gateway(
        base_config(fake.url, server={"admin_token": ADMIN_TOKEN, "max_body_bytes": 1024})
    )
    big = {"name": "x" * 4096}
    for resp in (
        await client.post("/admin/keys", json=big, headers=ADMIN),
        await client.put("/admin/tenants/acme", json=big, headers=ADMIN),
        await client.put("/me/provider-keys/local", json={"api_key": "sk-" + "x" * 4096}, headers=AUTH),
    ):
        assert resp.status == 413
        body = await resp.json()
        assert body["error"]["code"] == "request_too_large", body
        assert body["error"]["type"] == "invalid_request_error"
        assert "1024" in body["error"]["message"]
        assert resp.headers["x-efflux-request-id"].startswith("req_")


def test_every_aiohttp_error_gets_its_own_code() -> None:
    cases = [
        (web.HTTPBadRequest(), 400, "invalid_request_error", "invalid_request_error"),
        (web.HTTPForbidden(text="No dashboard session"), 403, "forbidden", "invalid_request_error"),
        (web.HTTPRequestTimeout(), 408, "request_timeout", "invalid_request_error"),
        (web.HTTPRequestEntityTooLarge(max_size=10, actual_size=11), 413, "request_too_large", None),
        (web.HTTPUnsupportedMediaType(), 415, "unsupported_media_type", "invalid_request_error"),
        (web.HTTPServiceUnavailable(), 503, "service_unavailable", "server_error"),
    ]
    for exc, status, code, kind in cases:
        error = from_http(exc)
        assert (error.status, error.code) == (status, code), exc
        assert kind is None or error.type == kind
        assert error.message.endswith(".") and not error.message.startswith(str(status))
    assert from_http(web.HTTPForbidden(text="No dashboard session")).message == "No dashboard session."
