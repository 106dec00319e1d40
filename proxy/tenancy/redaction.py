"""Redaction: the one function that masks provider keys in upstream text the gateway relays or logs.

Providers quote the key they were sent in their error messages, whole (``Incorrect API key provided:
sk-...``) or cut (``sk-proj-abc...wxyz``, ``...9f2Qz7Lm``). For each secret given, ``redact`` masks:

- every occurrence of the whole secret, for a secret of ``MIN_SECRET`` (8) characters or more;
- for a secret of ``CUT_FROM`` (16) characters or more, every run of ``PIECE`` (8) or more characters
  that is how the secret starts or how it ends: what a cut quote keeps.

Each masked run becomes ``[redacted]``. Text that merely shares characters with a secret (an ordinary word
or number that happens to sit inside a key) is left as it is; so is a piece from the middle of a key
quoted alone (no provider quotes keys so), and the few characters (under 8) a cut quote keeps of an end.
A secret under 8 characters cannot be told from ordinary text and is not masked (tenants' own keys are
at least 8 long: :mod:`proxy.tenancy.credentials`).

It is used for every upstream error that reaches a client or a log: JSON and HTML error answers and an
error event in a stream (:mod:`proxy.dataplane.dispatch`, :mod:`proxy.dataplane.tap`), and the attempt
descriptions of a failure. Only error paths pay for it, never a relayed chunk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from proxy.plugin import UpstreamError

MASK = "[redacted]"
MIN_SECRET = 8
PIECE = 8
CUT_FROM = 16


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each secret of ``secrets`` (and each start or end of one, see above) masked."""
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET:
            continue
        if len(secret) < CUT_FROM:
            _whole(text, secret, spans)
        else:
            _starts(text, secret, spans)
            _ends(text, secret, spans)
    if not spans:
        return text
    runs: list[list[int]] = []  # overlapping or touching spans merged: one mask each
    for start, end in sorted(spans):
        if runs and start <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    out: list[str] = []
    done = 0
    for start, end in runs:
        out += (text[done:start], MASK)
        done = end
    out.append(text[done:])
    return "".join(out)


def redact_error(error: UpstreamError, secrets: Iterable[str | None]) -> UpstreamError:
    """``error`` with its message redacted (the same object when nothing was masked)."""
    message = redact(error.message, secrets)
    return error if message is error.message else dataclasses.replace(error, message=message)


def _whole(text: str, secret: str, spans: list[tuple[int, int]]) -> None:
    at = text.find(secret)
    while at >= 0:
        spans.append((at, at + len(secret)))
        at = text.find(secret, at + len(secret))


def _starts(text: str, secret: str, spans: list[tuple[int, int]]) -> None:
    """Runs of text that are the first ``PIECE`` or more characters of ``secret``."""
    head = secret[:PIECE]
    at = text.find(head)
    while at >= 0:
        end, k = at + PIECE, PIECE
        while end < len(text) and k < len(secret) and text[end] == secret[k]:
            end, k = end + 1, k + 1
        spans.append((at, end))
        at = text.find(head, end)


def _ends(text: str, secret: str, spans: list[tuple[int, int]]) -> None:
    """Runs of text that are the last ``PIECE`` or more characters of ``secret``."""
    tail = secret[-PIECE:]
    at = text.find(tail)
    while at >= 0:
        start, k = at, len(secret) - PIECE - 1
        while start > 0 and k >= 0 and text[start - 1] == secret[k]:
            start, k = start - 1, k - 1
        spans.append((start, at + PIECE))
        at = text.find(tail, at + 1)
