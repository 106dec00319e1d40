"""The access-log line: one JSON object per request, the fixed head first, then the fields as given."""

from __future__ import annotations

import os
import re

import orjson

from proxy.observe.logs import AccessWriter


def test_an_access_line_is_the_head_then_the_fields() -> None:
    read, write = os.pipe()
    writer = AccessWriter(write)
    try:
        writer.write({"msg": "request", "status": 200, "model": "gpt-x", "latency_ms": 12.5})
        writer.write({"msg": "request", "status": 429})
        writer.flush()
        lines = os.read(read, 65536).decode().splitlines()
    finally:
        writer.close()
        os.close(read)
        os.close(write)
    assert len(lines) == 2
    first = orjson.loads(lines[0])
    assert list(first) == ["level", "logger", "ts", "msg", "status", "model", "latency_ms"]
    assert first["level"] == "info" and first["logger"] == "efflux.access"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert (first["status"], first["model"], first["latency_ms"]) == (200, "gpt-x", 12.5)
    assert orjson.loads(lines[1])["status"] == 429
