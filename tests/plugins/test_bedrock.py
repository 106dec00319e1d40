"""The bedrock plugin: the event-stream framing (split anywhere, CRCs, bounds), the stream through the
gateway's tap, the Converse translation, and the SigV4 signature checked by botocore itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from plugins.bedrock import Plugin
from plugins.bedrock.eventstream import EventStreamDecoder, FrameError, encode
from plugins.bedrock.request import to_converse
from proxy.config import ConfigError, parse_settings
from proxy.dataplane.tap import StreamTap
from proxy.plugin import Call, CallRejected, Endpoint, Fault, ProviderSettings, Reply
from proxy.state.snapshot import build_snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TEXT = (FIXTURES / "bedrock" / "converse-stream-text.eventstream").read_bytes()
TOOL = (FIXTURES / "bedrock" / "converse-stream-tool-use.eventstream").read_bytes()
CREDENTIALS = {
    "aws_access_key_id": "AKIDEXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
}


def plugin(base_url: str = "", **options: str) -> Plugin:
    settings = ProviderSettings(
        name="bedrock", base_url=base_url, options={"region": "eu-west-3", **CREDENTIALS, **options}
    )
    return Plugin(settings)


def chat(stream: bool = False, api_key: str | None = None, **body: Any) -> Call:
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return Call(Endpoint.CHAT, {"model": "nova", **body}, "amazon.nova-micro-v1:0", stream, True, api_key)


# ---------------------------------------------------------------- the event-stream framing


def test_every_split_of_the_recording_decodes_the_same() -> None:
    whole = EventStreamDecoder().feed(TEXT)
    assert [m.header(":event-type") for m in whole][:2] == ["messageStart", "contentBlockDelta"]
    assert len(whole) == 19 and whole[-1].header(":event-type") == "metadata"
    for size in (1, 2, 3, 7, 12, 13, 64, 1000):
        decoder = EventStreamDecoder()
        pieces = [m for i in range(0, len(TEXT), size) for m in decoder.feed(TEXT[i : i + size])]
        assert pieces == whole and not decoder.pending


def test_a_bad_prelude_crc_is_refused() -> None:
    broken = bytearray(TOOL)
    broken[9] ^= 0xFF  # inside the prelude's CRC
    with pytest.raises(FrameError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(broken))


def test_a_bad_message_crc_is_refused() -> None:
    broken = bytearray(TOOL)
    broken[40] ^= 0x01  # inside the first message's headers
    with pytest.raises(FrameError, match="message CRC"):
        EventStreamDecoder().feed(bytes(broken))


def test_a_frame_past_the_bound_is_refused_from_its_prelude() -> None:
    big = encode({":event-type": "contentBlockDelta", ":message-type": "event"}, b"x" * 5000)
    decoder = EventStreamDecoder(max_frame_bytes=4096)
    with pytest.raises(FrameError, match="past the 4096 bound"):
        decoder.feed(big[:12])  # the prelude alone says it is too long: nothing more is buffered


# ---------------------------------------------------------------- the stream through the tap


def tap_of(data: bytes, size: int = 5, max_bytes: int = 1 << 20) -> tuple[StreamTap, bytes]:
    provider, call = plugin(), chat(stream=True)
    tap = StreamTap(
        provider.open_stream(call), max_event_bytes=max_bytes, decoder=provider.stream_decoder(call)
    )
    out = b"".join(tap.feed(data[i : i + size]) for i in range(0, len(data), size) if tap.error is None)
    return tap, out


def test_the_tool_stream_becomes_openai_chunks() -> None:
    tap, out = tap_of(TOOL)
    events = [e for e in out.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[4]["usage"]["prompt_tokens"] == 419 and chunks[4]["choices"] == []
    assert tap.finished and tap.reader.complete and tap.error is None
    assert tap.usage is not None and (tap.usage.prompt_tokens, tap.usage.completion_tokens) == (419, 16)


def test_a_stream_cut_before_its_metadata_is_not_complete() -> None:
    tap, out = tap_of(TEXT[:-10])  # inside the last frame: metadata, which carries the usage
    assert b'"finish_reason":"stop"' in out and b"[DONE]" not in out
    assert not tap.reader.complete and not tap.finished and tap.usage is None
    assert tap.close() is True  # the body stopped inside a frame


def test_a_corrupt_frame_ends_the_stream_with_a_server_fault() -> None:
    broken = bytearray(TEXT)
    broken[len(TEXT) // 2] ^= 0x01
    tap, out = tap_of(bytes(broken))
    assert tap.error is not None and tap.error.fault is Fault.SERVER and "CRC mismatch" in tap.error.message
    assert b"[DONE]" not in out


def test_the_sse_event_bound_bounds_frames_too() -> None:
    tap, _ = tap_of(TEXT, size=4096, max_bytes=100)
    assert tap.error is not None and "past the 100 bound" in tap.error.message


def test_a_throttling_exception_in_the_stream_is_a_server_fault() -> None:
    frame = encode(
        {
            ":message-type": "exception",
            ":exception-type": "throttlingException",
            ":content-type": "application/json",
        },
        b'{"message":"Too many tokens"}',
    )
    tap, _ = tap_of(frame)
    assert tap.error is not None and tap.error.status == 429 and tap.error.fault is Fault.SERVER
    frame = encode(
        {":message-type": "exception", ":exception-type": "validationException"}, b'{"message":"bad"}'
    )
    tap, _ = tap_of(frame)
    assert tap.error is not None and tap.error.status == 400 and tap.error.fault is Fault.CLIENT


# ---------------------------------------------------------------- translation and replies


def test_tools_images_and_tool_results_translate() -> None:
    body = to_converse(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is here?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {"name": "look", "arguments": '{"x": 1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "t1", "content": '{"seen": "a cat"}'},
                {"role": "user", "content": "And?"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "look", "description": "Look", "parameters": {"type": "object"}},
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "look"}},
            "max_completion_tokens": 50,
            "stop": ["END"],
            "temperature": 0.2,
        }
    )
    assert body["system"] == [{"text": "Be brief."}]
    user, assistant, results = body["messages"]
    assert user["content"][1] == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
    assert assistant["content"] == [{"toolUse": {"toolUseId": "t1", "name": "look", "input": {"x": 1}}}]
    # the tool result and the next user text are one user turn (Converse alternates roles)
    assert results["content"] == [
        {"toolResult": {"toolUseId": "t1", "content": [{"json": {"seen": "a cat"}}]}},
        {"text": "And?"},
    ]
    assert body["toolConfig"]["tools"][0]["toolSpec"] == {
        "name": "look",
        "inputSchema": {"json": {"type": "object"}},
        "description": "Look",
    }
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "look"}}
    assert body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["END"]}


@pytest.mark.parametrize(
    "body",
    [
        {"logprobs": True},
        {"response_format": {"type": "json_object"}},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}],
                }
            ]
        },
        {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"},
    ],
)
def test_what_converse_cannot_take_is_a_400(body: dict[str, Any]) -> None:
    with pytest.raises(CallRejected) as caught:
        plugin().build_request(chat(**body))
    assert caught.value.error.status == 400 and caught.value.error.fault is Fault.CLIENT


def test_usage_counts_cache_reads_once_and_inside_the_prompt() -> None:
    reply = plugin().read_reply(
        chat(), (FIXTURES / "bedrock" / "converse-nonstream-cache-read.json").read_bytes()
    )
    assert isinstance(reply, Reply) and reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens, reply.usage.completion_tokens) == (
        1517,
        1504,
        5,
    )
    assert orjson.loads(reply.body)["usage"]["prompt_tokens_details"]["cached_tokens"] == 1504


@pytest.mark.parametrize(
    ("status", "fault", "code"),
    [
        (400, Fault.CLIENT, "ValidationException"),
        (403, Fault.CLIENT, "AccessDeniedException"),
        (429, Fault.SERVER, "ThrottlingException"),
        (500, Fault.SERVER, "InternalServerException"),
        (503, Fault.SERVER, "ServiceUnavailableException"),
    ],
)
def test_error_mapping(status: int, fault: Fault, code: str) -> None:
    error = plugin().map_error(status, "application/json", b'{"message":"it went wrong"}')
    assert (error.status, error.fault, error.code) == (status, fault, code)
    assert "it went wrong" in error.message


# ---------------------------------------------------------------- URLs, auth and the signature


def test_the_default_endpoint_is_the_regions_runtime() -> None:
    request = plugin().build_request(chat(stream=True))
    assert (
        request.url
        == "https://bedrock-runtime.eu-west-3.amazonaws.com/model/amazon.nova-micro-v1%3A0/converse-stream"
    )
    assert request.headers["Accept"] == "application/vnd.amazon.eventstream"


def test_the_signature_verifies_with_botocore() -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = plugin("http://127.0.0.1:8123", aws_session_token="session-tok").build_request(chat())
    auth = request.headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    date = request.headers["X-Amz-Date"]
    assert f"/{date[:8]}/eu-west-3/bedrock/aws4_request" in auth
    assert "SignedHeaders=" in auth and "host" in auth.split("SignedHeaders=")[1]
    assert request.headers["X-Amz-Security-Token"] == "session-tok"
    # botocore, given the same credentials, time, URL, headers and body, computes the same signature
    check = AWSRequest(
        method="POST",
        url=request.url,
        data=request.body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    check.context["timestamp"] = date
    signer = SigV4Auth(
        Credentials(CREDENTIALS["aws_access_key_id"], CREDENTIALS["aws_secret_access_key"], "session-tok"),
        "bedrock",
        "eu-west-3",
    )
    check.headers["X-Amz-Date"] = date
    check.headers["X-Amz-Security-Token"] = "session-tok"
    canonical = signer.canonical_request(check)
    signature = signer.signature(signer.string_to_sign(check, canonical), check)
    assert auth.endswith(f"Signature={signature}")
    # a changed body no longer matches
    check.data = request.body + b" "
    assert not auth.endswith(
        f"Signature={signer.signature(signer.string_to_sign(check, signer.canonical_request(check)), check)}"
    )


def test_a_bedrock_api_key_is_a_bearer_token_instead_of_a_signature() -> None:
    request = plugin().build_request(chat(api_key="bedrock-api-key-123"))
    assert (
        request.headers["Authorization"] == "Bearer bedrock-api-key-123"
        and "X-Amz-Date" not in request.headers
    )


def config(**provider: Any) -> Any:
    return parse_settings(
        {
            "providers": {"bedrock": {"plugin": "bedrock", **provider}},
            "models": {"nova": {"targets": [{"provider": "bedrock"}]}},
            "pricing": {"default": {"input": 1.0}},
        }
    )


def test_the_region_is_required() -> None:
    with pytest.raises(ConfigError, match=r"providers\.bedrock: plugin 'bedrock' needs a region"):
        build_snapshot(config(**CREDENTIALS))


def test_without_botocore_the_config_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore.auth", None)  # an import of it now fails
    with pytest.raises(ConfigError, match=r"needs botocore: pip install 'efflux-gateway\[bedrock\]'"):
        build_snapshot(config(region="us-east-1", **CREDENTIALS))


def test_credentials_come_from_the_environment_without_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    snapshot = build_snapshot(config(region="us-east-1"))
    request = snapshot.providers["bedrock"].build_request(chat())
    assert "Credential=AKIDFROMENV/" in request.headers["Authorization"]


def test_a_setting_of_another_plugin_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"providers\.bedrock\.api_version: not a setting of plugin 'bedrock'"
    ):
        build_snapshot(config(region="us-east-1", api_version="v1", **CREDENTIALS))


async def test_list_models_is_a_signed_list_foundation_models(aiohttp_server: Any) -> None:
    from aiohttp import ClientSession, web

    seen: list[str] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        summaries = [{"modelId": "amazon.nova-micro-v1:0", "providerName": "Amazon"}, {"providerName": "x"}]
        return web.json_response({"modelSummaries": summaries})

    app = web.Application()
    app.router.add_get("/foundation-models", models)
    server = await aiohttp_server(app)
    async with ClientSession() as http:
        found = await plugin(str(server.make_url("")).rstrip("/")).list_models(http)
    assert [(m.id, m.owned_by) for m in found] == [("amazon.nova-micro-v1:0", "Amazon")]
    assert seen[0].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-3/bedrock/aws4_request" in seen[0]


def test_the_error_class_comes_from_the_header() -> None:
    headers = {
        "content-type": "application/json",
        "x-amzn-errortype": "ServiceQuotaExceededException:http://x/",
    }
    error = plugin().map_answer(400, headers, b'{"message":"quota"}')
    # the account's quota: not the request's fault, another target may serve it
    assert (error.code, error.fault, error.status) == ("ServiceQuotaExceededException", Fault.SERVER, 400)
    headers["x-amzn-errortype"] = "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    body = (FIXTURES / "bedrock" / "error-400-validation.json").read_bytes()
    error = plugin().map_answer(400, headers, body)
    assert (error.code, error.fault) == ("ValidationException", Fault.CLIENT)
    assert error.message.startswith("ValidationException: ")


async def test_temporary_credentials_are_refreshed_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import datetime
    import threading

    from botocore.credentials import RefreshableCredentials
    from botocore.session import Session

    from plugins.bedrock import signing

    fetched: list[str] = []

    def fetch() -> dict[str, str]:
        fetched.append(threading.current_thread().name)
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)  # always due
        return {
            "access_key": f"AKID{len(fetched)}",
            "secret_key": "s",
            "token": "t",
            "expiry_time": expiry.isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(fetch(), fetch, "test")
    monkeypatch.setattr(Session, "get_credentials", lambda self: credentials)
    provider = Plugin(ProviderSettings("bedrock", "", options={"region": "us-east-1"}))
    first = provider.build_request(chat()).headers["Authorization"]
    monkeypatch.setattr(signing, "REFRESH_EVERY", 0.0)
    provider.build_request(chat())  # signs with the frozen copy it has, and starts a refresh
    for _ in range(200):  # the refresh runs in the loop's executor
        if not provider.signer._refreshing:
            break
        await asyncio.sleep(0.01)
    later = provider.build_request(chat()).headers["Authorization"]
    assert later.split("/")[0] != first.split("/")[0]  # signed with the refreshed key id
    main = threading.main_thread().name
    assert fetched[:2] == [main, main] and main not in fetched[2:]  # at load, then never on the loop


def test_in_one_read_the_frames_before_a_corrupt_one_still_reach_the_client() -> None:
    broken = bytearray(TEXT)
    broken[-3] ^= 0x01  # the last frame's CRC: metadata
    tap, out = tap_of(bytes(broken), size=len(TEXT))
    assert b'"finish_reason":"stop"' in out and b"4242" in out  # everything before the bad frame
    assert tap.error is not None and "message CRC mismatch" in tap.error.message and tap.usage is None
