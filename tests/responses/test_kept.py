"""The responses the gateway keeps: ``responses.ttl`` decides how long (Redis expires the key), the memory
store's bound drops the oldest, and a kept response answers only its own key."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from support import AUTH, KEY, base_config, fixture

from proxy.responses import kept
from proxy.store import memory
from proxy.store.base import Period, StoreUnavailable
from proxy.store.memory import MemoryStore
from proxy.tenancy.keys import VirtualKey
from proxy.testing.fake_provider import Behaviour, FakeProvider

Make = Callable[..., Any]
OTHER_KEY = "egw-other-key-0123456789"


def config(fake: FakeProvider, **sections: Any) -> dict[str, Any]:
    cfg = base_config(fake.url, **sections)
    cfg["keys"].append({"name": "other", "tenant": "acme", "key": OTHER_KEY})
    cfg["providers"]["oai"] = {"plugin": "openai", "base_url": fake.url, "api_key": "sk-oai"}
    cfg["models"] = {"native-*": {"targets": [{"provider": "oai"}]}, **cfg["models"]}
    return cfg


async def create(client: Any, **fields: Any) -> dict[str, Any]:
    body = {"model": "small", "input": "hi", **fields}
    resp = await client.post("/v1/responses", json=body, headers=AUTH)
    body: dict[str, Any] = orjson.loads(await resp.read())
    assert resp.status == 200, body
    return body


@pytest.mark.redis
@pytest.mark.parametrize(("ttl", "seconds"), [("2h", 7200), (None, 30 * 86400)])
async def test_responses_ttl_is_the_kept_responses_expiry_in_redis(
    make_gateway: Make, fake: FakeProvider, redis_url: str, ttl: str | None, seconds: int
) -> None:
    prefix = "t" + secrets.token_hex(4)
    sections: dict[str, Any] = {
        "store": {"backend": "redis", "url": redis_url, "prefix": prefix},
        "secrets": {"key_secret": secrets.token_hex(32)},
    }
    if ttl is not None:
        sections["responses"] = {"ttl": ttl}
    client = await make_gateway(config(fake, **sections))
    fake.script("small", Behaviour.answer("Hello."))
    response = await create(client)
    left = redis.Redis.from_url(redis_url).pttl(f"{prefix}:resp:{response['id']}")
    assert seconds * 1000 - 60_000 < left <= seconds * 1000


async def test_a_kept_response_answers_only_its_key(make_gateway: Make, fake: FakeProvider) -> None:
    client = await make_gateway(config(fake))
    response = await create(client)
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    for method, path in [
        ("GET", ""),
        ("GET", "/input_items"),
        ("DELETE", ""),
        ("POST", "/cancel"),
    ]:
        resp = await client.request(method, f"/v1/responses/{response['id']}{path}", headers=other)
        body = orjson.loads(await resp.read())
        assert resp.status == 404 and body["error"]["code"] == "not_found", (method, path)
        resp = await client.request(method, f"/v1/responses/{response['id']}{path}")
        assert resp.status == 401
    resp = await client.get(f"/v1/responses/{response['id']}", headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 200 and orjson.loads(await resp.read())["id"] == response["id"]


async def test_a_continued_conversation_sends_the_whole_context(
    make_gateway: Make, fake: FakeProvider
) -> None:
    client = await make_gateway(config(fake))
    fake.script("small", Behaviour.answer("First."), Behaviour.answer("Second."))
    first = await create(client, instructions="Be brief.")
    second = await create(client, input="And then?", previous_response_id=first["id"])
    assert second["previous_response_id"] == first["id"]
    # Instructions do not carry over (as OpenAI's): the kept conversation is its items.
    assert fake.received[-1].body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "First."},
        {"role": "user", "content": "And then?"},
    ]
    resp = await client.get(f"/v1/responses/{second['id']}/input_items?order=asc", headers=AUTH)
    items = orjson.loads(await resp.read())["data"]
    assert [i["type"] for i in items] == ["message", "message", "message"]
    assert [i["content"] for i in items][::2] == ["hi", "And then?"] and all(i["id"] for i in items)
    resp = await client.get(f"/v1/responses/{second['id']}/input_items?limit=2", headers=AUTH)
    page = orjson.loads(await resp.read())
    assert page["has_more"] and [i["id"] for i in page["data"]] == [i["id"] for i in items[::-1][:2]]
    after = page["last_id"]
    resp = await client.get(f"/v1/responses/{second['id']}/input_items?limit=2&after={after}", headers=AUTH)
    page = orjson.loads(await resp.read())
    assert not page["has_more"] and [i["id"] for i in page["data"]] == [items[0]["id"]]
    # a native target gets the kept conversation as input, without the gateway's ids and states
    fake.script("native-x", fixture("openai/responses-nonstream.json"))
    await create(client, model="native-x", input="More?", previous_response_id=second["id"])
    sent = fake.received[-1]
    assert sent.path == "/v1/responses" and "previous_response_id" not in sent.body
    assert [i.get("content") for i in sent.body["input"]] == [
        "hi",
        [{"type": "output_text", "text": "First.", "annotations": [], "logprobs": []}],
        "And then?",
        [{"type": "output_text", "text": "Second.", "annotations": [], "logprobs": []}],
        "More?",
    ]
    assert not any("id" in i or "status" in i for i in sent.body["input"])


async def test_an_unknown_previous_response_on_a_translated_route_is_a_404(
    make_gateway: Make, fake: FakeProvider
) -> None:
    client = await make_gateway(config(fake))
    resp = await client.post(
        "/v1/responses",
        json={"model": "small", "input": "hi", "previous_response_id": "resp_nothing"},
        headers=AUTH,
    )
    body = orjson.loads(await resp.read())
    assert resp.status == 404 and body["error"]["code"] == "previous_response_not_found"
    assert body["error"]["param"] == "previous_response_id"
    assert fake.count() == 0


async def test_the_memory_store_drops_its_oldest_kept_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "MAX_RESPONSES", 2)
    store = MemoryStore()
    for name in ("a", "b", "c"):
        await store.put_response(name, b"{}", 60)
    assert await store.get_response("a") is None
    assert await store.get_response("b") == b"{}" and await store.get_response("c") == b"{}"
    monkeypatch.setattr(memory, "MAX_RESPONSE_BYTES", 9)
    await store.put_response("d", b"x" * 8, 60)
    assert await store.get_response("b") is None and await store.get_response("c") is None
    assert await store.get_response("d") == b"x" * 8


class Unanswering(MemoryStore):
    async def get_response(self, id: str) -> bytes | None:
        raise StoreUnavailable()

    async def put_response(self, id: str, value: bytes, ttl: float) -> None:
        raise StoreUnavailable()

    async def delete_response(self, id: str) -> bool:
        raise StoreUnavailable()


async def test_a_store_that_does_not_answer_is_a_503_not_a_500() -> None:
    store, key = Unanswering(), VirtualKey("k1", "test", "acme", ("*",), None, None, None, Period.MONTHLY)
    with pytest.raises(kept.KeptUnavailable) as raised:
        await kept.find(store, "resp_1", key)
    assert raised.value.status == 503 and raised.value.retry_after
    with pytest.raises(kept.KeptUnavailable):
        await kept.forget(store, "resp_1")
    # the answer already went out: keeping it is best effort, logged
    await kept.keep(store, key, {"id": "resp_1"}, [], 60)
