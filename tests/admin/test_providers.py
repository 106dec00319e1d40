"""Providers through the admin API on one gateway: listing with usage, run-time add/update/disable, and
the refusal of plain secrets in shared documents."""

from __future__ import annotations

from typing import Any

import pytest
from support import ADMIN, AUTH

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


async def patch(client: Any, name: str, body: object) -> tuple[int, dict[str, Any]]:
    resp = await client.patch(f"/admin/providers/{name}", headers=ADMIN, json=body)
    return resp.status, await resp.json()


async def test_list_shows_models_status_and_usage(make_gateway: Any) -> None:
    client = await make_gateway()
    for _ in range(3):
        resp = await client.post("/v1/chat/completions", headers=AUTH, json={**CHAT, "model": "anything"})
        assert resp.status == 200
    data = {
        p["name"]: p for p in (await (await client.get("/admin/providers", headers=ADMIN)).json())["data"]
    }
    assert set(data) == {"local", "backup", "openrouter", "aihubmix"}
    local = data["local"]
    assert local["usage"]["requests"] == 3 and local["usage"]["cost_micro_usd"] > 0
    assert data["backup"]["usage"]["requests"] == 0
    assert data["aihubmix"]["type"] == "aggregator" and local["type"] == "direct"
    assert local["models"] == 1 and local["sync_status"] == {}  # the exact route naming it; never synced
    resp = await client.get("/admin/providers/nope", headers=ADMIN)
    assert resp.status == 404


async def test_add_update_disable_at_run_time(
    make_gateway: Any, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_gateway()
    monkeypatch.setenv("EFFLUX_TEST_EXTRA_KEY", "sk-extra-from-env")
    status, body = await patch(client, "extra", {"base_url": fake.url})
    assert status == 400 and body["error"]["param"] == "plugin"
    status, body = await patch(
        client, "extra", {"plugin": "openai_compatible", "base_url": fake.url, "api_key": "sk-x"}
    )
    assert status == 400 and body["error"]["param"] == "api_key"  # a plain secret is never stored
    status, body = await patch(client, "extra", {"plugin": "no_such_plugin", "base_url": fake.url})
    assert status == 400 and body["error"]["param"] == "plugin"
    status, body = await patch(client, "extra", {"colour": "red"})
    assert status == 400 and body["error"]["param"] == "colour"
    status, body = await patch(
        client,
        "extra",
        {"plugin": "openai_compatible", "base_url": fake.url, "api_key": "${EFFLUX_TEST_EXTRA_KEY}"},
    )
    assert status == 200 and body["source"] == "runtime" and body["serving"] is True
    resp = await client.put(
        "/admin/routes/via-extra", headers=ADMIN, json={"targets": [{"provider": "extra"}]}
    )
    assert resp.status == 200
    resp = await client.post("/v1/chat/completions", headers=AUTH, json={**CHAT, "model": "via-extra"})
    assert resp.status == 200 and resp.headers["x-efflux-provider"] == "extra"
    assert fake.received[-1].headers["Authorization"] == "Bearer sk-extra-from-env"

    status, body = await patch(client, "local", {"enabled": False})  # the rollback switch
    assert status == 200 and body["source"] == "yaml+override" and body["serving"] is False
    resp = await client.post("/v1/chat/completions", headers=AUTH, json={**CHAT, "model": "two-step"})
    assert resp.status == 200 and resp.headers["x-efflux-provider"] == "backup"  # falls to the next target
    status, body = await patch(client, "local", {"enabled": None})  # null drops the field
    assert status == 200 and body["serving"] is True
    assert (await client.delete("/admin/providers/local", headers=ADMIN)).status == 204
    assert (await client.delete("/admin/providers/local", headers=ADMIN)).status == 404
