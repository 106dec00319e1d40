"""The stream tap: upstream bytes in, client bytes out, one read at a time.

It parses each read into SSE events (:mod:`proxy.upstream.sse`) and lets the provider's :class:`StreamReader`
say what becomes of each: relayed verbatim, translated, or dropped. The reader meanwhile records usage,
errors and the end marker. Dispatch uses the tap to look at a stream's first event before committing;
the relay uses the same tap for the rest, so one code path decides what the client receives.

An error event is never passed on as it came: the tap keeps the reader's error in ``error`` with the
provider keys of the call (``secrets``) masked (:mod:`proxy.tenancy.redaction`), and the client gets that.
"""

from __future__ import annotations

from proxy.plugin import StreamReader, UpstreamError, Usage
from proxy.tenancy.redaction import redact_error
from proxy.upstream.sse import SSEParser


class StreamTap:
    __slots__ = ("error", "events", "parser", "reader", "secrets")

    def __init__(self, reader: StreamReader, secrets: tuple[str | None, ...] = ()) -> None:
        self.reader = reader
        self.parser = SSEParser()
        self.events = 0  # data events passed to the client
        self.secrets = secrets  # the provider keys the call sent: masked in ``error``
        self.error: UpstreamError | None = None  # the provider's error event, redacted; the stream stops

    def feed(self, chunk: bytes) -> bytes:
        """The bytes the client gets for this read. Stops at an error event (see ``error``)."""
        reader = self.reader
        out: list[bytes] = []
        for event in self.parser.feed(chunk):
            piece = reader.on_event(event)
            if reader.error is not None:
                self.error = redact_error(reader.error, self.secrets)
                break
            if piece:
                out.append(piece)
                if event.data is not None:
                    self.events += 1
        return b"".join(out)

    def close(self) -> bool:
        """End of the upstream body; True when it stopped in the middle of an event."""
        return self.parser.close()

    @property
    def usage(self) -> Usage | None:
        return self.reader.usage

    @property
    def finished(self) -> bool:
        return self.reader.finished
