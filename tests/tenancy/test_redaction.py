"""Redaction (issue 14, item 13): the secrets themselves are masked wherever upstream text reaches a client,
whole or as the cut quotes providers make of them; text that only shares characters with a secret is not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from support import ADMIN
from tenancy.test_isolation import CHAT, A, B, tenancy_config

from proxy.tenancy.redaction import MASK, redact
from proxy.testing.fake_provider import Behaviour

OWN = "sk-own-of-a-Qx7fT2mLp9Wz4Rb8"  # tenant A's own key
SHARED = "sk-shared-key"  # tenancy_config's shared key: short, so masked only whole


def test_whole_and_cut_quotes_of_a_secret_are_masked() -> None:
    assert redact(f"Incorrect API key provided: {OWN}.", [OWN]) == f"Incorrect API key provided: {MASK}."
    assert redact(f"key {OWN[:12]}...{OWN[-4:]} refused", [OWN]) == f"key {MASK}...{OWN[-4:]} refused"
    assert redact(f"key ...{OWN[-10:]} refused", [OWN]) == f"key ...{MASK} refused"
    assert redact(f"{OWN}{OWN} and {SHARED}", [None, "", OWN, SHARED]) == f"{MASK} and {MASK}"


def test_ordinary_words_sharing_characters_with_a_secret_are_kept() -> None:
    secret = "sk-test-organization-X9f2Qz7LmP4w"
    message = "Your organization has exceeded its rate limit (quota 12345678)."
    assert redact(message, [secret, "key-12345678-abcdefgh"]) == message
    assert redact("short keys: abc abc", ["abc"]) == "short keys: abc abc", "too short to tell from words"
    assert redact(f"the middle {OWN[6:18]} alone", [OWN]) == f"the middle {OWN[6:18]} alone"


def stream(*events: object) -> Behaviour:
    chunks = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
    return Behaviour(200, b"", "text/event-stream", chunks=chunks)


CONTENT = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}],
}


@pytest.mark.parametrize("quote", ["whole", "cut"])
async def test_a_key_quoted_in_a_stream_error_event_is_masked(
    make_gateway: Callable[..., Any], fake: Any, quote: str
) -> None:
    client = await make_gateway(tenancy_config(fake.url))
    resp = await client.put("/me/provider-keys/local", json={"api_key": OWN}, headers=A)
    assert resp.status == 200
    quoted = OWN if quote == "whole" else f"{OWN[:10]}...{OWN[-4:]}"
    error = {"error": {"message": f"Key {quoted} is over its quota", "type": "server_error"}}
    fake.script("m", stream(CONTENT, error))
    body = await (await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=A)).read()
    assert b"Hello" in body and b"is over its quota" in body and MASK.encode() in body
    assert OWN[:10].encode() not in body
    # Before any content the error falls back and fails: the attempts listed are masked too, for the
    # tenant's own key as for the shared one (B has no key of its own).
    for who, secret in ((A, quoted), (B, SHARED)):
        fake.script("m", stream({"error": {"message": f"Key {secret} is over its quota"}}))
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=who)
        text = await resp.text()
        assert resp.status == 502 and secret[:10] not in text and f"Key {MASK}" in text, text


async def test_a_key_quoted_in_json_and_plain_errors_is_masked(
    make_gateway: Callable[..., Any], fake: Any
) -> None:
    client = await make_gateway(tenancy_config(fake.url))
    await client.put("/admin/tenants/tenant-a/provider-keys/local", json={"api_key": OWN}, headers=ADMIN)
    for behaviour in (
        Behaviour.json(401, {"error": {"message": f"Incorrect API key provided: {OWN}"}}),
        Behaviour.json(500, {"error": {"message": f"internal error for {OWN[:9]}***"}}),
        Behaviour.json(200, {"error": {"message": f"Unknown key ...{OWN[-9:]}"}}),
    ):
        fake.script("m", behaviour)
        text = await (await client.post("/v1/chat/completions", json=CHAT, headers=A)).text()
        assert MASK in text and OWN[:9] not in text and OWN[-9:] not in text, text
