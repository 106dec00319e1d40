"""Acceptance 1 (issue 6): each fault the fake provider can play, before and after the first byte.

Before the first byte the request succeeds through the next target and the provider saw exactly the
attempts the policy allows (one per target: a target that may have started is never sent it again).
After the first byte the client gets the events that were delivered, then an error event, never [DONE].
Client faults are answered at once. Every timeout (connect, first byte, idle, total) fires, per provider
and per route.
"""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from support import AUTH, base_config

from proxy.testing.fake_provider import Behaviour, FakeProvider, generated

Make = Callable[..., Any]
MESSAGES = [{"role": "user", "content": "hi"}]
FAST = {"connect": 1.0, "first_byte": 0.5, "idle": 0.5, "total": 5.0}


def config(fake: FakeProvider, **route: Any) -> dict[str, Any]:
    cfg = base_config(fake.url)
    for name in ("local", "backup"):
        cfg["providers"][name]["timeouts"] = dict(FAST)
    if route:
        cfg["models"]["two-step"].update(route)
    return cfg


def stream_chunks(model: str) -> list[bytes]:
    body = {"model": model, "stream": True, "stream_options": {"include_usage": True}}
    chunks = generated("/v1/chat/completions", body).chunks
    assert chunks is not None
    return chunks


def streamed(model: str, **kw: Any) -> Behaviour:
    return Behaviour(200, b"", "text/event-stream", {}, stream_chunks(model), **kw)


def error_json(status: int, message: str, code: str | None = None, **kw: Any) -> Behaviour:
    return Behaviour.json(
        status, {"error": {"message": message, "type": "upstream_error", "code": code}}, **kw
    )


async def chat(
    client: TestClient[Any, Any], model: str = "two-step", stream: bool = True
) -> tuple[int, str, Any]:
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    async with client.post("/v1/chat/completions", json=body, headers=AUTH) as resp:
        return resp.status, await resp.text(), resp.headers


def events(text: str) -> list[str]:
    return [block.removeprefix("data: ") for block in text.split("\n\n") if block.startswith("data: ")]


async def responses(client: TestClient[Any, Any], model: str = "two-step") -> tuple[int, str, Any]:
    """The same call on /v1/responses (the route's providers speak chat: it is translated)."""
    body = {"model": model, "input": "hi", "stream": True}
    async with client.post("/v1/responses", json=body, headers=AUTH) as resp:
        return resp.status, await resp.text(), resp.headers


def typed_events(text: str) -> list[dict[str, Any]]:
    """The Responses API's events: ``event: <type>`` and ``data: {...}`` per block."""
    out = []
    for block in text.split("\n\n"):
        data = [line.removeprefix("data: ") for line in block.split("\n") if line.startswith("data: ")]
        if data:
            out.append(orjson.loads(data[0]))
    return out


BEFORE_FIRST_BYTE: dict[str, Behaviour] = {
    "refuse": Behaviour(fault="refuse"),
    "no answer within first_byte": Behaviour(delay=1.0),
    "slow headers, then 200": streamed("first", delay=1.0),
    "reset before any event": streamed("first", fault="reset", reset_after=0),
    "429 with Retry-After": error_json(
        429, "slow down", "rate_limit_exceeded", headers={"Retry-After": "30"}
    ),
    "500": error_json(500, "internal error"),
    "503": error_json(503, "overloaded"),
    "529 (Anthropic overload)": error_json(529, "overloaded"),
    "HTML 502 from an edge": Behaviour(502, b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    "one-api error with HTTP 200": error_json(200, "upstream channel failed", "server_error"),
    "error event before content": Behaviour(
        200,
        b"",
        "text/event-stream",
        {},
        [b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'],
    ),
}


@pytest.mark.parametrize("fault", list(BEFORE_FIRST_BYTE))
async def test_server_fault_before_the_first_byte_falls_back_on_responses(
    make_gateway: Make, fake: FakeProvider, fault: str
) -> None:
    client = await make_gateway(config(fake))
    fake.script("first", BEFORE_FIRST_BYTE[fault])
    status, text, headers = await responses(client)
    assert status == 200, text
    assert typed_events(text)[-1]["type"] == "response.completed"
    assert headers["x-efflux-provider"] == "backup" and headers["x-efflux-attempts"] == "2"
    assert (fake.count("first"), fake.count("second")) == (1, 1)


@pytest.mark.parametrize("fault", list(BEFORE_FIRST_BYTE))
async def test_server_fault_before_the_first_byte_falls_back(
    make_gateway: Make, fake: FakeProvider, fault: str
) -> None:
    client = await make_gateway(config(fake))
    fake.script("first", BEFORE_FIRST_BYTE[fault])
    status, text, headers = await chat(client)
    assert status == 200, text
    assert events(text)[-1] == "[DONE]"
    assert headers["x-efflux-provider"] == "backup" and headers["x-efflux-attempts"] == "2"
    assert (fake.count("first"), fake.count("second")) == (1, 1), (
        "one attempt per target, never the same twice"
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "context_length_exceeded"), (401, "invalid_api_key"), (402, "insufficient_credits"), (404, None)],
)
async def test_client_fault_is_returned_at_once(
    make_gateway: Make, fake: FakeProvider, status: int, code: str | None
) -> None:
    client = await make_gateway(config(fake))
    fake.script("first", error_json(status, "your request is wrong", code))
    got, text, _ = await chat(client)
    assert got == status, text
    assert orjson.loads(text)["error"]["message"] == "your request is wrong"
    assert (fake.count("first"), fake.count("second")) == (1, 0)


