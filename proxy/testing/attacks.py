"""The attacks a hostile provider can make and what the client whose request met one must get.

Each :class:`Attack` is a script for :class:`~proxy.testing.hostile_upstream.HostileUpstream` and the
expectation of the client whose request met it:

- ``"502"``: an OpenAI error envelope (``upstream_error``) with HTTP 502: nothing had reached the client;
- ``"error event"``: HTTP 200, the event sent before the attack, then an SSE error event and no [DONE];
- ``"502 or error event"``: either, for a stream whose first event may or may not get through;
- ``"answer"``: HTTP 200 with the attack's own answer (framing that is odd but readable).

After every attack the gateway must send no further request on the attack's connection (its framing can
no longer be trusted), the next request of another key on the same provider must get its own answer,
and the gateway's RSS must have grown by less than ``rss_mib`` while the attack ran.

:mod:`proxy.testing.attack_runner` plays them against a gateway process and measures it; the test suite
and ``python -m bench.attacks`` share both.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from proxy.testing.hostile_upstream import (
    MIB,
    SSE_HEAD,
    Exchange,
    Script,
    answer_json,
    chunk_event,
    chunked,
    json_head,
)

GIB = 1024 * MIB
ATTACKER = "egw-attacker-key-0123456789"
VICTIM = "egw-victim-key-0123456789"


@dataclass(frozen=True)
class Attack:
    name: str
    script: Script
    stream: bool
    expect: str  # "502", "error event", "502 or error event" or "answer"
    rss_mib: int = 100

    @property
    def model(self) -> str:
        return "attack-" + self.name.replace(" ", "-")


# -- attack bytes ---------------------------------------------------------------------------------

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_ZEROS = bytes(MIB)


@cache
def gzip_bomb(zeros: int, prefix: bytes = b"") -> bytes:
    """A gzip member of ``prefix`` then ``zeros`` NUL bytes (1 GiB -> ~1 MB), built without compressing
    the zeros more than once: after a full flush, deflate encodes each further MiB of zeros alike."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = _GZIP_HEADER + deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(_ZEROS) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(zeros // MIB):
        crc = zlib.crc32(_ZEROS, crc)
    tail = deflate.flush() + struct.pack("<II", crc, (len(prefix) + zeros) & 0xFFFFFFFF)
    return head + block * (zeros // MIB) + tail


def pieces(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def repeat(piece: bytes, total: int) -> Iterator[bytes]:
    for _ in range(total // len(piece)):
        yield piece


# -- scripts --------------------------------------------------------------------------------------


async def gzip_bomb_json(x: Exchange) -> bool:
    body = gzip_bomb(GIB)
    await x.send(json_head(len(body), "Content-Encoding: gzip"))
    return await x.send_all(pieces(body))


async def gzip_bomb_stream(x: Exchange) -> bool:
    body = gzip_bomb(GIB, chunk_event("before the bomb"))
    await x.send(SSE_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n"))
    return await x.send_all(chunked(p) for p in pieces(body)) and await x.send(chunked(b""))


async def huge_body(x: Exchange) -> bool:
    await x.send(json_head(GIB))
    return await x.send_all(repeat(b"x" * MIB, GIB))


async def sse_line(x: Exchange) -> bool:
    await x.send(SSE_HEAD + chunked(b"data: "))
    return await x.send_all(repeat(chunked(b"x" * MIB), 100 * (MIB + 12)))


async def sse_lines_without_blank(x: Exchange) -> bool:
    await x.send(SSE_HEAD + chunked(chunk_event("before the flood")))
    lines = chunked((b"data: " + b"y" * 1017 + b"\n") * 1024)  # 1 MiB of data lines per chunk
    return await x.send_all(repeat(lines, 100 * len(lines)))


async def continue_flood(x: Exchange) -> bool:
    flood = b"HTTP/1.1 100 Continue\r\n\r\n" * 2600  # ~64 KiB per write
    return await x.send_all(repeat(flood, GIB))


async def te_and_cl(x: Exchange) -> bool:
    body = answer_json(x.model)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    return await x.send(head + b"Content-Length: 5\r\n\r\n" + chunked(body) + chunked(b""))


async def chunked_then_gzip(x: Exchange) -> bool:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
    await x.send(head + chunked(answer_json(x.model)) + chunked(b""))
    return False  # the body runs until the connection closes


async def chunk_size_with_spaces(x: Exchange) -> bool:
    body = answer_json(x.model)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    return await x.send(head + b"  %x\r\n%s\r\n0\r\n\r\n" % (len(body), body))


async def chunk_size_not_hex(x: Exchange) -> bool:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    return await x.send(head + b"zz\r\n" + b"{}" * 200 + b"\r\n0\r\n\r\n")


async def unicode_content_length(x: Exchange) -> bool:
    body = answer_json(x.model)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \xb9\r\n\r\n"  # latin-1 "1"
    return await x.send(head + body)


async def truncated_gzip(x: Exchange) -> bool:
    whole = zlib.compress(answer_json(x.model), wbits=31)
    body = whole[:-8]  # the deflate data is whole; the CRC and length that prove it are missing
    return await x.send(json_head(len(body), "Content-Encoding: gzip") + body)


async def glued_response(x: Exchange) -> bool:
    glued = json_head(len(answer_json("smuggled"))) + answer_json("smuggled")
    body = answer_json(x.model)
    return await x.send(json_head(len(body)) + body + glued)


async def unsolicited_response(x: Exchange) -> bool:
    body = answer_json(x.model)
    await x.send(json_head(len(body)) + body)
    await x.released.wait()  # the client has its answer: the connection is idle in the gateway's pool
    await x.send(json_head(len(answer_json("unsolicited"))) + answer_json("unsolicited"))
    await x.wait_closed(5.0)
    return True  # still open: the gateway may send the next request here (and must not)


ATTACKS = [
    Attack("gzip bomb JSON", gzip_bomb_json, False, "502"),
    Attack("gzip bomb stream", gzip_bomb_stream, True, "502 or error event"),
    Attack("1 GiB body", huge_body, False, "502"),
    Attack("100 MiB SSE line", sse_line, True, "502"),
    Attack("data lines without blank", sse_lines_without_blank, True, "error event"),
    Attack("100 Continue flood", continue_flood, False, "502"),
    Attack("TE and CL", te_and_cl, False, "answer"),
    Attack("chunked, gzip", chunked_then_gzip, False, "502"),
    Attack("chunk size with spaces", chunk_size_with_spaces, False, "502"),
    Attack("chunk size not hex", chunk_size_not_hex, False, "502"),
    Attack("unicode Content-Length", unicode_content_length, False, "502"),
    Attack("truncated gzip", truncated_gzip, False, "502"),
    Attack("glued response", glued_response, False, "answer"),
    Attack("unsolicited response", unsolicited_response, False, "answer"),
]


def gateway_config(upstream_url: str) -> dict[str, object]:
    """One provider (the hostile upstream) behind every model; two keys of two tenants."""
    timeouts = {"connect": "2s", "first_byte": "3s", "idle": "5s", "total": "60s"}
    return {
        "server": {"access_log": False},
        "providers": {
            "hostile": {
                "plugin": "openai_compatible",
                "base_url": upstream_url,
                "timeouts": timeouts,
                "breaker": {"failures": 1_000_000},  # every attack fails: the victim must still be served
            }
        },
        "models": {"*": {"targets": [{"provider": "hostile"}]}},
        "pricing": {"default": {"input": 1.0, "output": 2.0}},
        "keys": [
            {"name": "attacker", "tenant": "mallory", "key": ATTACKER},
            {"name": "victim", "tenant": "alice", "key": VICTIM},
        ],
    }
