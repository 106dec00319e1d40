"""What a provider call fails with. Every message names the provider when the caller said which it is.

::

    UpstreamIOError               the exchange failed (not a timeout)
    +-- ConnectFailed             no connection: refused, unreachable, DNS, egress proxy, TLS handshake
    +-- ExchangeBroken            the connection broke, or the answer is not valid HTTP/1.1
        +-- ClosedBeforeAnswer    EOF before one byte of an answer (on a reused connection: the keep-alive
        |                         race, retried once on a new connection)
        +-- LimitExceeded         past a bound: head size, body size, decompression, 1xx count
    TimeoutError (built in)       a deadline passed

The dispatch code turns any of them before the answer into a fallback (then 502 ``upstream_error``); after the
first byte of a stream the relay ends the stream with an error event that carries the message.
"""

from __future__ import annotations


class UpstreamIOError(Exception):
    """The exchange with the provider failed (not a timeout)."""


class ConnectFailed(UpstreamIOError):
    """No connection could be made (refused, unreachable, DNS, egress proxy, TLS handshake)."""


class ExchangeBroken(UpstreamIOError):
    """The connection broke, or the server's answer is not valid HTTP/1.1."""


class ClosedBeforeAnswer(ExchangeBroken):
    """EOF with not one byte of an answer: on a reused connection, the server had closed it."""


class LimitExceeded(ExchangeBroken):
    """The answer went past one of the client's bounds; the message names the bound and its value."""


def named(provider: str, message: str) -> str:
    """``message`` prefixed with the provider it is about (when known)."""
    return f"provider {provider!r}: {message}" if provider else message
