"""The operator console's reports and flows through the admin and self-service APIs, on one in-process
gateway: cost estimates against worked numbers (prices x tokens by hand), savings against the cheapest
direct price, provider adoption, per-key activity, gateway refusals counted as errors, a provider key
pasted into the console (sealed in the vault, used, rewrapped, never shown), and ``/v1/models`` listing
each name once with every provider serving it, parsed by the official openai SDK."""

from __future__ import annotations

import base64
import time
from typing import Any

import openai
import orjson
from support import ADMIN, AUTH, KEY, base_config, state

from proxy.services import overview
from proxy.services.rewrap import rewrap
from proxy.store.memory import MemoryStore
from proxy.tenancy import provider_secrets
from proxy.tenancy.documents import ProviderKeyDoc
from proxy.tenancy.vault import Vault, key_id

OTHER_KEY = "egw-other-tenant-key-0123456789"
NARROW_KEY = "egw-narrow-key-0123456789abcd"
MASTER = base64.urlsafe_b64encode(b"console-tests-master-key-32byte!").decode()
MASTER_2 = base64.urlsafe_b64encode(b"console-tests-second-key-32byte!").decode()


def priced_config(url: str) -> dict[str, Any]:
    """No default price: every price below is the only one its model has."""
    config = base_config(url)
    config.pop("pricing")
    config["pricing"] = {
        "models": {
            "est-model": {"input": 2.0, "output": 8.0},  # USD per 1M tokens = micro-USD per token
            "local/cheap-m": {"input": 3.0, "output": 5.0},
            "openrouter/vendor/cheap-m": {"input": 1.0, "output": 1.0},
        }
    }
    config["models"] = {
        "est-model": {"targets": [{"provider": "local"}]},
        "cheap-m": {"targets": [{"provider": "local"}]},
        "openrouter/*": {"targets": [{"provider": "openrouter"}]},
    }
    config["keys"] += [
        {"name": "other", "tenant": "globex", "key": OTHER_KEY},
        {"name": "narrow", "tenant": "acme", "key": NARROW_KEY, "models": ["cheap-m"]},
    ]
    return config


async def chat(client: Any, key: str, model: str, text: str = "hello there") -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    resp = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def records(client: Any, **query: str) -> list[dict[str, Any]]:
    resp = await client.get("/admin/usage/records", headers=ADMIN, params={"limit": "1000", **query})
    return list((await resp.json())["data"])


async def test_estimate_matches_worked_numbers(make_gateway: Any, fake: Any) -> None:
    client = await make_gateway(priced_config(fake.url))
    raw = orjson.dumps(
        {"model": "est-model", "messages": [{"role": "user", "content": "x" * 300}], "max_tokens": 1000}
    )
    headers = {**ADMIN, "Content-Type": "application/json"}
    est = await (await client.post("/admin/estimate", headers=headers, data=raw)).json()
    # by hand: admission counts 3 bytes of text per token (+1), a typical answer 4 bytes per token (+1);
    # no answers of this model yet, so a typical answer is 256 tokens
    reserved_prompt = len(raw) // 3 + 1
    expected_prompt = len(raw) // 4 + 1
    assert est["prompt_tokens"] == reserved_prompt and est["max_output_tokens"] == 1000
    assert est["worst_case_micro_usd"] == reserved_prompt * 2 + 1000 * 8
    assert est["expected_basis"] == "default" and est["expected_output_tokens"] == 256
    assert est["expected_micro_usd"] == expected_prompt * 2 + 256 * 8
    assert est["targets"] == [
        {
            "provider": "local",
            "upstream_model": "est-model",
            "worst_case_micro_usd": reserved_prompt * 2 + 1000 * 8,
            "expected_micro_usd": expected_prompt * 2 + 256 * 8,
        }
    ]

    # after traffic, a typical answer is the ledger's mean answer; /me/estimate reads the key's own ledger
    await chat(client, KEY, "est-model", "one two three")
    await chat(client, KEY, "est-model", "one two three four five six seven")
    await chat(client, OTHER_KEY, "est-model", " ".join(["word"] * 40))  # another tenant's: not in /me
    mine = [r["completion_tokens"] for r in await records(client, key="test")]
    mean = round(sum(mine) / len(mine))
    me = await (
        await client.post("/me/estimate", headers={**AUTH, "Content-Type": "application/json"}, data=raw)
    ).json()
    assert me["expected_basis"] == "ledger" and me["expected_output_tokens"] == mean
    assert me["expected_micro_usd"] == expected_prompt * 2 + mean * 8
    assert me["worst_case_micro_usd"] == reserved_prompt * 2 + 1000 * 8

    # a key may estimate only the models it may use
    narrow = {"Authorization": f"Bearer {NARROW_KEY}", "Content-Type": "application/json"}
    resp = await client.post("/me/estimate", headers=narrow, data=raw)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "model_not_allowed"
    assert (
        await client.post("/me/estimate", headers={"Authorization": "Bearer nope"}, data=raw)
    ).status == 401


