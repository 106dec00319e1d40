"""Logging: JSON lines on stderr, written by background threads so the event loop never blocks on I/O.

``access(fields)`` emits the one access-log line per request. It bypasses the logging module (a
LogRecord and a thread wake-up per request cost more than the rest of the gateway's own work): the event
loop appends the fields to a deque, and a writer thread serialises and writes them in batches every
``FLUSH_EVERY`` seconds. Nothing secret is ever passed in: the fields are names, ids, numbers, outcomes.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from collections import deque

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
        elif record.exc_text:
            out["exc"] = record.exc_text
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


FLUSH_EVERY = 0.05
_HEAD = b'{"level":"info","logger":"efflux.access","ts":"'
# The end of the timestamp for each millisecond (``.042Z",``), made once rather than formatted per line.
_MILLIS = [f'.{ms:03d}Z",'.encode() for ms in range(1000)]


class AccessWriter:
    """Access-log lines, serialised on the event loop (one orjson call, a few microseconds) and written
    in batches by a thread that only joins bytes and calls ``os.write`` (both release the GIL or run in
    C), so the thread never competes with the event loop for the interpreter."""

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self.pending: deque[bytes] = deque()
        self._second = -1
        self._head = _HEAD  # ``_HEAD`` and the current second's timestamp
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="efflux-access-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def write(self, fields: dict[str, object]) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:  # strftime once a second, not once a request
            self._second = second
            self._head = _HEAD + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        millis = _MILLIS[int((now - second) * 1000)]
        # The fields' own JSON object is spliced in after its opening brace.
        self.pending.append(self._head + millis + orjson.dumps(fields, default=str)[1:])

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            self.flush()
        self.flush()

    def flush(self) -> None:
        pending = self.pending
        lines = [pending.popleft() for _ in range(len(pending))]
        if lines:
            data = b"\n".join(lines) + b"\n"
            try:
                while data:
                    data = data[os.write(self.fd, data) :]
            except OSError:
                pass  # stderr closed: nothing sensible left to do with a log line

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2)


_writer: AccessWriter | None = None


def access(fields: dict[str, object]) -> None:
    global _writer
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    if _writer is None:
        _writer = AccessWriter()
    _writer.write(fields)
