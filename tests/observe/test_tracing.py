"""Tracing: a streamed request with a fallback reaches an OTLP/HTTP receiver as one request span and two
attempt spans, in the client's trace, with the token counts and no content; off by default."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from support import KEY, base_config, fixture

from proxy.app import create_app
from proxy.config import parse_settings
from proxy.edge.traces import TRACING
from proxy.observe.tracing import open_tracing, wanted_exporters
from proxy.testing.fake_provider import Behaviour, FakeProvider

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
PROMPT = "a prompt that must never reach a trace"


class Receiver:
    """An OTLP/HTTP collector in process: decodes each ExportTraceServiceRequest and keeps its spans."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.arrived = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def export(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource_spans in message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        self.arrived.set()
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self.export)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1/traces"
        return self

    async def wait_for(self, count: int) -> list[Span]:
        async with asyncio.timeout(15):  # a bound on a hang, not a timing assertion
            while len(self.spans) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.spans

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    found = await Receiver().start()
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", found.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # milliseconds between batches
    monkeypatch.setenv("OTEL_SERVICE_NAME", "efflux-under-test")
    yield found
    await found.stop()


def attributes(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


async def test_a_streamed_request_with_a_fallback_is_one_request_span_and_two_attempt_spans(
    receiver: Receiver, aiohttp_client: Any, fake: FakeProvider
) -> None:
    fake.script("first", Behaviour.json(503, {"error": {"message": "overloaded", "type": "server_error"}}))
    fake.script("second", fixture("openai/chat-stream-include-usage.sse"))
    gateway = await aiohttp_client(create_app(parse_settings(base_config(fake.url))))
    assert TRACING in gateway.app
    client = openai.AsyncOpenAI(base_url=str(gateway.make_url("/v1")), api_key=KEY, max_retries=0)
    stream = await client.chat.completions.create(
        model="two-step",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"},
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text

    spans = await receiver.wait_for(3)
    assert {span.trace_id.hex() for span in spans} == {TRACE_ID}  # the client's trace
    [request] = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]
    attempts = sorted(
        (s for s in spans if s.kind == Span.SPAN_KIND_CLIENT), key=lambda s: s.start_time_unix_nano
    )
    assert len(attempts) == 2
    assert request.parent_span_id.hex() == CLIENT_SPAN
    assert all(a.parent_span_id == request.span_id for a in attempts)

    seen = attributes(request)
    assert request.name == "chat two-step"
    assert seen["gen_ai.operation.name"] == "chat"
    assert seen["gen_ai.provider.name"] == "openai_compatible"
    assert seen["gen_ai.request.model"] == "two-step"
    assert seen["gen_ai.response.model"] == "second"
    assert seen["gen_ai.usage.input_tokens"] == 14  # the recorded stream's usage (tests/fixtures/index.json)
    assert seen["gen_ai.usage.output_tokens"] == 30
    assert seen["efflux.key"] == "test" and seen["efflux.tenant"] == "acme"
    assert seen["efflux.route"] == "two-step" and seen["efflux.outcome"] == "completed"
    assert seen["efflux.cost_micro_usd"] > 0 and seen["efflux.attempts"] == 2

    first, second = attempts
    assert attributes(first)["gen_ai.request.model"] == "first"
    assert attributes(first)["efflux.provider"] == "local"
    assert first.status.code == first.status.STATUS_CODE_ERROR
    assert attributes(second)["gen_ai.request.model"] == "second"
    assert attributes(second)["efflux.provider"] == "backup"
    assert second.status.code != second.status.STATUS_CODE_ERROR
    assert second.end_time_unix_nano >= first.end_time_unix_nano

    # Each attempt sent its own traceparent upstream, in the client's trace.
    sent = [r.headers.get("traceparent") for r in fake.received if r.method == "POST"]
    assert sent == [f"00-{TRACE_ID}-{a.span_id.hex()}-01" for a in attempts]

    # No prompt or completion content anywhere in the spans.
    for span in spans:
        for value in attributes(span).values():
            assert PROMPT not in str(value) and text not in str(value)


async def test_without_a_traceparent_the_request_starts_a_trace(
    receiver: Receiver, aiohttp_client: Any, fake: FakeProvider
) -> None:
    gateway = await aiohttp_client(create_app(parse_settings(base_config(fake.url))))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    answer = await gateway.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status == 200
    [request, attempt] = sorted(await receiver.wait_for(2), key=lambda s: s.kind)
    assert request.kind == Span.SPAN_KIND_SERVER and not request.parent_span_id
    assert attempt.parent_span_id == request.span_id
    sent = fake.received[-1].headers["traceparent"]  # flags 03 here: sampled, and a random trace id
    assert sent.startswith(f"00-{request.trace_id.hex()}-{attempt.span_id.hex()}-")


async def test_off_without_an_exporter(
    monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any, fake: FakeProvider
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    gateway = await aiohttp_client(create_app(parse_settings(base_config(fake.url))))
    assert TRACING not in gateway.app
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    client_trace = {"Authorization": f"Bearer {KEY}", "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"}
    assert (await gateway.post("/v1/chat/completions", json=body, headers=client_trace)).status == 200
    # Off, the gateway does not forward the client's trace header either: it sends what the plugin builds.
    assert "traceparent" not in fake.received[-1].headers


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, []),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
    ],
)
def test_the_standard_variables_choose_the_exporters(environ: dict[str, str], expected: list[str]) -> None:
    assert wanted_exporters(environ) == expected


def test_without_the_extra_tracing_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # import fails as if not installed
    assert open_tracing({"OTEL_TRACES_EXPORTER": "console"}) is None


@pytest.mark.parametrize("capture", [True, False])
async def test_capture_content_records_the_messages_clipped(
    receiver: Receiver, aiohttp_client: Any, fake: FakeProvider, capture: bool
) -> None:
    config = base_config(fake.url, telemetry={"capture_content": capture})
    gateway = await aiohttp_client(create_app(parse_settings(config)))
    fake.script("second", fixture("openai/chat-nonstream-usage-details.json"))
    long = "x" * 5000
    body = {
        "model": "two-step",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": PROMPT}, {"type": "text", "text": long}]},
        ],
    }
    fake.script("first", Behaviour.json(503, {"error": {"message": "overloaded", "type": "server_error"}}))
    answer = await gateway.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    answered = (await answer.json())["choices"][0]["message"]["content"]
    [request] = [s for s in await receiver.wait_for(3) if s.kind == Span.SPAN_KIND_SERVER]
    seen = attributes(request)
    if not capture:
        assert "gen_ai.input.messages" not in seen and "gen_ai.output.messages" not in seen
        return
    messages = orjson.loads(seen["gen_ai.input.messages"])
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[1]["role"] == "user" and messages[1]["content"].startswith(PROMPT)
    assert len(messages[1]["content"]) == 1000  # clipped
    assert orjson.loads(seen["gen_ai.output.messages"]) == [{"role": "assistant", "content": answered[:1000]}]


def test_another_otlp_protocol_is_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    tracing = open_tracing(environ)
    assert tracing is not None
    tracing.shutdown()
    assert any("grpc not supported" in r.getMessage() for r in caplog.records)