async def test_savings_adoption_and_key_activity(make_gateway: Any, fake: Any) -> None:
    client = await make_gateway(priced_config(fake.url))
    await chat(client, KEY, "openrouter/vendor/cheap-m", "via the aggregator")
    await chat(client, KEY, "openrouter/vendor/cheap-m", "via the aggregator again, longer")
    await chat(client, KEY, "cheap-m", "direct")
    await chat(client, OTHER_KEY, "cheap-m", "another tenant, direct")
    ledger = await records(client)
    assert len(ledger) == 4

    report = await (await client.get("/admin/savings", headers=ADMIN)).json()
    rows = {r["provider"]: r for r in report["data"]}
    via = [r for r in ledger if r["provider"] == "openrouter"]
    # by hand: the aggregator charged 1/1 per token; local, the one direct price of cheap-m, 3/5
    paid = sum(r["prompt_tokens"] * 1 + r["completion_tokens"] * 1 for r in via)
    direct = sum(r["prompt_tokens"] * 3 + r["completion_tokens"] * 5 for r in via)
    assert paid == sum(r["cost_micro_usd"] for r in via)
    assert rows["openrouter"] == {
        "provider": "openrouter",
        "type": "aggregator",
        "requests": 2,
        "matched_requests": 2,
        "cost_micro_usd": paid,
        "direct_cost_micro_usd": direct,
        "saved_micro_usd": direct - paid,
        "unmatched_cost_micro_usd": 0,
    }
    local_cost = sum(r["cost_micro_usd"] for r in ledger if r["provider"] == "local")
    assert rows["local"]["saved_micro_usd"] == 0 and rows["local"]["cost_micro_usd"] == local_cost
    direct_models = {m["model"]: m for m in report["models"] if m["provider"] == "local"}
    assert direct_models["cheap-m"]["direct_provider"] == "local"  # its own price, not another's
    assert report["totals"]["saved_micro_usd"] == direct - paid

    adoption = await (await client.get("/admin/adoption", headers=ADMIN)).json()
    by = {r["provider"]: r for r in adoption["data"]}
    assert (by["local"]["tenants"], by["local"]["requests"]) == (2, 2)
    assert (by["openrouter"]["tenants"], by["openrouter"]["requests"]) == (1, 2)
    assert by["backup"]["requests"] == 0
    types = {t["type"]: t for t in adoption["types"]}
    assert types["aggregator"]["share"] == 0.5 and types["direct"]["share"] == 0.5
    assert adoption["tenants"] == 2

    activity = await (await client.get("/admin/usage/keys", headers=ADMIN)).json()
    keys = {(a["tenant"], a["key"]): a for a in activity["data"]}
    mine = [r for r in ledger if r["key"] == "test"]
    assert keys[("acme", "test")]["requests"] == 3
    assert keys[("acme", "test")]["cost_micro_usd"] == sum(r["cost_micro_usd"] for r in mine)
    assert keys[("acme", "test")]["last_used_at"] == max(r["started_at"] for r in mine)
    assert ("acme", "narrow") not in keys  # never used


async def test_gateway_refusals_count_as_errors(make_gateway: Any, fake: Any) -> None:
    client = await make_gateway(priced_config(fake.url))
    await chat(client, KEY, "cheap-m")
    body = {"model": "cheap-m", "messages": [{"role": "user", "content": "x"}]}
    bad = await client.post("/v1/chat/completions", headers={"Authorization": "Bearer wrong"}, json=body)
    assert bad.status == 401
    narrow = {"Authorization": f"Bearer {NARROW_KEY}"}
    denied = await client.post("/v1/chat/completions", headers=narrow, json={**body, "model": "est-model"})
    assert denied.status == 403
    now = time.time()
    o = await overview.overview(state(client), {}, now - 3600, now + 1)
    assert o["rejected"] == {"total": 2, "by_status": {"401": 1, "403": 1}}
    assert o["totals"]["requests"] == 1 and o["totals"]["errors"] == 0
    assert sum(p["rejected"] for p in o["series"]) == 2
    # the 1 h range is bucketed by the minute, every minute of the range present (zeros too)
    assert o["step"] == 60 and 60 <= len(o["series"]) <= 62
    assert [p["at"] for p in o["series"]] == sorted(p["at"] for p in o["series"])
    # a tenant's view has no refusals: they carry no tenant
    mine = await overview.overview(state(client), {"tenant": "acme", "key": "test"}, now - 3600, now + 1)
    assert mine["rejected"]["total"] == 0


