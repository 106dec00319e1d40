"""Every recorded OpenAI-compatible stream through the gateway: what the client receives and what is metered.

The documented normalisation (README "Streaming"): the bytes are relayed unchanged, except that
- the usage-only chunk (``choices: []``) is removed when the client did not ask for usage;
- a provider's error event is replaced by the gateway's ``data: {"error": ...}`` event, and the stream
  ends there (never a ``[DONE]`` the provider did not send);
- an event cut off by the end of the stream is dropped, and when the answer was not complete (no [DONE],
  no usage) the gateway adds its error event.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from support import AUTH, FIXTURES, fixture, state

from plugins.openai_compatible import OpenAIStreamReader
from proxy.dataplane.tap import StreamTap
from proxy.plugin import Usage
from proxy.store.records import Outcome, RecordQuery
from proxy.testing.fake_provider import split_events

INDEX = json.loads((FIXTURES / "index.json").read_text())
STREAMS = [e for e in INDEX if e["kind"] in ("sse", "chunks") and e["endpoint"].endswith("completions")]
QUIRKS = [e for e in STREAMS if e["file"].startswith("quirks/")]


def raw_bytes(entry: dict[str, Any]) -> bytes:
    if entry["kind"] == "chunks":
        import base64

        spec = orjson.loads((FIXTURES / entry["file"]).read_bytes())
        return b"".join(base64.b64decode(c) for c in spec["chunks_b64"])
    return (FIXTURES / entry["file"]).read_bytes()


_TERMINATED = re.compile(rb"(?:\r\n|\r|\n)(?:\r\n|\r|\n)\Z")


def reference_blocks(raw: bytes) -> tuple[list[bytes], bytes]:
    """Complete blocks (each ending in a blank line) and the unterminated tail, by a plain regex split."""
    pieces = split_events(raw)
    if pieces and not _TERMINATED.search(pieces[-1]):
        return pieces[:-1], pieces[-1]
    return pieces, b""


def data_of(block: bytes) -> bytes | None:
    lines = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    data = [ln[5:].lstrip(b" ") if ln.startswith(b"data:") else None for ln in lines]
    parts = [d for d in data if d is not None]
    # multi-line data joins with LF (quirks/multiline-data.sse); the single-space rule is good enough here
    return b"\n".join(parts) if parts else None


def is_usage_chunk(block: bytes) -> bool:
    data = data_of(block)
    if not data or data == b"[DONE]":
        return False
    obj = orjson.loads(data)
    return isinstance(obj, dict) and obj.get("choices") == [] and isinstance(obj.get("usage"), dict)


def is_error_block(block: bytes) -> bool:
    data = data_of(block)
    if not data or data == b"[DONE]":
        return False
    obj = orjson.loads(data)
    return isinstance(obj, dict) and obj.get("error") is not None


def expected_output(entry: dict[str, Any], include_usage: bool) -> tuple[bytes, bool]:
    """The bytes the client must receive, and whether they end with the gateway's error event."""
    blocks, _ = reference_blocks(raw_bytes(entry))  # mid-event or between events: the same ending
    out: list[bytes] = []
    for block in blocks:
        if is_error_block(block):
            return b"".join(out), True
        if not include_usage and is_usage_chunk(block):
            continue
        out.append(block)
    # A stream that ends without [DONE] is an error unless the answer was already whole: the usage in
    # (a finish reason alone is not enough, the usage was still to come). A last `data: [DONE]` line that
    # lost only its blank line (anthropic/openai-compat-stream-tool-index-1.sse) is the end marker.
    whole = (
        entry["expected"].get("terminated_by") == "done"
        or any(is_usage_chunk(b) for b in blocks)
        or raw_bytes(entry).rstrip(b"\r\n").endswith(b"\ndata: [DONE]")
    )
    return b"".join(out), not whole


def expected_usage(entry: dict[str, Any]) -> dict[str, Any] | None:
    usage = entry["expected"].get("usage")
    return usage if usage and "prompt_tokens" in usage else None


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
@pytest.mark.parametrize("entry", STREAMS, ids=[e["file"] for e in STREAMS])
async def test_recorded_stream_relays_and_meters(
    gateway: Any, fake: Any, entry: dict[str, Any], include_usage: bool
) -> None:
    fake.script("fixture-model", fixture(entry["file"]))
    path = "/v1/completions" if "completions-legacy" in entry["file"] else "/v1/chat/completions"
    body: dict[str, Any] = {"model": "fixture-model", "stream": True}
    body.update(
        {"prompt": "hi"} if path == "/v1/completions" else {"messages": [{"role": "user", "content": "hi"}]}
    )
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    resp = await gateway.post(path, json=body, headers=AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    received = await resp.read()

    prefix, ends_in_error = expected_output(entry, include_usage)
    if ends_in_error:
        assert received.startswith(prefix)
        error = received[len(prefix) :]
        assert error.startswith(b"data: {") and error.endswith(b"\n\n")
        assert orjson.loads(error[6:])["error"]["code"] == "upstream_error"
        assert b"[DONE]" not in received
    else:
        assert received == prefix

    # Upstream was always asked for usage, and got the client's other fields untouched.
    sent = fake.received[-1].body
    assert sent["stream_options"]["include_usage"] is True
    assert sent["model"] == "fixture-model"

    page = await state(gateway).store.records(RecordQuery())
    assert len(page.data) == 1, "exactly one usage record per request"
    record = page.data[0]
    usage = expected_usage(entry)
    if usage is None:
        assert record.estimated
    else:
        assert not record.estimated
        assert record.prompt_tokens == usage["prompt_tokens"]
        assert record.completion_tokens == usage["completion_tokens"]
        assert record.cached_tokens == usage.get("cached_tokens", 0)
        assert record.reasoning_tokens == usage.get("reasoning_tokens", 0)
        if "cost" in usage:
            assert record.provider_cost_micro_usd == round(usage["cost"] * 1_000_000)
    assert record.outcome == (Outcome.UPSTREAM_ERROR if ends_in_error else Outcome.COMPLETED)


def tap_all(chunks: list[bytes], include_usage: bool = True) -> tuple[bytes, Usage | None, bool]:
    tap = StreamTap(OpenAIStreamReader(include_usage))
    out = b"".join(tap.feed(c) for c in chunks)
    cut = tap.close()
    return out, tap.usage, cut and not tap.reader.complete


@pytest.mark.parametrize("entry", QUIRKS, ids=[e["file"] for e in QUIRKS])
def test_quirks_rechunked_at_every_byte_boundary(entry: dict[str, Any]) -> None:
    """Split each quirk stream in two at every byte of its first 2 KB (and byte by byte): the client
    bytes and the usage never depend on where the reads fall."""
    raw = raw_bytes(entry)
    whole, usage, broken = tap_all([raw])
    for cut in range(1, min(len(raw), 2048)):
        assert tap_all([raw[:cut], raw[cut:]]) == (whole, usage, broken), f"split at byte {cut}"
    assert tap_all([raw[i : i + 1] for i in range(len(raw))]) == (whole, usage, broken)
    expected = expected_usage(entry)
    if expected is None:
        assert usage is None
    else:
        assert usage is not None and usage.prompt_tokens == expected["prompt_tokens"]
        assert usage.completion_tokens == expected["completion_tokens"]
