"""AWS's binary event-stream framing (``application/vnd.amazon.eventstream``), decoded incrementally.

One message: a 12-byte prelude (total length, headers length, both big-endian uint32, and the CRC32 of
those 8 bytes), the headers, the payload, and the CRC32 of everything before it. A header is a 1-byte name
length, the name, a 1-byte type and a typed value. Bytes may arrive split anywhere
(bedrock/converse-stream-text.eventstream, replayed in reads of any size, decodes the same).

Bounded: a message longer than ``max_frame_bytes`` is refused from its prelude, before its body is
buffered; a bad prelude or message CRC, or headers that do not parse, raise :class:`FrameError`. The
buffer never holds more than one message plus one read.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

PRELUDE = 12
MIN_MESSAGE = PRELUDE + 4
_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")
# header value type -> fixed size (None: 2-byte length prefix; 0: no value, the type is the value)
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


class FrameError(ValueError):
    """The stream is corrupt or breaks a bound: nothing after this point can be trusted. ``messages``:
    the whole messages the same read held before the fault."""

    messages: list[Message]


@dataclass(frozen=True, slots=True)
class Message:
    headers: dict[str, str | int | bool | bytes]
    payload: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


class EventStreamDecoder:
    def __init__(self, max_frame_bytes: int = 1 << 20) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished message are waiting."""
        return bool(self._buffer)

    def feed(self, chunk: bytes) -> list[Message]:
        out: list[Message] = []
        try:
            self._take(chunk, out)
        except FrameError as exc:
            exc.messages = out
            raise
        return out

    def _take(self, chunk: bytes, out: list[Message]) -> None:
        buffer = self._buffer
        buffer += chunk
        at = 0
        while len(buffer) - at >= PRELUDE:
            total, headers_length, prelude_crc = _PRELUDE.unpack_from(buffer, at)
            if zlib.crc32(buffer[at : at + 8]) != prelude_crc:
                raise FrameError("event stream: prelude CRC mismatch")
            if total < MIN_MESSAGE or headers_length > total - MIN_MESSAGE:
                raise FrameError(
                    f"event stream: impossible lengths (total {total}, headers {headers_length})"
                )
            if total > self.max_frame_bytes:
                raise FrameError(
                    f"event stream: a message of {total} bytes is past the {self.max_frame_bytes} bound"
                )
            if len(buffer) - at < total:
                break
            end = at + total
            (message_crc,) = _U32.unpack_from(buffer, end - 4)
            if zlib.crc32(buffer[at : end - 4]) != message_crc:
                raise FrameError("event stream: message CRC mismatch")
            headers_end = at + PRELUDE + headers_length
            headers = _headers(bytes(buffer[at + PRELUDE : headers_end]))
            out.append(Message(headers, bytes(buffer[headers_end : end - 4])))
            at = end
        if at:
            del buffer[:at]


def _headers(raw: bytes) -> dict[str, str | int | bool | bytes]:
    out: dict[str, str | int | bool | bytes] = {}
    at, end = 0, len(raw)
    try:
        while at < end:
            size = raw[at]
            name = raw[at + 1 : at + 1 + size].decode()
            at += 1 + size
            kind = raw[at]
            at += 1
            fixed = _FIXED.get(kind)
            value: str | int | bool | bytes
            if kind in (0, 1):
                value = kind == 0
            elif fixed is not None:
                value = int.from_bytes(raw[at : at + fixed], "big", signed=kind not in (9,))
                at += fixed
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", raw, at)
                data = raw[at + 2 : at + 2 + length]
                at += 2 + length
                value = data.decode() if kind == 7 else data
            else:
                raise FrameError(f"event stream: unknown header type {kind}")
            if at > end:
                raise FrameError("event stream: a header runs past the headers")
            out[name] = value
    except (IndexError, UnicodeDecodeError, struct.error) as exc:
        raise FrameError(f"event stream: headers do not parse ({exc})") from None
    return out


def encode(headers: dict[str, str], payload: bytes) -> bytes:
    """One message with string headers (what Bedrock sends): for tests and fakes."""
    raw = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    total = MIN_MESSAGE + len(raw) + len(payload)
    prelude = struct.pack(">II", total, len(raw))
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + raw + payload
    return body + _U32.pack(zlib.crc32(body))
