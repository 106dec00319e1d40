"""The dashboard's entry (``proxy/ui/pages.py``) without a browser: ``/ui`` redirects with a Location, and a
gateway without an admin token says so on the login page instead of refusing every token alike."""

from __future__ import annotations

from typing import Any

from support import ADMIN_TOKEN, KEY, base_config

from proxy.app import create_app
from proxy.config import parse_settings
from proxy.ui.pages import NO_ADMIN_TOKEN

LOGIN = {"X-Efflux-UI": "1"}


async def client_for(aiohttp_client: Any, **server: object) -> Any:
    config = base_config("http://127.0.0.1:9/v1")
    config["server"] = server
    return await aiohttp_client(create_app(parse_settings(config)))


async def test_ui_without_a_slash_redirects_with_a_location(aiohttp_client: Any) -> None:
    client = await client_for(aiohttp_client, admin_token=ADMIN_TOKEN)
    for method in ("GET", "HEAD"):
        response = await client.request(method, "/ui", allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == "/ui/"


async def test_without_an_admin_token_the_login_says_so(aiohttp_client: Any) -> None:
    client = await client_for(aiohttp_client, admin_token="")  # ${EFFLUX_ADMIN_TOKEN:-} left empty
    session = await (await client.get("/ui/api/session")).json()
    assert session == {"kind": None, "admin_login": False, "notice": NO_ADMIN_TOKEN}
    response = await client.post("/ui/login", json={"token": "anything-at-all"}, headers=LOGIN)
    assert response.status == 401
    message = (await response.json())["error"]
    assert "No admin token is configured" in message and "EFFLUX_ADMIN_TOKEN" in message
    assert "neither the admin token" not in message
    response = await client.post("/ui/login", json={"token": KEY}, headers=LOGIN)
    assert response.status == 200  # a virtual key still opens its own view


async def test_with_an_admin_token_nothing_is_announced(aiohttp_client: Any) -> None:
    client = await client_for(aiohttp_client, admin_token=ADMIN_TOKEN)
    assert await (await client.get("/ui/api/session")).json() == {"kind": None}
    response = await client.post("/ui/login", json={"token": "wrong-token"}, headers=LOGIN)
    assert response.status == 401
    assert (await response.json())["error"] == "This is neither the admin token nor a valid virtual key."
    response = await client.post("/ui/login", json={"token": ADMIN_TOKEN}, headers=LOGIN)
    assert response.status == 200
