"""The SSE parser against two references, for every recorded stream and many ways the reads can fall:

- its own line-by-line path alone (the quick path for plain ``data:`` events turned off) must give exactly
  the same events (raw bytes, data, event, id, comments) for the same reads;
- an independent whole-stream WHATWG parser written here must give the same events once the reads'
  only visible trace is taken out (an LF whose CR ended the previous read right after a dispatch comes
  out alone, so that the relayed bytes stay the upstream's).
"""

from __future__ import annotations

import random
import re

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
    # CR and LF in every arrangement, so that a cut falls between each pair
    b"data: a\r\n\r\ndata: b\r\rdata: c\n\r\ndata: d\r\n\ndata:e\r\n",
    b"data: x\r\ndata: y\r\n\r\n: c\r\r\r\ndata: z\n\n",
    b"\r\n\r\ndata: after two blank CRLF lines\n\n",
    b"data: one\n\n\r\n\ndata: two\n\n",
    # a BOM, a false start of one, a BOM alone, and one that is not at the start (then it is data)
    b"\xef\xbb\xbf\n\ndata: x\n\n",
    b"\xef\xbbdata: not a bom\n\n",
    b"\xef\xbb\xbf",
    b"data: a\n\n\xef\xbb\xbfdata: b\n\n",
    b"\xef\xbb\xbf: comment\r\n\r\n",
    # fields: no colon, no space, two spaces, id with NUL, retry and unknown fields
    b"data\ndata:\ndata:  two spaces\nid: a\0b\nretry: 10\nfoo: bar\n\n",
    b'event: e1\nid: 9\ndata: {"a":1}\n\ndata: keeps id 9\n\n',
    b": only a comment, never dispatched",
    b"data: open event\n",
    b"   ",
]
# Long lines: one over many reads, one with CRLF, a multi-line event, and plain events around them.
LONG = [
    b"data: " + b"x" * 200_000 + b"\n\n",
    b"data: head\n\ndata: " + b"y" * 150_000 + b"\r\n\r\ndata: tail\n\n",
    b"event: big\n" + b"".join(b"data: " + b"%d" % i * 500 + b"\n" for i in range(60)) + b"\n",
    b": " + b"c" * 100_000 + b"\ndata: after a long comment\n\n",
]


class LinePathParser(SSEParser):
    """The line-by-line path alone (the first reference)."""

    _quick = False


_LINE = re.compile(rb"(.*?)(\r\n|\r|\n)", re.DOTALL)


def whatwg(stream: bytes) -> tuple[list[SSEEvent], bool]:
    """The second reference: the whole stream at once, read line by line as the WHATWG spec says."""
    events: list[SSEEvent] = []
    raw = b""
    if stream.startswith(b"\xef\xbb\xbf"):
        raw, stream = stream[:3], stream[3:]
    data: list[bytes] = []
    event: str | None = None
    last_id: str | None = None
    comments = 0
    pos = 0
    for match in _LINE.finditer(stream):
        line = match.group(1)
        raw += match.group(0)
        pos = match.end()
        if not line:
            events.append(SSEEvent(raw, b"\n".join(data) if data else None, event, last_id, comments))
            raw, data, event, comments = b"", [], None, 0
        elif line.startswith(b":"):
            comments += 1
        else:
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value.decode("utf-8", "replace")
            elif name == b"id" and b"\0" not in value:
                last_id = value.decode("utf-8", "replace")
    truncated = bool(stream[pos:].strip()) or bool(data) or event is not None
    return events, truncated


def parse(parser: SSEParser, data: bytes, cuts: list[int]) -> tuple[list[SSEEvent], bool]:
    events: list[SSEEvent] = []
    start = 0
    for cut in [*cuts, len(data)]:
        events += parser.feed(data[start:cut])
        start = cut
    return events, parser.close()


def without_split_lf(events: list[SSEEvent]) -> list[SSEEvent]:
    """Put each lone LF (the second half of a CRLF cut by a read) back at the end of the event before."""
    out: list[SSEEvent] = []
    for event in events:
        if event.raw == b"\n" and event.data is None and out and out[-1].raw.endswith(b"\r"):
            last = out[-1]
            out[-1] = SSEEvent(last.raw + b"\n", last.data, last.event, last.id, last.comments)
        else:
            out.append(event)
    return out


def splits(data: bytes, one_by_one: int = 400) -> list[list[int]]:
    rng = random.Random(len(data))
    cuts: list[list[int]] = [[], list(range(1, len(data)))[:one_by_one]]
    cuts += [sorted(rng.sample(range(1, len(data)), min(len(data) - 1, k))) for k in (1, 3, 10, 40)]
    return cuts


def check(data: bytes, cuts: list[int]) -> None:
    got = parse(SSEParser(), data, cuts)
    assert got == parse(LinePathParser(), data, cuts), cuts
    expected_events, expected_truncated = whatwg(data)
    assert (without_split_lf(got[0]), got[1]) == (expected_events, expected_truncated), cuts
    assert data.startswith(b"".join(e.raw for e in got[0]))  # every byte relayed, in order, unchanged


def test_the_fixtures_are_found() -> None:
    assert len(STREAMS) >= 10


@pytest.mark.parametrize("data", [p.read_bytes() for p in STREAMS] + CRAFTED)
def test_every_split(data: bytes) -> None:
    for cuts in splits(data):
        check(data, cuts)


@pytest.mark.parametrize("data", CRAFTED)
def test_every_cut_and_pair_of_cuts(data: bytes) -> None:
    """Small streams, cut at every place and every pair of places: each CR/LF pair and BOM byte split."""
    for a in range(1, len(data)):
        check(data, [a])
        for b in range(a + 1, min(len(data), a + 12)):
            check(data, [a, b])


@pytest.mark.parametrize("data", LONG, ids=["data-line", "crlf-line", "multi-line", "comment"])
@pytest.mark.parametrize("read", [1, 7, 4096, 16384])
def test_long_lines_across_many_reads(data: bytes, read: int) -> None:
    cuts = list(range(read, len(data), read))
    if read == 1:  # one byte at a time near the ends only (and now and then): the whole would take long
        cuts = [c for c in cuts if c < 200 or c > len(data) - 200 or c % 4099 == 0]
    check(data, cuts)


def test_quick_path_is_taken() -> None:
    """Plain events come out of the quick path (the line path alone would fail this: it is turned off)."""
    out: list[SSEEvent] = []
    chunk = b'data: {"a":1}\n\ndata:[DONE]\n\nevent: x\n'
    assert SSEParser()._plain_events(chunk, 0, out) == len(b'data: {"a":1}\n\ndata:[DONE]\n\n')
    assert [e.data for e in out] == [b'{"a":1}', b"[DONE]"]
    assert [e.raw for e in out] == [b'data: {"a":1}\n\n', b"data:[DONE]\n\n"]
    assert LinePathParser()._quick is False


@pytest.mark.parametrize(
    ("tail", "done"),
    [
        (b"data: [DONE]\n", True),  # only the blank line is missing
        (b"data: [DONE]\r\n", True),
        (b"data: [DONE]", False),  # the line itself is cut: it may have gone on
        (b"data: [DON", False),
        (b"event: x\ndata: [DONE]\n", False),  # a named event is not the end marker
        (b'data: {"a":1}\n', False),
        (b"", False),
    ],
)
def test_a_done_line_that_lost_its_blank_line_is_told_apart(tail: bytes, done: bool) -> None:
    parser = SSEParser()
    parser.feed(b'data: {"a":0}\n\n' + tail)
    assert parser.ends_with_done() is done
    assert parser.close() is (tail != b"")
