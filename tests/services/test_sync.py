"""Model sync against local aggregators replaying the recorded catalogues, then changed versions: the diff,
prices in the gateway's unit (USD per 1M tokens), routing, the grace period, and YAML's precedence."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from services.conftest import sync_config
from support import ADMIN, AUTH, FIXTURES, state

from proxy.store.records import RecordQuery
from proxy.testing.fake_provider import Behaviour, FakeProvider

AHM = json.loads((FIXTURES / "aihubmix/api-v1-models.json").read_text())
AHM_LIST = json.loads((FIXTURES / "aihubmix/v1-models.json").read_text())
# the catalogue's models and the key's list merged (the list names one model the catalogue lacks)
AHM_IDS = sorted({m["model_id"] for m in AHM["data"]} | {m["id"] for m in AHM_LIST["data"]})
OR = json.loads((FIXTURES / "openrouter/models.json").read_text())


def ahm_version(remove: str, add: str, reprice: str, input_per_1k: float) -> tuple[Behaviour, Behaviour]:
    catalogue = json.loads(json.dumps(AHM))
    catalogue["data"] = [m for m in catalogue["data"] if m["model_id"] != remove]
    for m in catalogue["data"]:
        if m["model_id"] == reprice:
            m["pricing"]["input"] = input_per_1k
    catalogue["data"].append(
        {
            "model_id": add,
            "pricing": {"input": "0.002", "output": "0.008"},
            "features": "tools",
            "context_length": "64000",
        }
    )  # numbers as strings
    listing = json.loads(json.dumps(AHM_LIST))
    listing["data"] = [m for m in listing["data"] if m["id"] != remove]
    return Behaviour.json(200, catalogue), Behaviour.json(200, listing)


async def sync(client: Any, provider: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/admin/providers/{provider}/sync", headers=ADMIN)
    body = await resp.json()
    assert resp.status == 200, body
    return resp.status, body


async def chat(client: Any, model: str) -> Any:
    return await client.post(
        "/v1/chat/completions",
        headers=AUTH,
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10},
    )


async def models(client: Any) -> dict[str, dict[str, Any]]:
    resp = await client.get("/v1/models", headers=AUTH)
    assert resp.status == 200
    return {m["id"]: m for m in (await resp.json())["data"]}


async def test_aihubmix_sync_diff_prices_and_routing(
    ahm: FakeProvider, orr: FakeProvider, make_synced: Any
) -> None:
    client = await make_synced(sync_config(ahm, orr))
    assert (await chat(client, "aihubmix/gpt-4o-mini")).status == 404  # nothing synced yet

    status, report = await sync(client, "aihubmix")
    assert status == 200, report
    assert report["added"] == AHM_IDS and report["changed"] == [] and report["removed"] == []
    # the catalogue beside /v1 first, then the key's /v1/models list
    assert [r.path for r in ahm.received] == ["/api/v1/models", "/v1/models"]

    listed = await models(client)
    mini = listed["aihubmix/gpt-4o-mini"]
    # USD per 1K (0.00015, 0.0006, 0.000075) -> per 1M
    assert mini["pricing"] == {"input": 0.15, "output": 0.6, "cached_input": 0.075}
    assert mini["context_length"] == 128000 and mini["provider_type"] == "aggregator"
    assert mini["status"] == "active" and mini["retires_at"] is None
    assert listed["gpt-4o-mini"]["provider"] == "aihubmix"  # the bare name, claimed by no other route

    resp = await chat(client, "aihubmix/gpt-4o-mini")
    assert resp.status == 200 and resp.headers["x-efflux-upstream-model"] == "gpt-4o-mini"
    record = (await state(client).store.records(RecordQuery())).data[-1]
    # cost at the synced price: 0.15 micro-USD per prompt token, 0.6 per completion token
    assert record.cost_micro_usd == round(record.prompt_tokens * 0.15 + record.completion_tokens * 0.6)

    first, second = ahm_version(
        remove="claude-sonnet-4-5", add="new-model", reprice="gpt-4o-mini", input_per_1k=0.0002
    )
    ahm.gets["/api/v1/models"], ahm.gets["/v1/models"] = first, second
    status, report = await sync(client, "aihubmix")
    assert status == 200, report
    assert (report["added"], report["changed"], report["removed"]) == (
        ["new-model"],
        ["gpt-4o-mini"],
        ["claude-sonnet-4-5"],
    )

    listed = await models(client)
    assert listed["aihubmix/gpt-4o-mini"]["pricing"]["input"] == 0.2
    assert listed["aihubmix/new-model"]["pricing"] == {"input": 2.0, "output": 8.0, "cached_input": 2.0}
    assert listed["aihubmix/new-model"]["context_length"] == 64000
    gone = listed["aihubmix/claude-sonnet-4-5"]
    assert gone["status"] == "retiring" and 3590 < gone["retires_at"] - __import__("time").time() <= 3600
    assert (await chat(client, "aihubmix/new-model")).status == 200
    assert (await chat(client, "aihubmix/claude-sonnet-4-5")).status == 200  # still in its grace period

    status, report = await sync(client, "aihubmix")  # nothing moved upstream: an empty diff
    assert (report["added"], report["changed"], report["removed"]) == ([], [], [])


async def test_openrouter_prices_per_token_and_changes(
    ahm: FakeProvider, orr: FakeProvider, make_synced: Any
) -> None:
    client = await make_synced(sync_config(ahm, orr))
    status, report = await sync(client, "openrouter")
    assert status == 200 and report["added"] == ["openai/gpt-4"], report
    listed = await models(client)
    gpt4 = listed["openrouter/openai/gpt-4"]
    assert gpt4["pricing"] == {"input": 30.0, "output": 60.0, "cached_input": 30.0}  # "0.00003" per token
    assert gpt4["context_length"] == 8192
    resp = await chat(client, "openai/gpt-4")  # the bare upstream name
    assert resp.status == 200 and resp.headers["x-efflux-provider"] == "openrouter"
    assert resp.headers["x-efflux-upstream-model"] == "openai/gpt-4"

    v2 = json.loads(json.dumps(OR))
    v2["data"][0]["pricing"]["prompt"] = "0.00004"
    v2["data"].append(
        {
            **OR["data"][0],
            "id": "mistral/small",
            "pricing": {"prompt": "0.0000002", "completion": "0.0000006"},
        }
    )
    orr.gets["/v1/models"] = orr.gets["/api/v1/models"] = Behaviour.json(200, v2)
    status, report = await sync(client, "openrouter")
    assert (report["added"], report["changed"], report["removed"]) == (
        ["mistral/small"],
        ["openai/gpt-4"],
        [],
    )
    listed = await models(client)
    assert listed["openrouter/openai/gpt-4"]["pricing"]["input"] == 40.0
    assert listed["openrouter/mistral/small"]["pricing"]["input"] == 0.2

    v3 = json.loads(json.dumps(v2))
    v3["data"] = [m for m in v3["data"] if m["id"] != "mistral/small"]
    orr.gets["/v1/models"] = orr.gets["/api/v1/models"] = Behaviour.json(200, v3)
    status, report = await sync(client, "openrouter")
    assert (report["added"], report["changed"], report["removed"]) == ([], [], ["mistral/small"])


async def test_removed_model_stops_routing_after_grace(
    ahm: FakeProvider, orr: FakeProvider, make_synced: Any
) -> None:
    client = await make_synced(sync_config(ahm, orr, grace=0.5))
    await sync(client, "aihubmix")
    first, second = ahm_version(remove="claude-sonnet-4-5", add="new-model", reprice="x", input_per_1k=0)
    ahm.gets["/api/v1/models"], ahm.gets["/v1/models"] = first, second
    await sync(client, "aihubmix")
    assert (await chat(client, "aihubmix/claude-sonnet-4-5")).status == 200
    await asyncio.sleep(1.8)  # grace 0.5 s, then the schedule's 1 s tick rebuilds the snapshot
    assert (await chat(client, "aihubmix/claude-sonnet-4-5")).status == 404
    assert (await chat(client, "claude-sonnet-4-5")).status == 404
    assert "aihubmix/claude-sonnet-4-5" not in await models(client)
    _, report = await sync(client, "aihubmix")
    assert report["removed"] == []  # gone for good: not reported twice


async def test_yaml_route_wins_and_is_never_removed(
    ahm: FakeProvider, orr: FakeProvider, make_synced: Any
) -> None:
    config = sync_config(
        ahm,
        orr,
        grace=0.0,
        models={
            "gpt-4o-mini": {"targets": [{"provider": "openrouter", "model": "openai/gpt-4o-mini"}]},
            "claude": {"targets": [{"provider": "aihubmix", "model": "claude-sonnet-4-5"}]},
        },
        pricing={"models": {"aihubmix/gpt-4o-mini": {"input": 9.0, "output": 9.0}}},
    )
    client = await make_synced(config)
    await sync(client, "aihubmix")
    listed = await models(client)
    assert listed["gpt-4o-mini"]["provider"] == "openrouter"  # YAML's exact name beats the synced bare name
    assert listed["aihubmix/gpt-4o-mini"]["pricing"]["input"] == 9.0  # a YAML price beats the synced one
    first, second = ahm_version(remove="claude-sonnet-4-5", add="new-model", reprice="x", input_per_1k=0)
    ahm.gets["/api/v1/models"], ahm.gets["/v1/models"] = first, second
    _, report = await sync(client, "aihubmix")
    assert report["removed"] == ["claude-sonnet-4-5"]
    await asyncio.sleep(0.05)
    resp = await chat(client, "claude")  # grace 0: the synced name is gone, the YAML route is not
    assert resp.status == 200 and resp.headers["x-efflux-upstream-model"] == "claude-sonnet-4-5"
    record = (await state(client).store.records(RecordQuery())).data[-1]
    assert record.cost_micro_usd > 0  # still priced by the last synced price


async def test_admin_models_search(ahm: FakeProvider, orr: FakeProvider, make_synced: Any) -> None:
    client = await make_synced(sync_config(ahm, orr))
    await sync(client, "aihubmix")
    await sync(client, "openrouter")
    resp = await client.get("/admin/models?feature=thinking", headers=ADMIN)
    assert [m["id"] for m in (await resp.json())["data"]] == ["aihubmix/claude-sonnet-4-5"]
    resp = await client.get("/admin/models?provider=openrouter", headers=ADMIN)
    assert [m["id"] for m in (await resp.json())["data"]] == ["openrouter/openai/gpt-4"]
    resp = await client.get("/admin/models?q=GPT", headers=ADMIN)
    ids = [m["id"] for m in (await resp.json())["data"]]
    assert (
        "aihubmix/gpt-4o-mini" in ids
        and "openrouter/openai/gpt-4" in ids
        and "aihubmix/claude-sonnet-4-5" not in ids
    )
    resp = await client.get("/admin/models?limit=1", headers=ADMIN)
    page = await resp.json()
    assert len(page["data"]) == 1 and page["next_cursor"] == "1"
    resp = await client.get("/admin/providers", headers=ADMIN)
    providers = {p["name"]: p for p in (await resp.json())["data"]}
    assert providers["aihubmix"]["models"] == len(AHM_IDS) and providers["openrouter"]["models"] == 1
    assert (
        providers["aihubmix"]["sync_status"]["runs"] == 1
        and providers["aihubmix"]["sync_status"]["success_rate"] == 1.0
    )
    assert orjson.loads(orjson.dumps(providers["aihubmix"]["usage"]))["requests"] == 0
