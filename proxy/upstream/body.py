"""A request body sent as it arrives (a client's upload), instead of bytes held whole.

The client writes each chunk as the source yields it and waits for the socket to drain before asking for
the next, so the gateway holds at most a chunk or two of an upload however large it is, and a provider
that reads slowly slows the client down (TCP back-pressure end to end).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class BodyStream(Protocol):
    """``length`` bytes (None: not known in advance; the body is then sent chunked), yielded by
    ``chunks()`` (once: a stream cannot be replayed). ``started`` tells whether any of it has been taken,
    after which another attempt cannot send it again."""

    @property
    def length(self) -> int | None: ...

    @property
    def started(self) -> bool: ...

    def chunks(self) -> AsyncIterator[bytes]: ...