AFTER_FIRST_BYTE: dict[str, Callable[[], Behaviour]] = {
    "reset after 3 chunks": lambda: streamed("first", fault="reset", reset_after=3),
    "stall mid-stream (idle timeout)": lambda: Behaviour(
        200, b"", "text/event-stream", {}, stream_chunks("first")[:3], stall=1.2
    ),
    "error event after content": lambda: Behaviour(
        200,
        b"",
        "text/event-stream",
        {},
        [*stream_chunks("first")[:3], b'data: {"error":{"message":"boom","type":"server_error"}}\n\n'],
    ),
    "slow drip past the total timeout": lambda: streamed("first", chunk_delay=0.4),
}


@pytest.mark.parametrize("fault", list(AFTER_FIRST_BYTE))
async def test_fault_after_the_first_byte_ends_responses_with_error_and_failed(
    make_gateway: Make, fake: FakeProvider, fault: str
) -> None:
    cfg = config(fake)
    cfg["providers"]["local"]["timeouts"]["total"] = 1.5
    client = await make_gateway(cfg)
    fake.script("first", AFTER_FIRST_BYTE[fault]())
    status, text, _ = await responses(client)
    assert status == 200
    got = typed_events(text)
    kinds = [e["type"] for e in got]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds, "the events delivered before the fault reach the client"
    assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds
    assert got[-2]["code"] == "upstream_error" and got[-1]["response"]["status"] == "failed"
    assert [e["sequence_number"] for e in got] == list(range(len(got)))
    assert (fake.count("first"), fake.count("second")) == (1, 0), "never a fallback after the first byte"


@pytest.mark.parametrize("fault", list(AFTER_FIRST_BYTE))
async def test_fault_after_the_first_byte_ends_with_an_error_event(
    make_gateway: Make, fake: FakeProvider, fault: str
) -> None:
    cfg = config(fake)
    cfg["providers"]["local"]["timeouts"]["total"] = 1.5  # the drip (0.4 s apart, 9 chunks) outlives it
    client = await make_gateway(cfg)
    fake.script("first", AFTER_FIRST_BYTE[fault]())
    status, text, _ = await chat(client)
    assert status == 200
    got = events(text)
    assert "[DONE]" not in got
    assert len(got) >= 2, "the events delivered before the fault reach the client"
    assert all("error" not in orjson.loads(e) for e in got[:-1])
    error = orjson.loads(got[-1])["error"]
    assert error["code"] == "upstream_error"
    if "timeout" in fault:  # which timeout fired is named
        assert ("idle timeout" if "idle" in fault else "total timeout") in error["message"], error
    assert (fake.count("first"), fake.count("second")) == (1, 0), "never a fallback after the first byte"