def test_buckets_follow_the_range() -> None:
    now = 1_700_000_000.0
    assert overview.bucket_size(now - 3600, now, []) == 60
    assert overview.bucket_size(now - 86400, now, []) == 900
    assert overview.bucket_size(now - 7 * 86400, now, []) == 6 * 3600
    assert overview.bucket_size(now - 30 * 86400, now, []) == 6 * 3600
    assert overview.bucket_size(now - 90 * 86400, now, []) == 86400


async def test_pasted_provider_key_is_sealed_used_and_never_shown(make_gateway: Any, fake: Any) -> None:
    config = priced_config(fake.url)
    config["secrets"] = {"master_keys": [MASTER]}
    client = await make_gateway(config)
    secret = "sk-pasted-in-the-console-0123456789"
    resp = await client.patch("/admin/providers/local", headers=ADMIN, json={"api_key": secret})
    assert resp.status == 200
    described = await resp.json()
    assert described["api_key"] == "vault"
    assert secret not in await resp.text()
    # the shared documents hold no clear secret; the sealed one opens with the master key
    store = state(client).store
    for kind in ("providers", provider_secrets.KIND):
        for raw in (await store.list_docs(kind)).values():
            assert secret.encode() not in raw
    doc = ProviderKeyDoc.model_validate_json((await store.list_docs(provider_secrets.KIND))["local"])
    assert doc.kid == key_id(base64.urlsafe_b64decode(MASTER))

    # the provider's calls carry it
    deadline = time.monotonic() + 5
    while True:
        await chat(client, KEY, "cheap-m")
        if fake.received[-1].headers.get("Authorization") == f"Bearer {secret}":
            break
        assert time.monotonic() < deadline, "the sealed key never reached the provider"
    listing = await (await client.get("/admin/providers", headers=ADMIN)).text()
    assert secret not in listing

    # moving the provider elsewhere needs the key again; a ${VAR} replaces the sealed key
    resp = await client.patch(
        "/admin/providers/local", headers=ADMIN, json={"base_url": "http://127.0.0.1:9/v1"}
    )
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "api_key"
    resp = await client.patch("/admin/providers/local", headers=ADMIN, json={"api_key": None})
    assert resp.status == 200 and (await resp.json())["api_key"] is None
    assert await store.list_docs(provider_secrets.KIND) == {}

    # without a vault a pasted key is refused, as before
    plain = await make_gateway(priced_config(fake.url))
    resp = await plain.patch("/admin/providers/local", headers=ADMIN, json={"api_key": secret})
    assert resp.status == 400 and "master_keys" in (await resp.json())["error"]["message"]


async def test_vault_rewrap_reseals_a_pasted_key() -> None:
    store = MemoryStore()
    first = Vault([base64.urlsafe_b64decode(MASTER)])
    await provider_secrets.store_secret(store, first, "local", "sk-rotate-me")
    both = Vault([base64.urlsafe_b64decode(MASTER_2), base64.urlsafe_b64decode(MASTER)])
    done = await rewrap(store, both)
    assert done.moved == 1 and not done.failures
    doc = ProviderKeyDoc.model_validate_json((await store.list_docs(provider_secrets.KIND))["local"])
    assert doc.kid == key_id(base64.urlsafe_b64decode(MASTER_2))
    only_new = Vault([base64.urlsafe_b64decode(MASTER_2)])
    assert only_new.open(provider_secrets.OPERATOR, "local", doc.sealed()) == "sk-rotate-me"


async def test_v1_models_lists_each_name_once_with_every_provider(make_gateway: Any) -> None:
    client = await make_gateway()
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=KEY, max_retries=0)
    page = await sdk.models.list()
    ids = [m.id for m in page.data]
    assert len(ids) == len(set(ids)) and "two-step" in ids
    two = next(m for m in page.data if m.id == "two-step")
    offers = (two.model_extra or {})["providers"]
    assert [(o["provider"], o["upstream_model"]) for o in offers] == [
        ("local", "first"),
        ("backup", "second"),
    ]
    assert two.owned_by == "local"
    one = await sdk.models.retrieve("two-step")
    assert [o["provider"] for o in (one.model_extra or {})["providers"]] == ["local", "backup"]
    # the console's Models page counts the same list
    served = await (await client.get("/admin/models/served", headers=ADMIN)).json()
    assert [m["id"] for m in served["data"]] == ids
