"""The request handlers' log (proxy.edge.bad_requests): a malformed request is one short line now and
then, with a count, never its message (which quotes the head) nor a traceback; other records pass as they
are."""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from proxy.edge.bad_requests import MESSAGE, MalformedRequests, request_log

SECRET = "egw-secret-in-a-head-0123456789"


def record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(
        "efflux.http", logging.ERROR, __file__, 1, "Error handling request from %s", ("10.0.0.7",), info
    )


def test_malformed_requests_make_one_line_a_window_with_their_count() -> None:
    now = [100.0]
    malformed = MalformedRequests(every=10.0, clock=lambda: now[0])
    bad = BadHttpMessage(f"Invalid header: b'Authorization: Bearer {SECRET}\\n'")
    first = record(bad)
    assert malformed.filter(first)
    assert first.exc_info is None and first.exc_text is None
    assert first.getMessage() == MESSAGE and first.levelno == logging.WARNING
    fields = first.__dict__["fields"]
    assert fields == {
        "msg": MESSAGE,
        "count": 1,
        "last_error": "BadHttpMessage",
        "status": 400,
        "peer": "10.0.0.7",
    }
    assert SECRET not in repr(first.__dict__)
    assert not any(malformed.filter(record(bad)) for _ in range(5))  # within the window: dropped
    now[0] += 10.0
    later = record(LineTooLong(SECRET, "8190"))
    assert malformed.filter(later)
    assert later.__dict__["fields"]["count"] == 6
    assert later.__dict__["fields"]["last_error"] == "LineTooLong"
    assert SECRET not in repr(later.__dict__)


def test_other_records_pass_unchanged() -> None:
    malformed = MalformedRequests(clock=lambda: 0.0)
    failure = record(RuntimeError("a bug of ours"))
    assert malformed.filter(failure)
    assert failure.exc_info is not None and failure.levelno == logging.ERROR


def test_the_request_log_carries_the_filter_once() -> None:
    log = request_log()
    assert request_log() is log
    assert sum(isinstance(f, MalformedRequests) for f in log.filters) == 1
