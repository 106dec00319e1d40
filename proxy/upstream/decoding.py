"""A provider answer's content coding (gzip, deflate), undone in bounded steps.

A compressed body is never inflated in one call: each ``decompress`` produces at most ``INFLATE_STEP``
bytes, and the bytes produced so far are held to ``ratio`` times the bytes received once past
``RATIO_FLOOR`` (tiny bodies compress well), so a 1 MB bomb that would inflate to 1 GiB stops early.
"""

from __future__ import annotations

import zlib

from proxy.upstream.egress import RATIO_FLOOR

INFLATE_STEP = 256 * 1024  # most bytes one decompress call may produce


class DecodingFailed(Exception):
    """The body cannot be decoded; ``exceeded`` when it broke the ratio bound rather than being corrupt."""

    def __init__(self, message: str, exceeded: bool = False) -> None:
        super().__init__(message)
        self.exceeded = exceeded


class Inflater:
    __slots__ = ("_decoder", "inflated", "ratio")

    def __init__(self, wbits: int, ratio: float) -> None:
        self._decoder = zlib.decompressobj(wbits=wbits)
        self.inflated = 0
        self.ratio = ratio

    @property
    def ended(self) -> bool:
        """Whether the compressed stream reached its end (a body cut short did not)."""
        return self._decoder.eof

    def inflate(self, data: bytes, received: int, out: list[bytes]) -> int:
        """Appends the decoded pieces of ``data`` to ``out``, returns their size; ``received``: the bytes
        read from the socket so far (the ratio's denominator)."""
        decoder = self._decoder
        produced = 0
        try:
            while data:
                piece = decoder.decompress(data, INFLATE_STEP)
                data = decoder.unconsumed_tail
                if piece:
                    self.inflated += len(piece)
                    if self.inflated > RATIO_FLOOR and self.inflated > self.ratio * received:
                        raise DecodingFailed(
                            f"the compressed body inflates more than max_decompression_ratio ({self.ratio})",
                            exceeded=True,
                        )
                    out.append(piece)
                    produced += len(piece)
                if decoder.eof:
                    break
        except zlib.error:
            raise DecodingFailed("the provider's compressed body is corrupt") from None
        return produced


def inflater_for(encoding: str, ratio: float) -> Inflater | None:
    """The decoder for a ``Content-Encoding`` (lower-cased), None for identity; ValueError for others."""
    if encoding in ("gzip", "x-gzip"):
        return Inflater(31, ratio)
    if encoding == "deflate":
        return Inflater(47, ratio)  # zlib-wrapped or gzip, detected
    if encoding == "identity":
        return None
    raise ValueError(encoding)
