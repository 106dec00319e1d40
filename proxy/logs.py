"""Logging: JSON lines on stderr, written by a background thread so the event loop never blocks on I/O.

``access(fields)`` emits the one access-log line per request. Nothing secret is ever passed in: the
fields are names, ids, numbers and outcomes.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import sys
import time

import orjson

ACCESS = logging.getLogger("efflux.access")
log = logging.getLogger("efflux")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


_listener: logging.handlers.QueueListener | None = None


def setup_logging(level: str | None = None) -> None:
    """Route every log record through a queue to one writer thread. Idempotent."""
    global _listener
    if _listener is not None:
        return
    name = (level or os.environ.get("EFFLUX_LOG_LEVEL") or "INFO").upper()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter())
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(q, stream, respect_handler_level=False)
    _listener.start()
    atexit.register(_listener.stop)
    root = logging.getLogger()
    root.handlers = [_QueueHandler(q)]
    root.setLevel(getattr(logging, name, logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # we write our own access line


class _QueueHandler(logging.handlers.QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Keep the record as is (formatting happens in the writer thread); only freeze the exception text.
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


def access(fields: dict[str, object]) -> None:
    if ACCESS.isEnabledFor(logging.INFO):
        ACCESS.info("", extra={"fields": fields})
