"""Tenant isolation and BYOK in one process (memory store): a tenant's key sees and uses only its own
tenant's provider keys, usage and settings, and its upstream requests carry its own provider key."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import pytest
from support import ADMIN, base_config, state

from proxy.services import refresh
from proxy.tenancy.documents import PROVIDER_KEYS, ProviderKeyDoc, provider_key_id
from proxy.tenancy.vault import Vault
from proxy.testing.fake_provider import Behaviour

KEY_A = "egw-tenant-a-key-0123456789"
KEY_B = "egw-tenant-b-key-0123456789"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def tenancy_config(url: str, byok: str = "optional") -> dict[str, Any]:
    config = base_config(url)
    config["secrets"] = {"master_keys": [base64.urlsafe_b64encode(os.urandom(32)).decode()]}
    config["providers"]["local"]["api_key"] = "sk-shared-key"
    config["providers"]["local"]["byok"] = byok
    config["keys"] += [
        {"name": "a", "tenant": "tenant-a", "key": KEY_A},
        {"name": "b", "tenant": "tenant-b", "key": KEY_B},
    ]
    config["tenants"] = {"tenant-a": {}, "tenant-b": {"budget": {"usd": 5}}}
    return config


def upstream_keys(fake: Any) -> list[str]:
    return [r.headers.get("Authorization", "") for r in fake.received if r.method == "POST"]


async def test_each_tenant_uses_its_own_provider_key(make_gateway: Callable[..., Any], fake: Any) -> None:
    client = await make_gateway(tenancy_config(fake.url))
    for who, secret in ((A, "sk-own-of-a"), (B, "sk-own-of-b")):
        resp = await client.put("/me/provider-keys/local", json={"api_key": secret}, headers=who)
        assert resp.status == 200, await resp.text()
        assert secret not in await resp.text()
    for _ in range(3):
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=A)).status == 200
    assert upstream_keys(fake) == ["Bearer sk-own-of-a"] * 3
    fake.received.clear()
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=B)).status == 200
    assert upstream_keys(fake) == ["Bearer sk-own-of-b"]
    # Without its own key a tenant falls back to the shared key (byok: optional).
    fake.received.clear()
    assert (await client.delete("/me/provider-keys/local", headers=A)).status == 200
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=A)).status == 200
    assert upstream_keys(fake) == ["Bearer sk-shared-key"]
    # Stored only as ciphertext.
    docs = await state(client).store.list_docs(PROVIDER_KEYS)
    assert set(docs) == {"tenant-b/local"} and b"sk-own-of-b" not in docs["tenant-b/local"]


async def test_byok_required_and_never(make_gateway: Callable[..., Any], fake: Any) -> None:
    client = await make_gateway(tenancy_config(fake.url, byok="required"))
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=A)).status == 404
    assert fake.count() == 0  # the shared key was never used
    await client.put("/me/provider-keys/local", json={"api_key": "sk-own-of-a"}, headers=A)
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=A)).status == 200
    assert upstream_keys(fake) == ["Bearer sk-own-of-a"]

    never = await make_gateway(tenancy_config(fake.url, byok="never"))
    resp = await never.put("/me/provider-keys/local", json={"api_key": "sk-x-0123456"}, headers=A)
    assert resp.status == 400


async def test_a_tenant_cannot_reach_another_tenants_data(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    client = await make_gateway(tenancy_config(fake.url))
    await client.put(
        "/admin/tenants/tenant-b/provider-keys/local", json={"api_key": "sk-own-of-b"}, headers=ADMIN
    )
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=B)).status == 200
    # /me is pinned to the caller: no parameter names another tenant.
    assert (await client.get("/me/provider-keys/local", headers=A)).status == 404
    listing = await (await client.get("/me/provider-keys", headers=A)).json()
    assert listing["data"] == []
    for path in (
        "/me/usage?tenant=tenant-b&key=b",
        "/me/usage?key=b",
        "/me/usage?cursor=0",
        "/me/usage?cursor=999999999-0@tenant-b",
    ):
        resp = await client.get(path, headers=A)
        assert resp.status in (200, 400), path
        if resp.status == 200:
            assert (await resp.json())["data"] == [], path
    me = await (await client.get("/me", headers=A)).json()
    assert me["tenant"]["name"] == "tenant-a" and me["tenant"]["budget"] is None
    # Guessed paths and ids: every admin route needs the admin token, and provider names do not traverse.
    for method, path in (
        ("GET", "/admin/tenants/tenant-b"),
        ("GET", "/admin/tenants/tenant-b/provider-keys/local"),
        ("POST", "/admin/tenants/tenant-b/provider-keys/local/validate"),
        ("GET", "/admin/usage?tenant=tenant-b"),
        ("GET", "/admin/usage/records?tenant=tenant-b"),
        ("GET", "/admin/keys?tenant=tenant-b"),
        ("DELETE", "/admin/keys/yaml:b"),
        ("GET", "/me/provider-keys/..%2Ftenant-b%2Flocal"),
        ("GET", "/me/provider-keys/tenant-b%2Flocal"),
        ("DELETE", "/me/provider-keys/tenant-b%2Flocal"),
        ("PUT", "/me/provider-keys/tenant-b%2Flocal"),
    ):
        resp = await client.request(method, path, json={"api_key": "sk-evil-0123"}, headers=A)
        assert resp.status in (401, 403, 404), (method, path, resp.status)
    # B's key is intact and still used for B.
    fake.received.clear()
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=B)).status == 200
    assert upstream_keys(fake) == ["Bearer sk-own-of-b"]
    assert set(await state(client).store.list_docs(PROVIDER_KEYS)) == {"tenant-b/local"}


@pytest.mark.parametrize("path", ["/me", "/me/usage", "/me/provider-keys", "/me/provider-keys/local"])
async def test_me_needs_a_valid_key(make_gateway: Callable[..., Any], fake: Any, path: str) -> None:
    client = await make_gateway(tenancy_config(fake.url))
    for headers in ({}, {"Authorization": "Bearer egw-nope"}, ADMIN):
        assert (await client.get(path, headers=headers)).status == 401


# -- one tenant's own key cannot hurt the others (issue 14, item 1) -----------------------------------------

FAILING = {
    "429 with Retry-After": [
        Behaviour.json(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "300"})
    ],
    "500s": [Behaviour.json(500, {"error": {"message": "boom", "type": "server_error"}})] * 2,
}


@pytest.mark.parametrize("failure", list(FAILING))
async def test_a_tenants_own_key_failing_parks_only_that_key(
    make_gateway: Callable[..., Any], fake: Any, failure: str
) -> None:
    config = tenancy_config(fake.url)
    config["providers"]["local"]["breaker"] = {"failures": 2, "cooldown": 30}
    client = await make_gateway(config)
    resp = await client.put("/me/provider-keys/local", json={"api_key": "sk-own-of-a-0123"}, headers=A)
    assert resp.status == 200, await resp.text()
    behaviours = FAILING[failure]
    fake.script("m", *behaviours, behaviours[-1])  # the last one repeats: enough for every failure
    for _ in behaviours:
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=A)).status >= 500
    fake.script("m")  # the provider answers again
    fake.received.clear()
    # B sends the shared key: A's key being refused or failing says nothing about it.
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=B)
    assert resp.status == 200, await resp.text()
    assert upstream_keys(fake) == ["Bearer sk-shared-key"]
    # A's own key is parked (cooling down), for A only.
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=A)
    assert resp.status == 502 and "cooling down" in (await resp.json())["error"]["message"]
    assert upstream_keys(fake) == ["Bearer sk-shared-key"]
    view = await (await client.get("/admin/breakers", headers=ADMIN)).json()
    parked = [b for b in view["data"] if b["model"] == "m"]
    assert len(parked) == 1 and parked[0]["credential"].startswith("tenant-a:")
    assert "sk-own" not in str(view)
    metrics = await (await client.get("/metrics")).text()
    assert "sk-own" not in metrics and 'efflux_breaker_state{model="m"' not in metrics


async def test_a_key_stored_before_the_check_that_cannot_be_sent_parks_only_itself(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    """A key with CR/LF stored before keys were checked fails every send (a server fault): it opens the
    breaker of that key, not the target's."""
    config = tenancy_config(fake.url)
    config["providers"]["local"]["breaker"] = {"failures": 2, "cooldown": 30}
    client = await make_gateway(config)
    gw = state(client)
    sealed = Vault.from_settings(gw.snapshot.settings).seal("tenant-a", "local", "sk-own\r\nX-Injected: 1")
    doc = ProviderKeyDoc.of(sealed).model_dump_json().encode()
    await gw.store.put_doc(PROVIDER_KEYS, provider_key_id("tenant-a", "local"), doc)
    await refresh(gw)
    for _ in range(2):
        resp = await client.post("/v1/chat/completions", json=CHAT, headers=A)
        assert resp.status == 502 and "cannot send" in await resp.text()
    assert fake.count() == 0
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=B)).status == 200
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=A)
    assert resp.status == 502 and "cooling down" in await resp.text()
    assert upstream_keys(fake) == ["Bearer sk-shared-key"]


@pytest.mark.parametrize("where", ["/me/provider-keys/local", "/admin/tenants/tenant-a/provider-keys/local"])
@pytest.mark.parametrize(
    "secret", ["sk-own\r\nX-Injected: 1", "sk-own key-0123", "sk-own-\tkey-0123", "sk-ünïcode-0123", "sk-1"]
)
async def test_a_provider_key_that_cannot_be_sent_is_refused(
    make_gateway: Callable[..., Any], fake: Any, where: str, secret: str
) -> None:
    client = await make_gateway(tenancy_config(fake.url))
    headers = A if where.startswith("/me") else ADMIN
    resp = await client.put(where, json={"api_key": secret}, headers=headers)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["param"] == "api_key" and secret not in error["message"]
    assert await state(client).store.list_docs(PROVIDER_KEYS) == {}
