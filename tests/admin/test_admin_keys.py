"""Virtual keys through the admin API: created (secret shown once), listed, updated, revoked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support import ADMIN, AUTH, base_config, state

from proxy.tenancy.documents import KEYS

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def test_create_use_list_update_revoke(make_gateway: Callable[..., Any], fake: Any) -> None:
    client = await make_gateway(base_config(fake.url))
    resp = await client.post(
        "/admin/keys", json={"name": "app", "tenant": "globex", "models": ["m*"]}, headers=ADMIN
    )
    assert resp.status == 201
    created = await resp.json()
    secret, key_id = created["key"], created["id"]
    assert secret.startswith("egw-") and created["tenant"] == "globex" and created["source"] == "api"
    # Only the digest is stored.
    raw = await state(client).store.get_doc(KEYS, key_id)
    assert raw is not None and secret.encode() not in raw
    user = {"Authorization": f"Bearer {secret}"}
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=user)).status == 200
    denied = await client.post("/v1/chat/completions", json={**CHAT, "model": "x"}, headers=user)
    assert denied.status == 403

    listing = await (await client.get("/admin/keys", headers=ADMIN)).json()
    rows = {r["id"]: r for r in listing["data"]}
    assert rows[key_id]["name"] == "app" and "key" not in rows[key_id]
    assert rows["yaml:test"]["source"] == "yaml"
    assert secret not in str(listing)

    resp = await client.patch(
        f"/admin/keys/{key_id}", json={"models": ["x"], "limits": {"rpm": 5}}, headers=ADMIN
    )
    assert resp.status == 200 and (await resp.json())["limits"]["rpm"] == 5
    assert (
        await client.post("/v1/chat/completions", json={**CHAT, "model": "x"}, headers=user)
    ).status == 200

    assert (await client.delete(f"/admin/keys/{key_id}", headers=ADMIN)).status == 200
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=user)).status == 401
    assert (await client.delete(f"/admin/keys/{key_id}", headers=ADMIN)).status == 404


async def test_pagination_and_bad_input(make_gateway: Callable[..., Any], fake: Any) -> None:
    client = await make_gateway(base_config(fake.url))
    for i in range(5):
        resp = await client.post("/admin/keys", json={"name": f"k{i}"}, headers=ADMIN)
        assert resp.status == 201
    seen: list[str] = []
    cursor = ""
    while True:
        page = await (await client.get(f"/admin/keys?limit=2&cursor={cursor}", headers=ADMIN)).json()
        seen += [r["id"] for r in page["data"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 6  # five API keys and the YAML one
    for body in (
        {"name": "k1"},
        {"name": "test"},
        {"name": ""},
        {"name": "a/b"},
        {"name": "x", "extra": 1},
        [1],
    ):
        resp = await client.post("/admin/keys", json=body, headers=ADMIN)
        assert resp.status == 400, body
        assert "error" in await resp.json()
    assert (await client.post("/admin/keys", data=b"{", headers=ADMIN)).status == 400
    assert (await client.patch("/admin/keys/yaml:test", json={}, headers=ADMIN)).status == 400
    assert (await client.patch("/admin/keys/key_nope", json={}, headers=ADMIN)).status == 404


async def test_a_virtual_key_cannot_reach_admin_nor_make_keys(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    client = await make_gateway(base_config(fake.url))
    for method, path in (("POST", "/admin/keys"), ("GET", "/admin/keys"), ("PATCH", "/admin/keys/yaml:test")):
        resp = await client.request(method, path, json={"name": "evil", "models": ["*"]}, headers=AUTH)
        assert resp.status == 401
    # /me has no verb that writes a key or a limit.
    for method in ("POST", "PUT", "PATCH"):
        resp = await client.request(method, "/me", json={"limits": {"rpm": 100000}}, headers=AUTH)
        assert resp.status in (404, 405)
    assert len([r for r in await state(client).store.list_docs(KEYS)]) == 0
