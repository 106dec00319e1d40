"""The pass-through spine in process: multipart uploads (their bound, where ``model`` may be, the length
they need) and the JSON endpoints' body checks. End-to-end calls with the openai SDK are in
tests/e2e/test_openai_endpoints.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from support import AUTH, base_config, fixture, state

from proxy.dataplane.multipart import MODEL_LOOKAHEAD
from proxy.store.records import RecordQuery
from proxy.testing.fake_provider import Behaviour, FakeProvider

Make = Any
BOUNDARY = "b0undary"


def form(*parts: tuple[str, bytes, str | None]) -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


HEADERS = {**AUTH, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def upload(client: Any, body: bytes, path: str = "/v1/audio/transcriptions") -> tuple[int, Any]:
    resp = await client.post(path, data=body, headers=HEADERS)
    raw = await resp.read()
    return resp.status, orjson.loads(raw) if raw[:1] == b"{" else raw


async def test_server_max_upload_bytes_bounds_an_upload_not_the_body_limit(
    make_gateway: Make, fake: FakeProvider
) -> None:
    cfg = base_config(fake.url)
    cfg["server"]["max_body_bytes"] = 10_000
    cfg["server"]["max_upload_bytes"] = 100_000
    client = await make_gateway(cfg)
    status, _ = await upload(client, form(("model", b"whisper-1", None), ("file", b"a" * 50_000, "a.mp3")))
    assert status == 200, "an upload past max_body_bytes streams through"
    status, body = await upload(
        client, form(("model", b"whisper-1", None), ("file", b"a" * 150_000, "a.mp3"))
    )
    assert status == 413 and "100000" in body["error"]["message"]
    assert [r.path for r in fake.received] == ["/v1/audio/transcriptions"]


async def test_the_upload_goes_whole_to_the_provider_with_the_routes_model(
    make_gateway: Make, fake: FakeProvider
) -> None:
    fake.default = fixture("openai/audio-transcriptions.json")  # json: no duration, no usage
    client = await make_gateway()
    data = bytes(range(256)) * 400
    status, _ = await upload(client, form(("model", b"two-step", None), ("file", data, "a.wav")))
    assert status == 200
    sent = fake.received[-1]
    assert sent.path == "/v1/audio/transcriptions" and sent.headers["Content-Type"] == HEADERS["Content-Type"]
    [record] = (await state(client).store.records(RecordQuery())).data
    assert (record.endpoint, record.model, record.upstream_model) == (
        "audio/transcriptions",
        "two-step",
        "first",
    )
    # No duration in the answer: 102,400 bytes of wav at 32,000 bytes a second, estimated.
    assert (record.unit, record.units, record.estimated) == ("second", 4, True)


async def test_model_after_a_small_file_is_found(make_gateway: Make, fake: FakeProvider) -> None:
    client = await make_gateway()
    status, _ = await upload(client, form(("file", b"a" * 10_000, "a.mp3"), ("model", b"whisper-1", None)))
    assert status == 200


async def test_model_after_a_file_past_the_look_ahead_is_refused(
    make_gateway: Make, fake: FakeProvider
) -> None:
    client = await make_gateway()
    big = b"a" * (MODEL_LOOKAHEAD + 1000)
    status, body = await upload(client, form(("file", big, "a.mp3"), ("model", b"whisper-1", None)))
    assert status == 400 and body["error"]["param"] == "model"
    assert "before the file" in body["error"]["message"]
    assert not fake.received


async def test_an_upload_without_a_length_is_sent_chunked_and_bounded_as_it_arrives(
    make_gateway: Make, fake: FakeProvider
) -> None:
    cfg = base_config(fake.url)
    cfg["server"]["max_upload_bytes"] = 300_000
    client = await make_gateway(cfg)
    whole = form(("model", b"whisper-1", None), ("file", bytes(range(256)) * 800, "a.mp3"))

    async def chunked(body: bytes) -> AsyncIterator[bytes]:
        for at in range(0, len(body), 50_000):
            yield body[at : at + 50_000]

    resp = await client.post("/v1/audio/transcriptions", data=chunked(whole), headers=HEADERS)
    assert resp.status == 200
    sent = fake.received[-1]
    assert sent.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in sent.headers
    # Past the bound, a chunked upload is cut as it arrives: 413, and nothing whole reached the provider.
    big = form(("model", b"whisper-1", None), ("file", b"a" * 400_000, "a.mp3"))
    resp = await client.post("/v1/audio/transcriptions", data=chunked(big), headers=HEADERS)
    assert resp.status == 413 and "300000" in (await resp.json())["error"]["message"]
    assert len(fake.received) == 1
    records = (await state(client).store.records(RecordQuery())).data
    assert [r.status for r in records] == [200, 413]


async def test_a_small_chunked_upload_is_read_whole_within_the_look_ahead(
    make_gateway: Make, fake: FakeProvider
) -> None:
    client = await make_gateway()

    async def chunked() -> AsyncIterator[bytes]:
        yield form(("file", b"abc", "a.mp3"), ("model", b"whisper-1", None))

    resp = await client.post("/v1/audio/transcriptions", data=chunked(), headers=HEADERS)
    assert resp.status == 200 and fake.received[-1].path == "/v1/audio/transcriptions"


@pytest.mark.parametrize(
    ("model", "message"),
    [(b"", "printable"), (b"bad\x01name", "printable"), (b"x" * 300, "printable")],
)
async def test_a_bad_model_field_is_refused(
    make_gateway: Make, fake: FakeProvider, model: bytes, message: str
) -> None:
    client = await make_gateway()
    status, body = await upload(client, form(("model", model, None), ("file", b"abc", "a.mp3")))
    assert status == 400 and message in body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/images/generations", {"model": "m"}, "prompt"),
        ("/v1/images/generations", {"model": "m", "prompt": "x", "stream": True}, "stream"),
        ("/v1/audio/speech", {"model": "m", "voice": "alloy"}, "input"),
        ("/v1/audio/speech", {"model": "m", "input": ["a"]}, "input"),
        ("/v1/moderations", {}, "input"),
        ("/v1/rerank", {"model": "m", "query": "q"}, "documents"),
    ],
)
async def test_json_endpoints_check_the_field_they_are_metered_by(
    make_gateway: Make, fake: FakeProvider, path: str, body: dict[str, Any], param: str
) -> None:
    client = await make_gateway()
    resp = await client.post(path, json=body, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == param
    assert not fake.received


async def test_a_provider_that_does_not_declare_the_endpoint_is_not_a_candidate(
    make_gateway: Make, fake: FakeProvider
) -> None:
    client = await make_gateway()
    resp = await client.post("/v1/moderations", json={"model": "openrouter/x", "input": "hi"}, headers=AUTH)
    assert resp.status == 404 and "/v1/moderations" in (await resp.json())["error"]["message"]


IMAGE = {"created": 1, "data": [{"url": "https://example.invalid/a.png"}]}


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_images_are_admitted_against_the_budget_by_their_worst_case_and_settled_per_image(
    make_gateway: Make, fake: FakeProvider, backend: str, request: pytest.FixtureRequest
) -> None:
    cfg = base_config(fake.url)
    cfg["pricing"] = {"models": {"dall-e-3": {"per_image": 0.04}}}
    cfg["keys"][0]["budget"] = {"usd": 0.1, "period": "daily"}
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        cfg["store"] = {
            "backend": "redis",
            "url": url,
            "prefix": f"t{uuid.uuid4().hex[:10]}",
            "timeout": "1s",
        }
        cfg["secrets"] = {"key_secret": "passthrough-test-key-secret-0123456789abcdef"}
    fake.script("dall-e-3", Behaviour.json(200, IMAGE))
    client = await make_gateway(cfg)
    body = {"model": "dall-e-3", "prompt": "an otter", "n": 3}  # worst case $0.12: past the budget
    resp = await client.post("/v1/images/generations", json=body, headers=AUTH)
    assert resp.status == 429 and (await resp.json())["error"]["type"] == "insufficient_quota"
    assert not fake.received
    resp = await client.post("/v1/images/generations", json={**body, "n": 2}, headers=AUTH)
    assert resp.status == 200
    [record] = (await state(client).store.records(RecordQuery())).data
    # The provider made one image (of two asked): one is charged, and the reservation of two released.
    assert (record.endpoint, record.unit, record.units, record.cost_micro_usd) == (
        "images/generations",
        "image",
        1,
        40_000,
    )
    for _ in range(2):  # $0.04 spent: two more single images fit ($0.08 + $0.04 = $0.12 > $0.1: no)
        resp = await client.post("/v1/images/generations", json={**body, "n": 1}, headers=AUTH)
        await resp.read()
    assert resp.status == 429


async def test_an_upload_that_stalls_past_the_body_timeout_is_cut_and_recorded(
    make_gateway: Make, fake: FakeProvider
) -> None:
    cfg = base_config(fake.url)
    cfg["server"]["body_timeout"] = "300ms"  # each wait for more of the upload, not the whole
    client = await make_gateway(cfg)
    whole = form(("model", b"whisper-1", None), ("file", b"a" * 100_000, "a.mp3"))
    stalled = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield whole[:50_000]
        await asyncio.sleep(0.2)  # shorter than the timeout: the upload goes on
        yield whole[50_000:60_000]
        await stalled.wait()  # then silence: the gateway gives up
        yield whole[60_000:]

    headers = {**HEADERS, "Content-Length": str(len(whole))}
    resp = await client.post("/v1/audio/transcriptions", data=trickle(), headers=headers)
    stalled.set()
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "upload_incomplete"
    [record] = (await state(client).store.records(RecordQuery())).data
    assert (record.outcome, record.cost_micro_usd) == ("client_aborted", 0)


async def test_a_provider_that_stops_taking_an_upload_is_timed_out(
    make_gateway: Make, fake: FakeProvider
) -> None:
    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # takes the connection, reads nothing: the upload fills the buffers

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = base_config(fake.url)
    cfg["server"]["max_upload_bytes"] = 64 << 20
    cfg["providers"]["local"] = {
        "plugin": "openai_compatible",
        "base_url": f"http://127.0.0.1:{port}/v1",
        "timeouts": {"idle": "500ms"},
    }
    client = await make_gateway(cfg)
    try:
        big = form(("model", b"whisper-1", None), ("file", b"a" * (48 << 20), "a.mp3"))
        async with asyncio.timeout(20):  # without the idle bound the upload would wait for ever
            resp = await client.post("/v1/audio/transcriptions", data=big, headers=HEADERS)
            body = await resp.json()
    finally:
        server.close()
    assert resp.status == 504 and body["error"]["code"] == "upstream_timeout"


async def test_units_a_price_does_not_price_are_recorded_as_an_estimate(
    make_gateway: Make, fake: FakeProvider
) -> None:
    client = await make_gateway()  # pricing.default: tokens only, no unit price
    fake.script("dall-e-3", Behaviour.json(200, IMAGE))
    resp = await client.post(
        "/v1/images/generations", json={"model": "dall-e-3", "prompt": "x"}, headers=AUTH
    )
    assert resp.status == 200
    usage = {"input_tokens": 10, "output_tokens": 1000}  # gpt-image-1: its tokens are priced
    fake.script("gpt-image-1", Behaviour.json(200, {**IMAGE, "usage": usage}))
    resp = await client.post(
        "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x"}, headers=AUTH
    )
    assert resp.status == 200
    records = (await state(client).store.records(RecordQuery())).data
    got = sorted((r.model, r.units, r.cost_micro_usd, r.estimated) for r in records)
    assert got == [("dall-e-3", 1, 0, True), ("gpt-image-1", 1, 10 * 1 + 1000 * 2, False)]