async def test_slow_drip_within_the_idle_timeout_completes(make_gateway: Make, fake: FakeProvider) -> None:
    client = await make_gateway(config(fake))
    fake.script("first", streamed("first", chunk_delay=0.1))
    status, text, _ = await chat(client)
    assert status == 200 and events(text)[-1] == "[DONE]"


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port whose accept queue is full: a new connection's handshake never completes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.1)
    yield port
    for s in fillers:
        s.close()
    listener.close()


async def test_connect_timeout_fires_and_falls_back(
    make_gateway: Make, fake: FakeProvider, blackhole: int
) -> None:
    cfg = config(fake)
    cfg["providers"]["local"]["base_url"] = f"http://127.0.0.1:{blackhole}/v1"
    cfg["providers"]["local"]["timeouts"] = {**FAST, "connect": 0.3, "first_byte": 10.0}
    client = await make_gateway(cfg)
    started = time.monotonic()
    status, _, headers = await chat(client)
    assert status == 200 and headers["x-efflux-attempts"] == "2"
    assert time.monotonic() - started < 2.0, "the connect timeout, not the first-byte one, fired"
    assert fake.count("first") == 0 and fake.count("second") == 1


async def test_every_target_timing_out_is_a_504(make_gateway: Make, fake: FakeProvider) -> None:
    client = await make_gateway(config(fake))
    fake.script("first", Behaviour(delay=1.0))
    fake.script("second", Behaviour(delay=1.0))
    status, text, _ = await chat(client)
    assert status == 504 and orjson.loads(text)["error"]["code"] == "upstream_timeout"


SLOW = {"connect": 30.0, "first_byte": 30.0, "idle": 30.0, "total": 600.0}  # never fires in a test


async def test_route_timeouts_override_the_providers(make_gateway: Make, fake: FakeProvider) -> None:
    """Only the route's 200 ms first-byte timeout can end the first target's 1.5 s wait before a good
    stream: the providers' own timeouts are all far longer, so without the override the first target
    answers."""
    cfg = config(fake, timeouts={"first_byte": "200ms"})
    for name in ("local", "backup"):
        cfg["providers"][name]["timeouts"] = dict(SLOW)
    client = await make_gateway(cfg)
    fake.script("first", streamed("first", delay=1.5))
    status, text, headers = await chat(client)
    assert status == 200, text
    assert headers["x-efflux-provider"] == "backup" and headers["x-efflux-attempts"] == "2"
    assert (fake.count("first"), fake.count("second")) == (1, 1)


@pytest.mark.parametrize(
    ("route", "fault", "named"),
    [
        ({"idle": "500ms"}, {"stall": 1.2}, "idle timeout"),
        ({"total": "1500ms"}, {"chunk_delay": 0.4}, "total timeout"),
    ],
    ids=["idle", "total"],
)
async def test_route_timeouts_override_the_providers_midstream(
    make_gateway: Make, fake: FakeProvider, route: dict[str, str], fault: dict[str, float], named: str
) -> None:
    """The route's idle and total timeouts end a stream the providers' own (30 s, 600 s) would let run."""
    cfg = config(fake, timeouts=route)
    for name in ("local", "backup"):
        cfg["providers"][name]["timeouts"] = dict(SLOW)
    client = await make_gateway(cfg)
    chunks = stream_chunks("first")
    if "stall" in fault:
        chunks = chunks[:3]  # then the stall, then the end of the body without [DONE]
    fake.script("first", Behaviour(200, b"", "text/event-stream", {}, chunks, **fault))
    status, text, _ = await chat(client)
    assert status == 200
    got = events(text)
    assert "[DONE]" not in got, "the route's timeout ended the stream"
    assert named in orjson.loads(got[-1])["error"]["message"]


