"""The SSE parser's quick path for plain ``data:`` events must give exactly what the line-by-line WHATWG
path gives: the same events (raw bytes, data, event, id, comments) for every recorded stream, however
the reads fall."""

from __future__ import annotations

import random

import pytest
from support import FIXTURES

from proxy.upstream.sse import SSEEvent, SSEParser

STREAMS = sorted(FIXTURES.rglob("*.sse"))
CRAFTED = [
    b"data: a\n\ndata:b\n\nevent: x\ndata: c\n\n: comment\n\ndata: d\ndata: e\n\n",
    b"id: 7\n\ndata: after id\n\nevent:\ndata: empty event name\n\n",
    b"\n\ndata: starts with blank lines\n\n\n\ndata\n\ndata: z\n\n",
    b"\xef\xbb\xbfdata: bom\n\ndata: x\r\n\r\ndata: y\n\n",
    b"data: cut at the end",
    b"data: a\n\ndata: b\r\rdata: c\n\ndata: d\n\n",
]


class GeneralParser(SSEParser):
    """The line-by-line path alone (the reference)."""

    def _plain_events(self, buf: bytearray, out: list[SSEEvent]) -> None:
        return None


def parse(parser: SSEParser, data: bytes, cuts: list[int]) -> tuple[list[SSEEvent], bool]:
    events: list[SSEEvent] = []
    start = 0
    for cut in [*cuts, len(data)]:
        events += parser.feed(data[start:cut])
        start = cut
    return events, parser.close()


def test_the_fixtures_are_found() -> None:
    assert len(STREAMS) >= 10


@pytest.mark.parametrize("data", [p.read_bytes() for p in STREAMS] + CRAFTED)
def test_quick_path_equals_line_path(data: bytes) -> None:
    rng = random.Random(len(data))
    splits = [[], list(range(1, len(data)))[:400]]  # whole, and one byte at a time (the first 400)
    splits += [sorted(rng.sample(range(1, len(data)), min(len(data) - 1, k))) for k in (1, 3, 10, 40)]
    for cuts in splits:
        assert parse(SSEParser(), data, cuts) == parse(GeneralParser(), data, cuts), cuts


def test_quick_path_is_taken() -> None:
    parser = SSEParser()
    out: list[SSEEvent] = []
    buf = bytearray(b'data: {"a":1}\n\ndata:[DONE]\n\nevent: x\n')
    parser._plain_events(buf, out)
    assert [e.data for e in out] == [b'{"a":1}', b"[DONE]"]
    assert [e.raw for e in out] == [b'data: {"a":1}\n\n', b"data:[DONE]\n\n"]
    assert buf == b"event: x\n"
