"""End to end: the official ``openai`` package calls moderations, images, speech and transcriptions (and a
plain client calls rerank) through a real gateway process, against a local provider that answers as the
providers document (:mod:`proxy.testing.media_provider`, replaying the recorded fixtures). Each call is
checked in the ledger: its endpoint, units and cost.

The gateway's body limit is set to 1 MiB here: uploads of several MiB stream through it while a chat body
of 1.5 MiB is refused, and a gated upload shows the provider receiving the file while the client is still
sending it (a gateway that held the upload whole would never let the gate open).
"""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from support import ADMIN, KEY, base_config, fixture

from proxy.testing.fake_provider import Behaviour
from proxy.testing.gateway_process import GatewayProcess
from proxy.testing.media_provider import MediaProvider

MIB = 1024 * 1024
PRICES = {
    "whisper-1": {"per_second": 0.0001},  # 100 micro-USD per second
    "tts-1": {"per_million_characters": 15.0},  # 15 micro-USD per character
    "dall-e-2": {"per_image": 0.02},  # 20,000 micro-USD per image
    "rerank-v3.5": {"per_search": 0.002},  # 2,000 micro-USD per search
    "omni-moderation-latest": {"input": 0},
    "e2e-chat": {"input": 1.0, "output": 2.0},
}


def route(*targets: tuple[str, str]) -> dict[str, Any]:
    return {"targets": [{"provider": p, "model": m} for p, m in targets]}


@pytest.fixture(scope="module")
def provider() -> Iterator[MediaProvider]:
    media = MediaProvider().start_in_thread()
    yield media
    media.stop_thread()


@pytest.fixture(scope="module")
def gateway(provider: MediaProvider, gateway_process: Callable[..., GatewayProcess]) -> GatewayProcess:
    config = base_config(provider.url)
    config["server"]["max_body_bytes"] = MIB
    config["providers"]["down"] = {"plugin": "openai_compatible", "base_url": "http://127.0.0.1:1/v1"}
    config["pricing"] = {"models": PRICES}  # no default: a model missing here is unpriced
    config["models"].update(
        {
            "speech-fallback": route(("down", "tts-1"), ("local", "tts-1")),
            "speech-after-503": route(("local", "tts-1"), ("backup", "tts-1")),
            "whisper-fallback": route(("down", "whisper-1"), ("local", "whisper-1")),
            "whisper-after-503": route(("local", "whisper-503"), ("backup", "whisper-1")),
        }
    )
    return gateway_process(config)


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


