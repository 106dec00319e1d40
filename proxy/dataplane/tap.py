"""The stream tap: upstream bytes in, client bytes out, one read at a time.

It parses each read into SSE events (:mod:`proxy.upstream.sse`) and lets the provider's :class:`StreamReader`
say what becomes of each: relayed verbatim, translated, or dropped. The reader meanwhile records usage,
errors and the end marker. Dispatch uses the tap to look at a stream's first event before committing;
the relay uses the same tap for the rest, so one code path decides what the client receives.

A read costs time in proportion to its own size: the parser never rescans earlier reads, and the bytes
for the client are joined once per read. An event past ``max_event_bytes`` (``server.max_sse_event_bytes``)
ends the stream with a server-fault ``error``: before the first event dispatch falls back or answers 502,
after it the relay sends an error event; either way the upstream connection is closed, not reused.

A stream that is not SSE (Bedrock's binary event stream) comes with the plugin's
:class:`~proxy.plugin.StreamDecoder`: each read goes through it first and becomes chat SSE bytes, which then
take the same path (so a reader wrapped around the plugin's, such as an endpoint's translation, works
unchanged). Its frames are bounded by the same ``max_event_bytes``; without a decoder the SSE path pays
one attribute test per read.

An error event is never passed on as it came: the tap keeps the reader's error in ``error`` with the
provider keys of the call (``secrets``) masked (:mod:`proxy.tenancy.redaction`), and the client gets that.
"""

from __future__ import annotations

from proxy.plugin import Fault, StreamDecoder, StreamReader, UpstreamError, Usage
from proxy.tenancy.redaction import redact_error
from proxy.upstream.sse import DEFAULT_MAX_EVENT_BYTES, EventTooLarge, SSEEvent, SSEParser

_DONE = SSEEvent(b"", b"[DONE]")  # the end marker, told to the reader when the stream cut its blank line


class StreamTap:
    __slots__ = ("decoder", "error", "events", "parser", "reader", "secrets")

    def __init__(
        self,
        reader: StreamReader,
        secrets: tuple[str | None, ...] = (),
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        decoder: StreamDecoder | None = None,
    ) -> None:
        self.reader = reader
        self.parser = SSEParser(max_event_bytes)
        self.events = 0  # data events passed to the client
        self.secrets = secrets  # the provider keys the call sent: masked in ``error``
        # The provider's error event (redacted), or the stream's own failure (an event past the bound).
        self.error: UpstreamError | None = None
        self.decoder = decoder  # what turns a stream that is not SSE into SSE first (None: it is SSE)
        if decoder is not None:
            decoder.max_frame_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> bytes:
        """The bytes the client gets for this read. Stops at an error (see ``error``)."""
        decoder = self.decoder
        if decoder is not None:
            chunk = decoder.feed(chunk)
        too_large: EventTooLarge | None = None
        try:
            events = self.parser.feed(chunk)
        except EventTooLarge as exc:
            events, too_large = exc.events, exc
        out = self._relay(events)
        if too_large is not None and not self.reader.finished and self.error is None:
            self.error = UpstreamError(
                502,
                Fault.SERVER,
                f"the provider sent an event larger than {too_large.limit} bytes"
                " (server.max_sse_event_bytes)",
            )
        if (
            decoder is not None
            and decoder.error is not None
            and self.error is None
            and not self.reader.finished
        ):
            self.error = redact_error(decoder.error, self.secrets)
        return out

    def _relay(self, events: list[SSEEvent]) -> bytes:
        reader = self.reader
        out: list[bytes] = []
        for event in events:
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
        """End of the upstream body; True when it stopped in the middle of an event. A ``[DONE]`` that
        lost only its blank line still ends the answer: the reader is told (nothing more is relayed)."""
        cut = self.decoder.close() if self.decoder is not None else False
        if self.parser.ends_with_done():
            self.reader.on_event(_DONE)
        return self.parser.close() or cut

    @property
    def usage(self) -> Usage | None:
        return self.reader.usage

    @property
    def output_chars(self) -> int:
        """Characters of text and tool-call arguments the provider sent (the reader counts them)."""
        return self.reader.counted_output()

    @property
    def finished(self) -> bool:
        return self.reader.finished
