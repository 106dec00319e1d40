"""The routing overlay through the admin API on one gateway (the memory store): validation, resolution
order, listing, deletion; replicas on Redis are in tests/services/test_replicas.py."""

from __future__ import annotations

from typing import Any

from support import ADMIN, AUTH

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


async def put(client: Any, model: str, body: object) -> tuple[int, dict[str, Any]]:
    resp = await client.put(f"/admin/routes/{model}", headers=ADMIN, json=body)
    return resp.status, await resp.json()


async def test_overlay_route_validation_and_order(make_gateway: Any, fake: Any) -> None:
    client = await make_gateway()
    status, body = await put(client, "team/fast", {"targets": [{"provider": "backup", "model": "x1"}]})
    assert status == 200 and body["targets"][0]["provider"] == "backup"
    resp = await client.post("/v1/chat/completions", headers=AUTH, json={**CHAT, "model": "team/fast"})
    # the overlay beats the "*" wildcard of the YAML (which would send the name to 'local' unchanged)
    assert resp.status == 200 and resp.headers["x-efflux-provider"] == "backup"
    assert resp.headers["x-efflux-upstream-model"] == "x1"

    cases = {
        "unknown provider": ({"targets": [{"provider": "aihubmx"}]}, "targets[0].provider", "did you mean"),
        "no targets": ({"targets": []}, "targets", "at least 1"),
        "bad weight": (
            {"targets": [{"provider": "local", "weight": 0}]},
            "targets[0].weight",
            "greater than 0",
        ),
        "unknown field": ({"targets": [{"provider": "local"}], "extra": 1}, "extra", "unknown key"),
        "not an object": ([1], None, "JSON object"),
    }
    for name, (route, param, text) in cases.items():
        status, body = await put(client, "team/other", route)
        assert status == 400, name
        assert body["error"]["param"] == param and text in body["error"]["message"], (name, body)
    status, body = await put(client, "team-*", {"targets": [{"provider": "local"}]})
    assert status == 400 and "wildcard" in body["error"]["message"]
    status, body = await put(client, "two-step", {"targets": [{"provider": "local"}]})
    assert status == 400 and "YAML" in body["error"]["message"]  # YAML wins: refused, not shadowed

    listed = (await (await client.get("/admin/routes", headers=ADMIN)).json())["data"]
    sources = {r["model"]: r["source"] for r in listed}
    assert sources["team/fast"] == "overlay" and sources["two-step"] == "yaml" and sources["*"] == "yaml"

    assert (await client.delete("/admin/routes/team/fast", headers=ADMIN)).status == 204
    assert (await client.delete("/admin/routes/team/fast", headers=ADMIN)).status == 404
    resp = await client.post("/v1/chat/completions", headers=AUTH, json={**CHAT, "model": "team/fast"})
    assert resp.headers["x-efflux-provider"] == "local"  # back to the wildcard


async def test_admin_api_describes_the_new_endpoints(make_gateway: Any) -> None:
    client = await make_gateway()
    paths = (await (await client.get("/admin/openapi.json", headers=ADMIN)).json())["paths"]
    for path, method in [
        ("/admin/routes", "get"),
        ("/admin/routes/{model}", "put"),
        ("/admin/routes/{model}", "delete"),
        ("/admin/providers", "get"),
        ("/admin/providers/{name}", "patch"),
        ("/admin/providers/{name}/sync", "post"),
        ("/admin/models", "get"),
        ("/admin/reload", "post"),
    ]:
        assert method in paths.get(path, {}), (path, method)
    resp = await client.post("/admin/reload", headers=ADMIN)  # built from settings, not a file
    assert resp.status == 400 and "without a config file" in (await resp.json())["error"]["message"]
