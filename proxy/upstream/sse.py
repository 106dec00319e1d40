"""An incremental Server-Sent Events parser that keeps the exact bytes of every event.

It follows the WHATWG event-stream rules: CR, LF and CRLF all end a line (a CRLF split across two reads is
still one line end); a blank line dispatches; lines starting with ``:`` are comments; several ``data:``
lines join with LF; one space after the colon is optional; an unknown field is ignored; a BOM at the very
start of the stream is skipped; an event still open at end of stream is discarded. It works on bytes, so a
UTF-8 character split across reads is never decoded half way: ``data`` is decoded (by orjson) only once
the event is whole.

Each dispatched block comes out as an :class:`SSEEvent` whose ``raw`` holds the upstream bytes verbatim,
so the relay can forward an event unchanged, drop it, or replace it.

Upstream bytes are untrusted, so the work and the memory are bounded whatever the provider sends:

- Linear time: each byte is looked at a bounded number of times however the reads split the stream. The
  line-end search resumes where it stopped, an incomplete line is kept as a list of pieces joined once
  when its end arrives, and a block's lines are joined once when it dispatches.
- Bounded memory: one block (its lines and the incomplete line after them) may hold at most
  ``max_event_bytes``; past it :class:`EventTooLarge` is raised and the stream cannot be followed further.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024  # room for a base64 image in one event

_BOM = b"\xef\xbb\xbf"
_LF, _CR, _CRLF = b"\n", b"\r", b"\r\n"


@dataclass(slots=True)  # not frozen: one per upstream event, and a frozen __init__ costs several times more
class SSEEvent:
    """One blank-line-terminated block of the stream.

    ``data`` is None for a block that dispatches no event (only comments or empty lines); ``comments``
    counts its comment lines. ``raw`` is every byte of the block as received, terminator included.
    """

    raw: bytes
    data: bytes | None = None
    event: str | None = None
    id: str | None = None
    comments: int = 0


class EventTooLarge(Exception):
    """A block grew past the parser's bound before its blank line. ``events`` holds the blocks the same
    read completed before it, in order; nothing after them can be parsed."""

    def __init__(self, limit: int, events: list[SSEEvent]) -> None:
        super().__init__(f"an SSE event larger than {limit} bytes")
        self.limit = limit
        self.events = events


class SSEParser:
    """Feed it reads as they arrive; it returns the blocks they complete."""

    __slots__ = (
        "_blank",
        "_comments",
        "_cr_at",
        "_cr_pending",
        "_data",
        "_event",
        "_failed",
        "_head",
        "_id",
        "_limit",
        "_line",
        "_line_size",
        "_raw",
        "_raw_size",
    )

    _quick = True  # the quick path for plain one-line ``data:`` events (tests turn it off for reference)

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._limit = max_event_bytes
        self._line: list[bytes] = []  # pieces of the incomplete line at the end of the input so far
        self._line_size = 0
        self._raw: list[bytes] = []  # the complete lines of the block being read, terminators included
        self._raw_size = 0
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._comments = 0
        self._cr_pending = False  # the last line ended in CR: an LF right after belongs to it
        self._head: bytes | None = b""  # the stream's first bytes while they may be a BOM; None after
        self._blank = -2  # where the quick path found the next LF LF in this read (-2: not looked for)
        self._cr_at = -2  # and the next CR
        self._failed = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk or self._failed:
            return []
        out: list[SSEEvent] = []
        if self._head is not None:
            chunk = self._skip_bom(chunk)
            if not chunk:
                return out
        pos = 0
        if self._cr_pending:
            self._cr_pending = False
            if chunk[0] == 0x0A:
                # The LF of a CRLF split across reads. Right after a dispatch it belongs to no block:
                # hand it on alone (data None) so that the relayed bytes stay exactly the upstream's.
                if self._raw:
                    self._raw_size += 1
                    if self._raw_size > self._limit:
                        self._give_up(out)
                    self._raw.append(_LF)
                else:
                    out.append(SSEEvent(_LF))
                pos = 1
        self._blank = self._cr_at = -2  # not looked for yet in this read
        if self._quick and not self._raw and not self._line:
            pos = self._plain_events(chunk, pos, out)
            if pos == len(chunk):
                return out
        self._scan(chunk, pos, out)
        return out

    def ends_with_done(self) -> bool:
        """Whether the input so far ends with a whole ``data: [DONE]`` line that only its blank line is
        missing (anthropic/openai-compat-stream-tool-index-1.sse ends so): the end marker, cut at its
        last byte. Asked before :meth:`close`."""
        partial = self._line if self._head is None else [self._head]
        return self._data == [b"[DONE]"] and self._event is None and not any(partial)

    def close(self) -> bool:
        """End of input. Returns True when the stream stopped inside an event (it is discarded)."""
        partial = self._line if self._head is None else [self._head]
        truncated = any(p and not p.isspace() for p in partial) or bool(self._data) or self._event is not None
        self._reset()
        return truncated

    def _skip_bom(self, chunk: bytes) -> bytes:
        """The input after a leading BOM (kept in the first block's raw bytes); b"" while the first reads
        are too short to tell."""
        head = self._head + chunk if self._head else chunk
        if len(head) < 3 and _BOM.startswith(head):
            self._head = head
            return b""
        self._head = None
        if head.startswith(_BOM):
            self._raw.append(_BOM)
            self._raw_size = 3
            return head[3:]
        return head

    def _scan(self, chunk: bytes, pos: int, out: list[SSEEvent]) -> None:
        """Every line of ``chunk`` from ``pos``; the incomplete one at the end is kept in pieces.

        The positions of the next LF and CR are searched again only once the scan has passed them, so a
        read costs one pass over its bytes whatever its lines look like."""
        size = len(chunk)
        lf = cr = -2  # -2: not looked for yet; -1: none left in this read
        while pos < size:
            if -1 != lf < pos:
                lf = chunk.find(b"\n", pos)
            if -1 != cr < pos:
                cr = chunk.find(b"\r", pos)
            if cr == -1 or -1 < lf < cr:
                if lf == -1:
                    self._keep_partial(chunk, pos, out)
                    return
                end, after, term = lf, lf + 1, _LF
            elif cr + 1 == lf:
                end, after, term = cr, cr + 2, _CRLF
            else:
                end, after, term = cr, cr + 1, _CR
                if after == size:
                    self._cr_pending = True
            if self._line:
                self._end_pieces(chunk[pos:end], term, out)
                pos = after
            elif end > pos:
                self._add_line(chunk[pos:end], term, out)
                pos = after
            else:  # a blank line: the block is whole
                self._raw.append(term)
                out.append(self._dispatch())
                pos = after
                if self._quick:
                    pos = self._plain_events(chunk, pos, out)

    def _add_line(self, line: bytes, term: bytes, out: list[SSEEvent]) -> None:
        """A field line (not blank) and its terminator."""
        self._raw_size += len(line) + len(term)
        if self._raw_size > self._limit:
            self._give_up(out)
        self._raw.append(line)
        self._raw.append(term)
        self._field(line)

    def _end_pieces(self, last: bytes, term: bytes, out: list[SSEEvent]) -> None:
        """The end of a line that came over several reads. A ``data:`` line (a base64 image, say) is never
        joined whole: its pieces join the block's raw bytes as they are, and its value is joined once."""
        pieces = self._line
        pieces.append(last)
        size = self._line_size + len(last)
        self._line = []
        self._line_size = 0
        first = pieces[0]  # 6 bytes or more when there are two pieces (see _keep_partial)
        if len(first) < 6 or not first.startswith(b"data:"):
            self._add_line(b"".join(pieces), term, out)
            return
        self._raw_size += size + len(term)
        if self._raw_size > self._limit:
            self._give_up(out)
        self._raw += pieces
        self._raw.append(term)
        pieces[0] = first[6:] if first[5] == 0x20 else first[5:]
        self._data.append(b"".join(pieces))

    def _plain_events(self, chunk: bytes, pos: int, out: list[SSEEvent]) -> int:
        """The common case, quickly: whole ``data: ...`` events (one line each, LF-terminated) from
        ``pos``; returns where they end. The line-by-line path does the rest with the same result."""
        # The next LF LF and the next CR are searched again only once passed: one pass over the read.
        end, cr, limit, last_id = self._blank, self._cr_at, self._limit, self._id
        while chunk.startswith(b"data:", pos):
            if end < pos and end != -1:
                end = chunk.find(b"\n\n", pos)
            if end < 0 or end + 1 - pos > limit:
                break
            if cr < pos and cr != -1:
                cr = chunk.find(b"\r", pos)
            if -1 < cr < end or chunk.find(b"\n", pos, end) >= 0:
                break
            value = chunk[pos + 6 : end] if chunk[pos + 5] == 0x20 else chunk[pos + 5 : end]
            out.append(SSEEvent(chunk[pos : end + 2], value, None, last_id))
            pos = end + 2
        self._blank, self._cr_at = end, cr
        return pos

    def _keep_partial(self, chunk: bytes, pos: int, out: list[SSEEvent]) -> None:
        piece = chunk[pos:] if pos else chunk
        if self._line and self._line_size < 6:
            self._line[0] += piece  # the first piece holds at least a field name's "data: "
        else:
            self._line.append(piece)
        self._line_size += len(piece)
        if self._raw_size + self._line_size > self._limit:
            self._give_up(out)

    def _give_up(self, out: list[SSEEvent]) -> None:
        """The block passed the bound: drop what it holds and refuse the rest of the stream."""
        self._reset()
        self._failed = True
        raise EventTooLarge(self._limit, out)

    def _reset(self) -> None:
        self._line = []
        self._line_size = 0
        self._raw = []
        self._raw_size = 0
        self._data = []
        self._event = None
        self._head = None

    def _field(self, line: bytes) -> None:
        if line[0] == 0x3A:  # ":" comment
            self._comments += 1
            return
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:  # one slice for the value: it may be megabytes
            start = colon + 2 if line[colon + 1 : colon + 2] == b" " else colon + 1
            name, value = line[:colon], line[start:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        # "retry" and unknown fields are ignored

    def _dispatch(self) -> SSEEvent:
        raw = self._raw
        data = self._data
        event = SSEEvent(
            raw[0] if len(raw) == 1 else b"".join(raw),
            (data[0] if len(data) == 1 else b"\n".join(data)) if data else None,
            self._event,
            self._id,
            self._comments,
        )
        self._raw = []
        self._raw_size = 0
        self._data = []
        self._event = None
        self._comments = 0
        return event