def record(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{gateway.url}/admin/usage/records?request_id={request_id}", headers=ADMIN)
    with urllib.request.urlopen(req, timeout=5) as resp:
        [found] = json.load(resp)["data"]
        return dict(found)


def last_record(gateway: GatewayProcess, endpoint: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{gateway.url}/admin/usage/records?limit=1000", headers=ADMIN)
    with urllib.request.urlopen(req, timeout=5) as resp:
        data = json.load(resp)["data"]
    mine = [r for r in data if r["endpoint"] == endpoint]
    return dict(max(mine, key=lambda r: r["started_at"]))


def audio(size: int) -> bytes:
    return (b"ID3\x04\x00" + bytes(range(256)) * (size // 256 + 1))[:size]


# -- moderations, images ----------------------------------------------------------------------------------


def test_moderations_without_a_model_go_to_the_default_and_cost_nothing(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.script("omni-moderation-latest", fixture("openai/moderations.json"))
    raw = client.moderations.with_raw_response.create(input="Have a great day!")
    result = raw.parse()
    assert result.results[0].flagged is False
    assert provider.received[-1].path == "/v1/moderations"
    assert provider.received[-1].body == {"input": "Have a great day!", "model": "omni-moderation-latest"}
    rec = record(gateway, raw.headers["x-efflux-request-id"])
    assert rec["endpoint"] == "moderations" and rec["outcome"] == "completed"
    assert (rec["cost_micro_usd"], rec["estimated"], rec["units"]) == (0, False, 0)


def test_images_are_metered_per_image(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.script("dall-e-2", fixture("openai/images-generations-url.json"))
    raw = client.images.with_raw_response.generate(
        model="dall-e-2", prompt="A baby sea otter cooking pasta wearing a hat of some sort", size="256x256"
    )
    assert raw.parse().data and raw.parse().data[0].url
    rec = record(gateway, raw.headers["x-efflux-request-id"])
    assert (rec["endpoint"], rec["unit"], rec["units"]) == ("images/generations", "image", 1)
    assert rec["cost_micro_usd"] == 20_000 and not rec["estimated"]


def test_an_unpriced_image_model_is_served_and_recorded_as_an_estimate(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.script("e2e-unpriced-image", fixture("openai/images-generations-url.json"))
    raw = client.images.with_raw_response.generate(model="e2e-unpriced-image", prompt="an otter")
    rec = record(gateway, raw.headers["x-efflux-request-id"])
    assert (rec["units"], rec["cost_micro_usd"], rec["estimated"]) == (1, 0, True)
    # Chat keeps its rule: an unpriced chat model is refused, not served.
    with pytest.raises(openai.BadRequestError, match="has no price"):
        client.chat.completions.create(
            model="e2e-unpriced-chat", messages=[{"role": "user", "content": "hi"}]
        )


# -- speech ----------------------------------------------------------------------------------------------


def test_speech_is_relayed_as_it_arrives_and_metered_per_character(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    gate = provider.speech_gate = threading.Event()
    text = "Hello from the gateway."
    try:
        with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=text
        ) as resp:
            chunks = resp.iter_bytes()
            first = next(chunks)  # the provider holds the rest until the gate opens
            assert first.startswith(b"ID3")
            assert provider.speech_sent == 1, "the client got audio before the provider sent the rest"
            gate.set()
            body = first + b"".join(chunks)
            request_id = resp.headers["x-efflux-request-id"]
            assert resp.headers["content-type"] == "audio/mpeg"
    finally:
        provider.speech_gate = None
    assert body == b"".join(provider.speech_chunks)
    rec = record(gateway, request_id)
    assert (rec["endpoint"], rec["unit"], rec["units"]) == ("audio/speech", "character", len(text))
    assert rec["cost_micro_usd"] == 15 * len(text) and rec["outcome"] == "completed"


def test_speech_falls_back_past_a_provider_that_is_down(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="speech-fallback", voice="alloy", input="Fall back."
    ) as resp:
        assert resp.read() == b"".join(provider.speech_chunks)
        assert resp.headers["x-efflux-attempts"] == "2"
        rec = record(gateway, resp.headers["x-efflux-request-id"])
    assert (rec["provider"], rec["attempts"], rec["outcome"]) == ("local", 2, "completed")


def test_speech_falls_back_past_a_503(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.speech_behaviours = [
        Behaviour.json(503, {"error": {"message": "overloaded", "type": "server_error"}})
    ]
    with client.audio.speech.with_streaming_response.create(
        model="speech-after-503", voice="alloy", input="Again."
    ) as resp:
        assert resp.read() == b"".join(provider.speech_chunks)
        rec = record(gateway, resp.headers["x-efflux-request-id"])
    assert (rec["provider"], rec["attempts"]) == ("backup", 2)


def test_a_client_leaving_mid_speech_is_recorded_as_aborted(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    gate = provider.speech_gate = threading.Event()
    try:
        with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input="Leaving early."
        ) as resp:
            next(resp.iter_bytes())
            request_id = resp.headers["x-efflux-request-id"]
        # The connection is closed here, before the rest of the audio was sent.
        resp.close()
    finally:
        gate.set()
        provider.speech_gate = None
    rec = _eventually(lambda: record(gateway, request_id))
    assert rec["outcome"] == "client_aborted"
    assert rec["units"] == len("Leaving early.")  # charged for what it asked the provider to read


def test_speech_cut_by_the_provider_is_never_delivered_as_whole(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    chunks = [b"ID3\x04" + bytes(4000), bytes(4000), bytes(4000)]
    provider.speech_behaviours = [Behaviour(200, b"", "audio/mpeg", {}, chunks, fault="reset", reset_after=1)]
    cut: Exception | None = None
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="Cut."
    ) as resp:
        request_id = resp.headers["x-efflux-request-id"]
        try:
            resp.read()
        except Exception as exc:  # the HTTP library's own error for a body cut short
            cut = exc
    assert cut is not None and "incomplete" in str(cut), "the client saw the audio was cut"
    rec = _eventually(lambda: record(gateway, request_id))
    assert (rec["outcome"], rec["units"]) == ("upstream_error", len("Cut."))


# -- transcriptions and translations ---------------------------------------------------------------------


def test_a_transcription_with_a_duration_is_metered_per_second(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.script("whisper-1", fixture("openai/audio-transcriptions-verbose-json.json"))
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("speech.mp3", audio(3 * MIB)), response_format="verbose_json"
    )
    assert raw.parse().text.startswith("Galileo")
    seen = provider.uploads[-1]
    assert seen.model == "whisper-1" and seen.size >= 3 * MIB and seen.filename == "speech.mp3"
    rec = record(gateway, raw.headers["x-efflux-request-id"])
    assert (rec["endpoint"], rec["unit"], rec["units"]) == ("audio/transcriptions", "second", 37)
    assert rec["cost_micro_usd"] == 37 * 100 and not rec["estimated"]


def test_a_transcription_without_a_duration_is_estimated_from_the_file_size(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.script("whisper-1", fixture("openai/audio-transcriptions.json"))
    raw = client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=("a.mp3", audio(MIB)))
    assert "Concierge" in raw.parse().text
    rec = record(gateway, raw.headers["x-efflux-request-id"])
    # 1 MiB of mp3 at 128 kbit/s (16,000 bytes a second): 66 seconds, flagged as an estimate.
    assert rec["estimated"] is True and 65 <= rec["units"] <= 67
    assert rec["cost_micro_usd"] == rec["units"] * 100


def test_a_translation_goes_through_the_same_way(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.script("whisper-1", fixture("openai/audio-transcriptions-verbose-json.json"))
    raw = client.audio.translations.with_raw_response.create(
        model="whisper-1", file=("a.wav", audio(200_000))
    )
    assert raw.parse().text
    assert provider.received[-1].path == "/v1/audio/translations"
    rec = record(gateway, raw.headers["x-efflux-request-id"])
    assert (rec["endpoint"], rec["units"]) == ("audio/translations", 37)


class GatedFile(io.BytesIO):
    """A file whose reading stops half-way until the provider has received ``gate`` bytes: the client is
    still sending while the provider receives, or the wait times out and ``opened`` stays False."""

    def __init__(self, data: bytes, pause_at: int, gate: threading.Event) -> None:
        super().__init__(data)
        self.pause_at, self.gate, self.opened = pause_at, gate, False
        self.paused = False

    def read(self, size: int | None = -1) -> bytes:
        if not self.paused and self.tell() >= self.pause_at:
            self.paused = True
            self.opened = self.gate.wait(15)
        return super().read(size)


def test_an_upload_larger_than_the_body_limit_streams_through_while_the_client_sends(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.script("whisper-1", fixture("openai/audio-transcriptions.json"))
    provider.upload_progress.clear()
    provider.upload_gate_bytes = MIB + MIB // 2
    try:
        gated = GatedFile(audio(4 * MIB), 2 * MIB, provider.upload_progress)
        result = client.audio.transcriptions.create(model="whisper-1", file=("big.mp3", gated))
    finally:
        provider.upload_gate_bytes = 0
    assert result.text
    assert gated.opened, "the provider had 1.5 MiB of the upload while the client had sent only 2 MiB"
    assert provider.uploads[-1].size >= 4 * MIB and provider.uploads[-1].reads > 1
    # The same size as a chat body is refused: the body limit (1 MiB) holds for what is read whole.
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="e2e-chat", messages=[{"role": "user", "content": "x" * (3 * MIB // 2)}]
        )
    assert refused.value.status_code == 413


def test_a_transcription_falls_back_past_a_provider_that_is_down(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.script("whisper-1", fixture("openai/audio-transcriptions.json"))
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-fallback", file=("a.mp3", audio(300_000))
    )
    assert raw.parse().text
    assert provider.uploads[-1].model == "whisper-1", "the route's upstream model is written into the form"
    rec = record(gateway, raw.headers["x-efflux-request-id"])
    assert (rec["provider"], rec["attempts"], rec["outcome"]) == ("local", 2, "completed")


def test_an_upload_a_provider_took_and_failed_is_not_sent_again(
    client: openai.OpenAI, provider: MediaProvider, gateway: GatewayProcess
) -> None:
    provider.script(
        "whisper-503", Behaviour.json(503, {"error": {"message": "busy", "type": "server_error"}})
    )
    before = len(provider.uploads)
    with pytest.raises(openai.APIStatusError) as failed:
        client.audio.transcriptions.create(model="whisper-after-503", file=("a.mp3", audio(100_000)))
    assert failed.value.status_code == 502
    assert "already streamed" in failed.value.message
    assert len(provider.uploads) == before + 1, "the backup was not sent a truncated or empty upload"
    rec = last_record(gateway, "audio/transcriptions")
    assert (rec["outcome"], rec["cost_micro_usd"], rec["attempts"]) == ("upstream_error", 0, 1)


def test_a_client_leaving_mid_upload_is_recorded_and_the_provider_gets_no_whole_file(
    gateway: GatewayProcess, provider: MediaProvider
) -> None:
    import socket

    boundary = "cutcutcut"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n'
        "Content-Type: audio/mpeg\r\n\r\n"
    ).encode()
    length = len(head) + 2 * MIB
    before = len(provider.uploads)
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            (
                f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
            ).encode()
            + head
            + audio(MIB // 2)
        )
        seen = _eventually(lambda: len(provider.uploads) > before and provider.uploads[before].size > 0)
        assert seen
    # The client is gone: the provider's connection is closed, and the request is recorded.
    rec = _eventually(
        lambda: (r := last_record(gateway, "audio/transcriptions"))["outcome"] == "client_aborted" and r
    )
    assert provider.uploads[before].model == "whisper-1" and provider.uploads[before].size < length
    assert rec["cost_micro_usd"] == 0 and rec["status"] == 400


async def test_the_async_client_gets_the_same(gateway: GatewayProcess, provider: MediaProvider) -> None:
    aclient = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    provider.script("whisper-1", fixture("openai/audio-transcriptions-verbose-json.json"))
    provider.script("dall-e-2", fixture("openai/images-generations-url.json"))
    text = await aclient.audio.transcriptions.create(
        model="whisper-1", file=("a.mp3", audio(2 * MIB)), response_format="verbose_json"
    )
    assert text.duration and text.text.startswith("Galileo")
    image = await aclient.images.generate(model="dall-e-2", prompt="an otter")
    assert image.data and image.data[0].url
    async with aclient.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="Async."
    ) as resp:
        audio_bytes = b"".join([chunk async for chunk in resp.iter_bytes()])
    assert audio_bytes == b"".join(provider.speech_chunks)
    await aclient.close()


# -- rerank ----------------------------------------------------------------------------------------------


def _post(
    gateway: GatewayProcess, path: str, body: bytes, content_type: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(
        f"{gateway.url}{path}",
        data=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), dict(exc.headers)


def test_rerank_is_metered_per_search(provider: MediaProvider, gateway: GatewayProcess) -> None:
    answer = {
        "id": "rr-1",
        "results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }
    provider.script("rerank-v3.5", Behaviour.json(200, answer))
    body = {"model": "rerank-v3.5", "query": "capital of France", "documents": ["Berlin", "Paris"]}
    status, data, headers = _post(gateway, "/v1/rerank", json.dumps(body).encode(), "application/json")
    assert status == 200 and data["results"][0]["index"] == 1
    rec = record(gateway, headers["x-efflux-request-id"])
    assert (rec["endpoint"], rec["unit"], rec["units"], rec["cost_micro_usd"]) == (
        "rerank",
        "search",
        1,
        2000,
    )


# -- bad multipart --------------------------------------------------------------------------------------


FILE_ONLY = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\nabc\r\n--x--\r\n'


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/form-data", b"--x\r\n", "no boundary"),
        ("multipart/form-data; boundary=x", FILE_ONLY, "no 'model' field"),
        ("multipart/form-data; boundary=x", b"\x00\xff garbage " * 50, "not multipart"),
        ("application/json", b'{"model": "whisper-1"}', "multipart/form-data"),
    ],
    ids=["no-boundary", "no-model", "garbage", "json"],
)  # fmt: skip
def test_bad_multipart_gets_a_clean_400(
    gateway: GatewayProcess, content_type: str, body: bytes, message: str
) -> None:
    status, data, _ = _post(gateway, "/v1/audio/transcriptions", body, content_type)
    assert status == 400
    assert message in data["error"]["message"] and data["error"]["type"] == "invalid_request_error"


def _eventually(probe: Callable[[], Any], tries: int = 100) -> Any:
    import time

    for _ in range(tries):
        try:
            found = probe()
        except (ValueError, IndexError, urllib.error.URLError):
            found = None
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("the condition never held")


def test_zz_the_gateway_logged_no_traceback(gateway: GatewayProcess) -> None:
    """Runs last in the module: every case above (cuts, disconnects, bad forms) was handled cleanly."""
    log = gateway.log_path.read_text(errors="replace")
    assert "/v1/audio/transcriptions" in log, "the access lines are in this log"
    assert "Traceback" not in log, log[-3000:]
