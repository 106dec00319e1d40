"""Tenants through the admin API: settings merged over YAML, provider keys put/get/validate/delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from support import ADMIN, state
from tenancy.test_isolation import CHAT, A, tenancy_config

from proxy.tenancy.documents import PROVIDER_KEYS
from proxy.testing.fake_provider import Behaviour


async def test_tenant_settings_merge_over_yaml_and_apply(make_gateway: Callable[..., Any], fake: Any) -> None:
    client = await make_gateway(tenancy_config(fake.url))
    info = await (await client.get("/admin/tenants/tenant-b", headers=ADMIN)).json()
    assert info["budget"]["usd"] == 5 and info["source"] == ["yaml"]
    resp = await client.put("/admin/tenants/tenant-a", json={"limits": {"rpm": 1}}, headers=ADMIN)
    assert resp.status == 200
    info = await resp.json()
    assert info["limits"]["rpm"] == 1 and info["source"] == ["yaml", "api"] and info["budget"] is None
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=A)).status == 200
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=A)).status == 429
    me = await (await client.get("/me", headers=A)).json()
    assert me["tenant"]["limits"]["rpm"] == 1
    # A tenant only the API knows.
    await client.put("/admin/tenants/newco", json={"budget": {"usd": 2, "period": "daily"}}, headers=ADMIN)
    names = [t["name"] for t in (await (await client.get("/admin/tenants", headers=ADMIN)).json())["data"]]
    assert "newco" in names and "tenant-a" in names
    assert (await client.get("/admin/tenants/nobody", headers=ADMIN)).status == 404
    for bad in ({"budget": {"usd": -1}}, {"limits": {"rpm": 0}}, {"nope": 1}):
        assert (await client.put("/admin/tenants/newco", json=bad, headers=ADMIN)).status == 400


async def test_provider_keys_put_get_validate_delete(
    make_gateway: Callable[..., Any], fake: Any, aiohttp_server: Any
) -> None:
    client = await make_gateway(tenancy_config(fake.url))
    path = "/admin/tenants/tenant-a/provider-keys/local"
    resp = await client.put(path, json={"api_key": "sk-tenant-a-own", "validate": True}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    meta = await resp.json()
    assert meta["validated"] is True and len(meta["kid"]) == 12
    assert fake.received[-1].headers["Authorization"] == "Bearer sk-tenant-a-own"  # GET /models
    got = await (await client.get(path, headers=ADMIN)).json()
    assert "sk-tenant-a-own" not in str(got) and got["kid"] == meta["kid"]
    result = await (await client.post(path + "/validate", headers=ADMIN)).json()
    assert result["valid"] is True

    # A key the provider refuses is not stored when validation is asked for.
    async def refuse(_: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "invalid key"}}, status=401)

    refusing = web.Application()
    refusing.router.add_get("/v1/models", refuse)
    server = await aiohttp_server(refusing)
    config = tenancy_config(fake.url)
    config["providers"]["local"]["base_url"] = str(server.make_url("/v1"))
    client2 = await make_gateway(config)
    bad = await client2.put(path, json={"api_key": "sk-wrong", "validate": True}, headers=ADMIN)
    assert bad.status == 400 and "sk-wrong" not in await bad.text()
    assert await state(client2).store.list_docs(PROVIDER_KEYS) == {}
    assert (await client.delete(path, headers=ADMIN)).status == 200
    assert (await client.get(path, headers=ADMIN)).status == 404
    assert (await client.delete(path, headers=ADMIN)).status == 404
    assert (
        await client.put(
            "/admin/tenants/tenant-a/provider-keys/nope", json={"api_key": "sk-nope-0123"}, headers=ADMIN
        )
    ).status == 404
    assert (await client.put(path, json={"api_key": ""}, headers=ADMIN)).status == 400


async def test_without_master_keys_the_vault_refuses_writes(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    config = tenancy_config(fake.url)
    del config["secrets"]
    client = await make_gateway(config)
    resp = await client.put(
        "/admin/tenants/tenant-a/provider-keys/local", json={"api_key": "sk-no-vault-0123"}, headers=ADMIN
    )
    assert resp.status == 400 and "secrets.master_keys" in (await resp.json())["error"]["message"]


async def test_provider_errors_pass_through_without_the_key(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    client = await make_gateway(tenancy_config(fake.url))
    await client.put("/me/provider-keys/local", json={"api_key": "sk-tenant-a-own"}, headers=A)
    fake.script(
        "m", Behaviour.json(401, {"error": {"message": "Incorrect API key provided: sk-tenant-a-own"}})
    )
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=A)
    assert resp.status >= 400
    assert "sk-tenant-a-own" not in await resp.text()
