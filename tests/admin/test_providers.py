"""Providers through the admin API on one gateway: listing with usage, run-time add/update/disable, and
the refusal of plain secrets in shared documents."""

from __future__ import annotations

from typing import Any

import pytest
from support import ADMIN, AUTH, base_config

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


def allowing(url: str, *names: str) -> dict[str, Any]:
    """The test config with ``server.runtime_env_allowlist`` set to ``names``."""
    config = base_config(url)
    config["server"]["runtime_env_allowlist"] = list(names)
    return config


async def test_add_update_disable_at_run_time(
    make_gateway: Any, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_gateway(allowing(fake.url, "EFFLUX_TEST_EXTRA_*"))
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


# -- issue 14, item 14: the admin API reads only the environment variables the YAML allows -----------------


@pytest.mark.parametrize(
    ("field", "patch_body"),
    [
        ("api_key", {"api_key": "${EFFLUX_TEST_SECRET}"}),
        ("api_key", {"api_key": "${EFFLUX_TEST_SECRET:-fallback}"}),
        ("headers.X-Leak", {"headers": {"X-Leak": "${EFFLUX_TEST_SECRET}"}}),
        ("base_url", {"base_url": "http://127.0.0.1:9/${EFFLUX_TEST_SECRET}"}),
    ],
)
async def test_only_allowed_environment_variables_can_be_named(
    make_gateway: Any, fake: Any, monkeypatch: pytest.MonkeyPatch, field: str, patch_body: dict[str, Any]
) -> None:
    monkeypatch.setenv("EFFLUX_TEST_SECRET", "the-database-password")
    monkeypatch.setenv("EFFLUX_TEST_EXTRA_KEY", "sk-extra-from-env")
    client = await make_gateway(allowing(fake.url, "EFFLUX_TEST_EXTRA_*"))
    new = {"plugin": "openai_compatible", "base_url": fake.url, "api_key": "${EFFLUX_TEST_EXTRA_KEY}"}
    status, body = await patch(client, "extra", {**new, **patch_body})
    assert status == 400 and body["error"]["param"] == field, body
    assert "EFFLUX_TEST_SECRET" in body["error"]["message"]
    assert "the-database-password" not in str(body)
    status, body = await patch(client, "extra", new)
    assert status == 200, body

    default = await make_gateway(base_config(fake.url))  # nothing allowed unless the YAML says so
    status, body = await patch(default, "extra", new)
    assert status == 400 and body["error"]["param"] == "api_key"
    assert "server.runtime_env_allowlist" in body["error"]["message"]


async def test_moving_base_url_needs_the_key_again(
    make_gateway: Any, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFFLUX_TEST_EXTRA_KEY", "sk-extra-from-env")
    config = allowing(fake.url, "EFFLUX_TEST_EXTRA_KEY")
    config["providers"]["local"]["api_key"] = "sk-yaml-shared-key"
    client = await make_gateway(config)
    elsewhere = fake.url.replace("127.0.0.1", "localhost")
    # The YAML provider's key would follow its base_url to another host: refused.
    status, body = await patch(client, "local", {"base_url": elsewhere})
    assert status == 400 and body["error"]["param"] == "api_key", body
    status, body = await patch(client, "local", {"base_url": elsewhere, "api_key": None})
    assert status == 400 and body["error"]["param"] == "api_key", body
    # The same for a run-time provider's key, and for a plugin whose default base_url differs.
    new = {"plugin": "openai_compatible", "base_url": fake.url, "api_key": "${EFFLUX_TEST_EXTRA_KEY}"}
    assert (await patch(client, "extra", new))[0] == 200
    status, body = await patch(client, "extra", {"base_url": elsewhere})
    assert status == 400 and body["error"]["param"] == "api_key", body
    status, body = await patch(client, "extra", {"base_url": None, "plugin": "openrouter"})
    assert status == 400 and body["error"]["param"] == "api_key", body
    # Other fields change without the key; a move with the key given again is taken.
    assert (await patch(client, "extra", {"enabled": False}))[0] == 200
    status, body = await patch(client, "extra", {"base_url": elsewhere, "api_key": new["api_key"]})
    assert status == 200 and body["base_url"] == elsewhere, body
    status, body = await patch(client, "local", {"base_url": elsewhere, "api_key": new["api_key"]})
    assert status == 200 and body["base_url"] == elsewhere, body
    # A provider without a key moves freely: there is nothing to leak.
    assert (await patch(client, "backup", {"base_url": elsewhere}))[0] == 200
