"""Malformed requests in the log: one short line now and then, never the request's head nor a traceback.

aiohttp's request handler logs a request it cannot parse with ``logger.exception``: the message quotes the
raw head (an ``Authorization: Bearer ...`` line included) and the record carries a traceback, once per
request, so any client could flood the log and copy secrets into it. The gateway's request handlers log
to :func:`request_log` instead, whose filter turns those records into at most one line every ``EVERY``
seconds: how many malformed requests were refused since the last line, and the kind of the last error
(its class name and status: never its message, which quotes the request). Other records pass unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

EVERY = 10.0  # seconds between two lines about malformed requests
MESSAGE = "malformed requests refused"


class MalformedRequests(logging.Filter):
    def __init__(self, every: float = EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self.count = 0  # refused since the last line
        self.last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        self.count += 1
        now = self.clock()
        if now - self.last < self.every:
            return False
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.fields = {
            "msg": MESSAGE,
            "count": self.count,
            "last_error": type(exc).__name__,
            "status": exc.code,
            "peer": peer if isinstance(peer, str) else None,
        }
        record.msg, record.args = MESSAGE, ()
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"  # a client's fault, not ours
        self.count, self.last = 0, now
        return True


_LOG = logging.getLogger("efflux.http")


def request_log() -> logging.Logger:
    """The logger for aiohttp's request handlers (the runner's ``logger``), with the filter above."""
    if not any(isinstance(f, MalformedRequests) for f in _LOG.filters):
        _LOG.addFilter(MalformedRequests())
    return _LOG
