"""The azure, bedrock and gemini plugins end to end: the official OpenAI SDK (async, in-process gateway)
gets chat (JSON and stream, tools) through routes to each, replaying their recorded answers from a local
server; usage and cost land in the ledger at the shipped price table's prices; errors map to the right
status and fallback behaviour."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from support import FIXTURES, KEY, base_config, fixture, state

from proxy.store.records import Outcome, RecordQuery

INDEX = {e["file"]: e for e in json.loads((FIXTURES / "index.json").read_text())}
PRICES = Path(__file__).resolve().parents[2] / "config" / "pricing.yaml"
MESSAGES: Any = [{"role": "user", "content": "What is 4200 + 42?"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
# The shipped table's prices (USD per 1M tokens = micro-USD per token)
NOVA_MICRO = (0.035, 0.14)
GPT_4O_MINI = (0.15, 0.60)
FLASH = (0.30, 2.50, 0.075)

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AZURE_CHAT = "/openai/deployments/prod-mini/chat/completions"
GEMINI = "/v1beta/models/gemini-2.5-flash"
NOVA = "/model/amazon.nova-micro-v1:0"
NOVA_US = "/model/us.amazon.nova-micro-v1:0"


@pytest.fixture
async def gateway(make_gateway: Any, fake: Any) -> AsyncIterator[Any]:
    config = base_config(fake.url)
    root = fake.url.removesuffix("/v1")
    config["providers"].update(
        {
            "azure": {
                "plugin": "azure",
                "base_url": root,
                "api_key": "azure-key-0123456789",
                "api_version": "2024-10-21",
            },
            "azure-v1": {
                "plugin": "azure",
                "base_url": f"{root}/openai/v1",
                "entra_token": "entra-token-abc",
            },
            "bedrock": {
                "plugin": "bedrock",
                "base_url": root,
                "region": "us-east-1",
                "aws_access_key_id": "AKIDEXAMPLE",
                "aws_secret_access_key": SECRET,
                "aws_session_token": "session-token-xyz",
            },
            "gemini": {"plugin": "gemini", "base_url": root, "api_key": "gemini-key-0123456789"},
        }
    )
    config["models"].update(
        {
            "azure-mini": {
                "targets": [{"provider": "azure", "model": "gpt-4o-mini", "deployment": "prod-mini"}]
            },
            "azure-v1-mini": {"targets": [{"provider": "azure-v1", "model": "gpt-4o-mini"}]},
            "nova": {"targets": [{"provider": "bedrock", "model": "amazon.nova-micro-v1:0"}]},
            "nova-us": {"targets": [{"provider": "bedrock", "model": "us.amazon.nova-micro-v1:0"}]},
            "flash": {"targets": [{"provider": "gemini", "model": "gemini-2.5-flash"}]},
            # fallbacks: the first target fails with a server fault, the second serves
            "nova-then-flash": {
                "targets": [
                    {"provider": "bedrock", "model": "amazon.nova-micro-v1:0"},
                    {"provider": "gemini", "model": "gemini-2.5-flash"},
                ]
            },
            "flash-then-nova": {
                "targets": [
                    {"provider": "gemini", "model": "gemini-2.5-flash"},
                    {"provider": "bedrock", "model": "amazon.nova-micro-v1:0"},
                ]
            },
            "azure-then-flash": {
                "targets": [
                    {"provider": "azure", "model": "gpt-4o-mini", "deployment": "prod-mini"},
                    {"provider": "gemini", "model": "gemini-2.5-flash"},
                ]
            },
        }
    )
    config["pricing"] = {"file": str(PRICES)}
    client = await make_gateway(config)
    client.sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=KEY, max_retries=0)
    yield client
    await client.sdk.close()


async def last_record(client: Any) -> Any:
    page = await state(client).store.records(RecordQuery())
    return page.data[-1]


async def collect(stream: Any) -> tuple[str, str | None, Any, dict[int, dict[str, str]]]:
    text, finish, usage = "", None, None
    calls: dict[int, dict[str, str]] = {}
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += tc.id or ""
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
    return text, finish, usage, calls


def cost(prompt: int, completion: int, price: tuple[float, ...], cached: int = 0) -> int:
    cached_price = price[2] if len(price) > 2 else price[0]
    return round((prompt - cached) * price[0] + cached * cached_price + completion * price[1])


# -- azure -----------------------------------------------------------------------------------------


async def test_azure_json_through_the_deployment_path(gateway: Any, fake: Any) -> None:
    fake.script_path(AZURE_CHAT, fixture("azure/chat-nonstream-content-filter-results.json"))
    completion = await gateway.sdk.chat.completions.create(model="azure-mini", messages=MESSAGES)
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.prompt_tokens == 16
    sent = fake.received[-1]
    assert sent.target == AZURE_CHAT + "?api-version=2024-10-21"
    assert sent.headers["api-key"] == "azure-key-0123456789" and "Authorization" not in sent.headers
    assert sent.body["model"] == "prod-mini"
    record = await last_record(gateway)
    assert (record.provider, record.upstream_model) == ("azure", "gpt-4o-mini")
    assert (record.prompt_tokens, record.completion_tokens) == (16, 11)
    assert record.cost_micro_usd == cost(16, 11, GPT_4O_MINI)


async def test_azure_stream_through_the_v1_path_with_an_entra_token(gateway: Any, fake: Any) -> None:
    name = "azure/chat-stream-content-filter-prompt-results.sse"
    fake.script_path("/openai/v1/chat/completions", fixture(name))
    stream = await gateway.sdk.chat.completions.create(
        model="azure-v1-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage, _ = await collect(stream)
    expected = INDEX[name]["expected"]["usage"]
    assert text and finish == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        expected["prompt_tokens"],
        expected["completion_tokens"],
    )
    sent = fake.received[-1]
    assert sent.target == "/openai/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer entra-token-abc" and "api-key" not in sent.headers
    record = await last_record(gateway)
    assert record.outcome is Outcome.COMPLETED and record.reasoning_tokens == expected["reasoning_tokens"]
    assert record.cost_micro_usd == cost(15, 78, GPT_4O_MINI)


async def test_azure_content_filter_is_the_callers_fault_and_no_fallback(gateway: Any, fake: Any) -> None:
    fake.script_path(AZURE_CHAT, fixture("azure/error-400-content-filter.json"))
    fake.script_path(f"{GEMINI}:generateContent", fixture("gemini/generate-content-cached-content.json"))
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.sdk.chat.completions.create(model="azure-then-flash", messages=MESSAGES)
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "content_filter"
    assert not any(r.path.startswith("/v1beta") for r in fake.received)  # the second target was not tried


async def test_azure_tool_call_stream(gateway: Any, fake: Any) -> None:
    # No Azure tool-call recording exists; Azure's chat wire is OpenAI's, so OpenAI's recording stands in.
    name = "openai/chat-stream-tool-calls.sse"
    fake.script_path(AZURE_CHAT, fixture(name))
    stream = await gateway.sdk.chat.completions.create(
        model="azure-mini",
        messages=MESSAGES,
        stream=True,
        tools=TOOLS,
        stream_options={"include_usage": True},
    )
    _, finish, usage, calls = await collect(stream)
    # relayed as recorded: "stop", as OpenAI ends a call forced by a named tool_choice
    assert finish == "stop" and calls[0]["name"] and json.loads(calls[0]["arguments"])
    assert fake.received[-1].body["tools"] == TOOLS
    expected = INDEX[name]["expected"]["usage"]
    record = await last_record(gateway)
    assert (record.prompt_tokens, record.completion_tokens) == (
        expected["prompt_tokens"],
        expected["completion_tokens"],
    )
    assert usage.prompt_tokens == expected["prompt_tokens"]


async def test_azure_rate_limit_falls_back(gateway: Any, fake: Any) -> None:
    fake.script_path(AZURE_CHAT, fixture("openai/error-429-rate-limit.json"))
    fake.script_path(f"{GEMINI}:generateContent", fixture("gemini/generate-content-cached-content.json"))
    raw = await gateway.sdk.chat.completions.with_raw_response.create(
        model="azure-then-flash", messages=MESSAGES
    )
    assert raw.headers["x-efflux-provider"] == "gemini"
    record = await last_record(gateway)
    assert record.provider == "gemini" and record.outcome is Outcome.COMPLETED


# -- bedrock ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "model", "path"),
    [
        ("bedrock/converse-stream-text.eventstream", "nova", NOVA),
        ("bedrock/converse-stream-tool-use.eventstream", "nova-us", NOVA_US),
    ],
)
async def test_bedrock_streams(gateway: Any, fake: Any, name: str, model: str, path: str) -> None:
    fake.script_path(f"{path}/converse-stream", fixture(name))
    tools = TOOLS if "tool" in name else openai.NOT_GIVEN
    stream = await gateway.sdk.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}, tools=tools
    )
    text, finish, usage, calls = await collect(stream)
    expected = INDEX[name]["expected"]["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        expected["inputTokens"],
        expected["outputTokens"],
    )
    if "tool" in name:
        assert finish == "tool_calls"
        assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["arguments"]) == {"city": "Paris"}
        assert calls[0]["id"].startswith("tooluse_")
        assert fake.received[-1].body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    else:
        assert "4242" in text and finish == "stop"
    record = await last_record(gateway)
    assert record.outcome is Outcome.COMPLETED and not record.estimated
    assert (record.prompt_tokens, record.completion_tokens) == (
        expected["inputTokens"],
        expected["outputTokens"],
    )
    assert record.cost_micro_usd == cost(expected["inputTokens"], expected["outputTokens"], NOVA_MICRO)
    sent = fake.received[-1]
    assert sent.target == path.replace(":", "%3A") + "/converse-stream"
    assert sent.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")


async def test_bedrock_json(gateway: Any, fake: Any) -> None:
    fake.script_path(f"{NOVA}/converse", fixture("bedrock/converse-nonstream.json"))
    completion = await gateway.sdk.chat.completions.create(
        model="nova", messages=[{"role": "system", "content": "Be brief."}, *MESSAGES], max_tokens=100
    )
    assert "4242" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    sent = fake.received[-1].body
    assert sent["system"] == [{"text": "Be brief."}] and sent["inferenceConfig"] == {"maxTokens": 100}
    record = await last_record(gateway)
    assert (record.prompt_tokens, record.completion_tokens) == (12, 56)
    assert record.cost_micro_usd == cost(12, 56, NOVA_MICRO)
    assert_signed(fake.received[-1], fake.port)


def assert_signed(sent: Any, port: int) -> None:
    """The Authorization header the local server got is a well-formed SigV4 one, for the configured key,
    region and session token, and botocore computes the same signature from what arrived."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = sent.headers["Authorization"]
    date = sent.headers["X-Amz-Date"]
    scheme, _, rest = auth.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    assert scheme == "AWS4-HMAC-SHA256"
    assert fields["Credential"] == f"AKIDEXAMPLE/{date[:8]}/us-east-1/bedrock/aws4_request"
    signed = fields["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert sent.headers["X-Amz-Security-Token"] == "session-token-xyz"
    url = f"http://127.0.0.1:{port}{sent.target}"
    headers = {name: sent.headers[name] for name in sent.headers if name.lower() in signed}
    check = AWSRequest(method="POST", url=url, data=sent.raw, headers=headers)
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", SECRET, "session-token-xyz"), "bedrock", "us-east-1")
    check.context["timestamp"] = date
    canonical = signer.canonical_request(check)
    assert fields["Signature"] == signer.signature(signer.string_to_sign(check, canonical), check)


async def test_bedrock_validation_error_is_the_callers_and_no_fallback(gateway: Any, fake: Any) -> None:
    fake.script_path(f"{NOVA}/converse", fixture("bedrock/error-400-validation.json"))
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.sdk.chat.completions.create(model="nova-then-flash", messages=MESSAGES)
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "ValidationException"  # from x-amzn-ErrorType
    assert not any(r.path.startswith("/v1beta") for r in fake.received)
    record = await last_record(gateway)
    assert record.outcome is Outcome.REJECTED and record.cost_micro_usd == 0


async def test_bedrock_throttling_falls_back_to_gemini(gateway: Any, fake: Any) -> None:
    from proxy.testing.fake_provider import Behaviour

    throttled = Behaviour.json(
        429,
        {"message": "Too many requests, please wait before trying again."},
        headers={
            "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        },
    )
    fake.script_path(f"{NOVA}/converse-stream", throttled)
    fake.script_path(
        f"{GEMINI}:streamGenerateContent", fixture("gemini/stream-generate-content-usage-every-chunk.sse")
    )
    raw = await gateway.sdk.chat.completions.with_raw_response.create(
        model="nova-then-flash", messages=MESSAGES, stream=True
    )
    assert raw.headers["x-efflux-provider"] == "gemini"
    text, finish, _, _ = await collect(raw.parse())
    assert text.startswith("1\n2\n3") and finish == "stop"
    record = await last_record(gateway)
    assert record.provider == "gemini" and record.outcome is Outcome.COMPLETED


# -- gemini ----------------------------------------------------------------------------------------


async def test_gemini_stream_usage_and_cost(gateway: Any, fake: Any) -> None:
    name = "gemini/stream-generate-content-usage-every-chunk.sse"
    fake.script_path(f"{GEMINI}:streamGenerateContent", fixture(name))
    stream = await gateway.sdk.chat.completions.create(
        model="flash",
        messages=[{"role": "system", "content": "Digits only."}, *MESSAGES],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0,
    )
    text, finish, usage, _ = await collect(stream)
    assert text == "".join(str(i) + "\n" for i in range(1, 30)) + "30" and finish == "stop"
    # 80 candidates + 35 thoughts billed as output; the last usageMetadata wins (no summing)
    assert (usage.prompt_tokens, usage.completion_tokens) == (18, 115)
    assert usage.completion_tokens_details.reasoning_tokens == 35
    sent = fake.received[-1]
    assert sent.target == f"{GEMINI}:streamGenerateContent?alt=sse"
    assert sent.headers["x-goog-api-key"] == "gemini-key-0123456789"
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Digits only."}]}
    assert sent.body["generationConfig"] == {"temperature": 0}
    record = await last_record(gateway)
    assert record.outcome is Outcome.COMPLETED
    assert (record.prompt_tokens, record.completion_tokens, record.reasoning_tokens) == (18, 115, 35)
    assert record.cost_micro_usd == cost(18, 115, FLASH)


async def test_gemini_stream_tool_call(gateway: Any, fake: Any) -> None:
    fake.script_path(
        f"{GEMINI}:streamGenerateContent", fixture("gemini/stream-generate-content-function-call.sse")
    )
    stream = await gateway.sdk.chat.completions.create(
        model="flash", messages=MESSAGES, stream=True, tools=TOOLS, tool_choice="required"
    )
    _, finish, _, calls = await collect(stream)
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    sent = fake.received[-1].body
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    record = await last_record(gateway)
    assert (record.prompt_tokens, record.completion_tokens) == (55, 15 + 45)


async def test_gemini_json_with_cached_and_thought_tokens(gateway: Any, fake: Any) -> None:
    fake.script_path(f"{GEMINI}:generateContent", fixture("gemini/generate-content-cached-content.json"))
    completion = await gateway.sdk.chat.completions.create(model="flash", messages=MESSAGES)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 3520
    record = await last_record(gateway)
    assert (record.prompt_tokens, record.cached_tokens, record.completion_tokens) == (3520, 3512, 2 + 42)
    assert record.cost_micro_usd == cost(3520, 44, FLASH, cached=3512)


async def test_gemini_bad_key_is_a_401(gateway: Any, fake: Any) -> None:
    fake.script_path(f"{GEMINI}:generateContent", fixture("gemini/error-400-api-key-invalid.json"))
    fake.script_path(f"{NOVA}/converse", fixture("bedrock/converse-nonstream.json"))
    with pytest.raises(openai.AuthenticationError):
        await gateway.sdk.chat.completions.create(model="flash-then-nova", messages=MESSAGES)
    assert not any(r.path.startswith("/model/") for r in fake.received)  # a client fault: no fallback


async def test_gemini_resource_exhausted_falls_back_to_bedrock(gateway: Any, fake: Any) -> None:
    fake.script_path(f"{GEMINI}:generateContent", fixture("gemini/error-429-resource-exhausted.json"))
    fake.script_path(f"{NOVA}/converse", fixture("bedrock/converse-nonstream.json"))
    raw = await gateway.sdk.chat.completions.with_raw_response.create(
        model="flash-then-nova", messages=MESSAGES
    )
    assert raw.headers["x-efflux-provider"] == "bedrock"
    assert "4242" in (raw.parse().choices[0].message.content or "")


@pytest.mark.parametrize(
    ("name", "model", "path"),
    [
        ("bedrock/converse-stream-text.eventstream", "nova", f"{NOVA}/converse-stream"),
        ("bedrock/converse-stream-tool-use.eventstream", "nova-us", f"{NOVA_US}/converse-stream"),
        ("gemini/stream-generate-content-usage-every-chunk.sse", "flash", f"{GEMINI}:streamGenerateContent"),
    ],
)
async def test_responses_streams_through_bedrock_and_gemini(
    gateway: Any, fake: Any, name: str, model: str, path: str
) -> None:
    """/v1/responses on a route to a translating plugin: its decoder and reader first, then the dialect."""
    fake.script_path(path, fixture(name))
    stream = await gateway.sdk.responses.create(model=model, input="hi", stream=True, tools=[
        {"type": "function", "name": "get_weather", "parameters": TOOLS[0]["function"]["parameters"]}
    ])  # fmt: skip
    events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    final = events[-1].response  # type: ignore[union-attr]
    record = await last_record(gateway)
    assert record.endpoint == "responses" and record.outcome is Outcome.COMPLETED and not record.estimated
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        record.prompt_tokens,
        record.completion_tokens,
    )
    assert record.completion_tokens > 0 and final.output


@pytest.mark.parametrize(
    ("name", "model", "path"),
    [
        ("bedrock/converse-stream-text.eventstream", "nova", f"{NOVA}/converse-stream"),
        ("bedrock/converse-stream-tool-use.eventstream", "nova-us", f"{NOVA_US}/converse-stream"),
        ("gemini/stream-generate-content-usage-every-chunk.sse", "flash", f"{GEMINI}:streamGenerateContent"),
        ("gemini/stream-generate-content-function-call.sse", "flash", f"{GEMINI}:streamGenerateContent"),
    ],
)
async def test_messages_streams_through_bedrock_and_gemini(
    gateway: Any, fake: Any, name: str, model: str, path: str
) -> None:
    """/v1/messages (the anthropic SDK) on a route to a translating plugin: its decoder and reader first,
    then the Messages dialect."""
    fake.script_path(path, fixture(name))
    base = str(gateway.make_url("")).rstrip("/")
    tool = {"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"]}
    sdk = anthropic.AsyncAnthropic(base_url=base, api_key=KEY, max_retries=0)
    async with sdk.messages.stream(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "hi"}], tools=[tool]
    ) as stream:
        async for _ in stream:
            pass
        message = await stream.get_final_message()
    await sdk.close()
    record = await last_record(gateway)
    assert record.endpoint == "messages" and record.outcome is Outcome.COMPLETED and not record.estimated
    assert message.usage.output_tokens == record.completion_tokens > 0
    cached = record.cached_tokens + record.cache_write_tokens
    assert message.usage.input_tokens == record.prompt_tokens - cached
    assert message.content
    if any(block.type == "tool_use" for block in message.content):
        assert message.stop_reason == "tool_use"