@pytest.mark.parametrize(
    ("short", "fault", "named"),
    [
        ({"first_byte": 0.2}, {"delay": 1.5}, None),
        ({"idle": 0.5}, {"stall": 1.2}, "idle timeout"),
        ({"total": 1.5}, {"chunk_delay": 0.4}, "total timeout"),
    ],
    ids=["first_byte", "idle", "total"],
)
async def test_each_provider_timeout_fires_alone(
    make_gateway: Make,
    fake: FakeProvider,
    short: dict[str, float],
    fault: dict[str, float],
    named: str | None,
) -> None:
    """One provider timeout set short, every other one far longer than the fault: only that one can end
    it (before the first byte: a fallback; after: an error event naming it)."""
    cfg = config(fake)
    cfg["providers"]["local"]["timeouts"] = {**SLOW, **short}
    cfg["providers"]["backup"]["timeouts"] = dict(SLOW)
    client = await make_gateway(cfg)
    chunks = stream_chunks("first")
    if "stall" in fault:
        chunks = chunks[:3]
    fake.script("first", Behaviour(200, b"", "text/event-stream", {}, chunks, **fault))
    status, text, headers = await chat(client)
    assert status == 200, text
    if named is None:
        assert headers["x-efflux-provider"] == "backup" and headers["x-efflux-attempts"] == "2"
    else:
        got = events(text)
        assert "[DONE]" not in got and named in orjson.loads(got[-1])["error"]["message"]


async def test_retry_after_parks_the_target(make_gateway: Make, fake: FakeProvider) -> None:
    client = await make_gateway(config(fake))
    fake.script("first", error_json(429, "slow down", headers={"Retry-After": "30"}))
    assert (await chat(client))[0] == 200
    status, _, headers = await chat(client)
    assert status == 200 and headers["x-efflux-attempts"] == "1"
    assert (fake.count("first"), fake.count("second")) == (1, 2), (
        "the target that said Retry-After is skipped"
    )


async def test_a_target_listed_twice_is_tried_once(make_gateway: Make, fake: FakeProvider) -> None:
    cfg = config(fake)
    targets = cfg["models"]["two-step"]["targets"]
    targets.insert(1, copy.deepcopy(targets[0]))
    client = await make_gateway(cfg)
    fake.script("first", Behaviour(delay=1.0))  # timed out after sending: it may have started
    status, _, _ = await chat(client)
    assert status == 200 and (fake.count("first"), fake.count("second")) == (1, 1)


async def test_the_retry_budget_stops_fallbacks(make_gateway: Make, fake: FakeProvider) -> None:
    cfg = config(fake)
    cfg["server"]["retry_budget"] = {"ratio": 0.0, "min_per_second": 0.0, "burst": 1.0}
    client = await make_gateway(cfg)
    fake.script("first", error_json(503, "down"))
    assert (await chat(client))[0] == 200  # the one retry the budget holds
    status, text, _ = await chat(client)
    assert status == 502 and "retry budget" in orjson.loads(text)["error"]["message"]
    assert (fake.count("first"), fake.count("second")) == (2, 1)


@pytest.mark.parametrize(
    ("budget", "statuses"),
    [
        ({"ratio": 0.5, "min_per_second": 0.0, "burst": 1.0}, [200, 502, 200]),  # two requests earn one
        ({"ratio": 0.0, "min_per_second": 1e6, "burst": 1.0}, [200, 200, 200]),  # refilled by the time
        ({"ratio": 0.0, "min_per_second": 0.0, "burst": 2.0}, [200, 200, 502]),  # two saved up, no more
    ],
    ids=["ratio", "min_per_second", "burst"],
)
async def test_each_retry_budget_setting(
    make_gateway: Make, fake: FakeProvider, budget: dict[str, float], statuses: list[int]
) -> None:
    """The first target always fails: which requests may fall back to the second is the budget's say."""
    cfg = config(fake)
    cfg["server"]["retry_budget"] = budget
    client = await make_gateway(cfg)
    fake.script("first", error_json(503, "down"))
    assert [(await chat(client))[0] for _ in statuses] == statuses


@pytest.mark.parametrize(("failures", "first_tried"), [(2, 2), (4, 4)])
async def test_breaker_failures_is_how_many_faults_open_it(
    make_gateway: Make, fake: FakeProvider, failures: int, first_tried: int
) -> None:
    """Four requests while the first target always fails: it is tried until ``failures`` faults in a row
    open its breaker, then skipped (the cooldown, 30 s, outlasts the test)."""
    cfg = config(fake)
    cfg["providers"]["local"]["breaker"] = {"failures": failures, "cooldown": "30s"}
    client = await make_gateway(cfg)
    fake.script("first", error_json(503, "down"))
    assert [(await chat(client))[0] for _ in range(4)] == [200] * 4
    assert (fake.count("first"), fake.count("second")) == (first_tried, 4)
