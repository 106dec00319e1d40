"""An incremental Server-Sent Events parser that keeps the exact bytes of every event.

It follows the WHATWG event-stream rules: CR, LF and CRLF all end a line (a CRLF split across two reads is
still one line end); a blank line dispatches; lines starting with ``:`` are comments; several ``data:``
lines join with LF; one space after the colon is optional; an unknown field is ignored; an event still
open at end of stream is discarded. It works on bytes, so a UTF-8 character split across reads is never
decoded half way: ``data`` is decoded (by orjson) only once the event is whole.

Each dispatched block comes out as an :class:`SSEEvent` whose ``raw`` holds the upstream bytes verbatim,
so the relay can forward an event unchanged, drop it, or replace it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


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


class SSEParser:
    """Feed it reads as they arrive; it returns the blocks they complete."""

    __slots__ = ("_buf", "_comments", "_cr_pending", "_data", "_event", "_id", "_raw", "_started")

    def __init__(self) -> None:
        self._buf = bytearray()  # the incomplete line at the end of the input so far
        self._raw = bytearray()  # raw bytes of the block being read (complete lines only)
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._comments = 0
        self._cr_pending = False  # the last line ended in CR: an LF right after belongs to it
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        out: list[SSEEvent] = []
        if self._cr_pending:
            self._cr_pending = False
            if chunk[:1] == b"\n":
                # The LF of a CRLF split across reads. Right after a dispatch it belongs to no block:
                # hand it on alone (data None) so that the relayed bytes stay exactly the upstream's.
                if self._raw:
                    self._raw += b"\n"
                else:
                    out.append(SSEEvent(b"\n"))
                chunk = chunk[1:]
        buf = self._buf
        buf += chunk
        if not self._started and len(buf) >= 3:
            self._started = True
            if buf.startswith(_BOM):
                self._raw += _BOM
                del buf[:3]
        if b"\r" not in buf and not (self._raw or self._data or self._comments) and self._event is None:
            self._plain_events(buf, out)
        pos = 0
        for match in _LINE_END.finditer(buf):
            end = match.end()
            line = bytes(buf[pos : match.start()])
            self._raw += buf[pos:end]
            pos = end
            if end == len(buf) and match.group() == b"\r":
                self._cr_pending = True
            event = self._line(line)
            if event is not None:
                out.append(event)
        if pos:
            del buf[:pos]
        return out

    def _plain_events(self, buf: bytearray, out: list[SSEEvent]) -> None:
        """The common case, quickly: whole ``data: ...`` events (one line each, LF-terminated) at the
        start of ``buf``, taken off it. The general loop does the rest with the same result."""
        pos = 0
        while True:
            end = buf.find(b"\n\n", pos)
            if end < 0 or not buf.startswith(b"data:", pos) or buf.find(b"\n", pos, end) >= 0:
                break
            value = buf[pos + 5 : end]
            if value[:1] == b" ":
                del value[:1]
            out.append(SSEEvent(bytes(buf[pos : end + 2]), bytes(value), None, self._id))
            pos = end + 2
        if pos:
            del buf[:pos]

    def close(self) -> bool:
        """End of input. Returns True when the stream stopped inside an event (it is discarded)."""
        truncated = bool(self._buf.strip()) or bool(self._data) or self._event is not None
        self._buf.clear()
        self._raw.clear()
        self._data = []
        self._event = None
        return truncated

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" comment
            self._comments += 1
            return None
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        return None  # "retry" and unknown fields are ignored

    def _dispatch(self) -> SSEEvent:
        data = b"\n".join(self._data) if self._data else None
        event = SSEEvent(bytes(self._raw), data, self._event, self._id, self._comments)
        self._raw.clear()
        self._data = []
        self._event = None
        self._comments = 0
        return event
