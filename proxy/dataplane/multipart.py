"""A client's multipart/form-data upload (``/v1/audio/transcriptions``, ``/v1/audio/translations``),
streamed to the provider as it arrives and never held whole.

Only the start of the body is read before dispatch: the parts up to the ``model`` field, at most
``MODEL_LOOKAHEAD`` bytes (SDKs send the form fields before the file; a file sent first is read past
only if it fits in the look-ahead). The bytes read so far are kept, with the ``model`` value's place in
them, so that each target gets the same body with its own upstream model name written in. The rest is
read from the client one chunk at a time while the provider takes it: ``server.max_upload_bytes`` bounds
the whole, ``server.body_timeout`` each wait for more. A body sent chunked (no Content-Length) is sent
to the provider chunked, and bounded as it arrives.

Bad input is the client's fault, answered 400 before anything is sent: not multipart, no boundary, no
``model`` part, a body that is not multipart at all.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import StreamReader, web

from proxy.errors import GatewayError, InvalidRequest, RequestTooLarge

MODEL_LOOKAHEAD = 256 * 1024  # bytes read at most to find the ``model`` part
HEAD_READ = 64 * 1024  # bytes asked for at a time while looking for it (the look-ahead stays exact)
MAX_PARTS_BEFORE_MODEL = 64  # form fields before ``model`` (each a few bytes; a flood is refused)
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,70})"|([^\s;,"]{1,70}))', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb'\bfilename="([^"]*)"', re.IGNORECASE)


class UploadBroken(InvalidRequest):
    """The client stopped sending its upload (it went away, or paused past ``server.body_timeout``)."""

    code = "upload_incomplete"


@dataclass(slots=True)
class _Found:
    model: str
    start: int  # the model value's place in the bytes read
    end: int
    filename: str | None  # the file part's name, when it was seen (its extension tells the format)
    more: bool = True  # the body goes on after what was read


class MultipartUpload:
    """The upload of one request: what was read to find ``model``, and the rest still in the socket.
    Implements the plugin contract's ``Upload``; ``for_model`` gives the one :class:`BodyStream` that
    can be sent (the rest of the body can be read only once)."""

    def __init__(
        self,
        request: web.Request,
        head: bytes,
        found: _Found,
        length: int | None,
        limit: int,
        idle: float,
    ) -> None:
        self.content_type = request.headers.get("Content-Type", "")
        self.model = found.model
        self.filename = found.filename or _filename(head[found.end :])
        self.length = length  # the client's body, in bytes (None: sent chunked, known at its end)
        self.limit = limit
        self.received = len(head)  # bytes of it read so far
        self.ended = not found.more
        self._request = request
        self._head = head
        self._found = found
        self._idle = idle
        self.started = False

    def for_model(self, model: str) -> _Body:
        found = self._found
        head = self._head[: found.start] + model.encode() + self._head[found.end :]
        length = None if self.length is None else self.length + len(head) - len(self._head)
        return _Body(self, head, length)

    async def rest(self) -> AsyncIterator[bytes]:
        """The body after the bytes already read, chunk by chunk as the client sends it."""
        content = self._request.content
        while not self.ended:
            chunk = await _read(content, -1, self._idle)
            if not chunk:
                if self.length is None:  # a chunked body's end
                    self.ended = True
                    return
                raise UploadBroken(f"The upload ended after {self.received} of its {self.length} bytes.")
            if self.received + len(chunk) > self.limit:
                raise RequestTooLarge(f"The upload is larger than the limit of {self.limit} bytes.")
            if self.filename is None and self.received < MODEL_LOOKAHEAD:
                named = _FILENAME.search(chunk)  # the file part's header, just after the fields
                if named is not None:
                    self.filename = named.group(1).decode("utf-8", "replace")
            self.received += len(chunk)
            self.ended = self.received == self.length
            yield chunk


class _Body:
    """The :class:`proxy.upstream.body.BodyStream` sent to one target."""

    def __init__(self, upload: MultipartUpload, head: bytes, length: int | None) -> None:
        self._upload = upload
        self._head = head
        self.length = length

    @property
    def started(self) -> bool:
        return self._upload.started

    async def chunks(self) -> AsyncIterator[bytes]:
        upload = self._upload
        if upload.started:
            raise RuntimeError("an upload can be sent only once")
        upload.started = True
        yield self._head
        async for chunk in upload.rest():
            yield chunk


async def open_upload(request: web.Request, limit: int, idle: float) -> MultipartUpload:
    """Read the upload up to its ``model`` field (see the module's docstring for the bounds)."""
    ctype = request.headers.get("Content-Type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise InvalidRequest("This endpoint takes multipart/form-data (a 'file' and a 'model' field).")
    match = _BOUNDARY.search(ctype)
    if match is None:
        raise InvalidRequest("The multipart/form-data Content-Type has no boundary.")
    boundary = (match.group(1) or match.group(2)).encode("latin-1")
    length = request.content_length  # None: sent chunked, bounded as it arrives
    if length is not None and length > limit:
        raise RequestTooLarge(f"The upload is {length} bytes; the limit is {limit} bytes.")
    head = bytearray()
    content = request.content
    ended = length == 0
    while True:
        found = _find_model(bytes(head), boundary, complete=ended)
        if found is not None:
            break
        window = MODEL_LOOKAHEAD if length is None else min(length, MODEL_LOOKAHEAD)
        if len(head) >= window:
            raise InvalidRequest(
                "'model' is required: no 'model' field within the first "
                f"{window} bytes of the form (send it before the file).",
                param="model",
            )
        chunk = await _read(content, min(HEAD_READ, window - len(head)), idle)
        if not chunk:
            if length is None and not ended:
                ended = True  # a chunked body ended within the look-ahead: it is all here
                continue
            raise UploadBroken(f"The upload ended after {len(head)} of its {length} bytes.")
        head += chunk
        ended = length is not None and len(head) >= length
    found.more = not ended
    return MultipartUpload(request, bytes(head), found, length, limit, idle)


async def _read(content: StreamReader, size: int, idle: float) -> bytes:
    """Up to ``size`` bytes of the client's body (-1: what has arrived), waiting at most ``idle``."""
    try:
        async with asyncio.timeout(idle or None):
            return await (content.readany() if size < 0 else content.read(size))
    except TimeoutError:
        raise UploadBroken(
            f"The upload stalled: no bytes for {idle:g} seconds (server.body_timeout)."
        ) from None
    except GatewayError:
        raise
    except Exception as exc:  # the client went away mid-body (aiohttp's payload errors, resets)
        raise UploadBroken(f"The upload was cut off ({type(exc).__name__}).") from None


def _filename(data: bytes) -> str | None:
    named = _FILENAME.search(data)
    return named.group(1).decode("utf-8", "replace") if named is not None else None


def _find_model(data: bytes, boundary: bytes, complete: bool) -> _Found | None:
    """The ``model`` field in the parts read so far; None while it may still come. Raises
    :class:`InvalidRequest` when the bytes cannot be multipart with this boundary."""
    delimiter = b"--" + boundary
    at = data.find(delimiter)
    if at < 0:
        if len(data) > len(delimiter) + 2 or complete:
            raise InvalidRequest("The body is not multipart/form-data: its boundary never appears.")
        return None
    filename: str | None = None
    pos = at + len(delimiter)
    for _ in range(MAX_PARTS_BEFORE_MODEL):
        if data[pos : pos + 2] == b"--":
            if complete or len(data) > pos + 2:
                raise InvalidRequest("'model' is required: the form has no 'model' field.", param="model")
            return None
        if len(data) < pos + 2:
            return None
        if data[pos : pos + 2] != b"\r\n":
            raise InvalidRequest("The body is not valid multipart/form-data (a part's delimiter is broken).")
        headers_end = data.find(b"\r\n\r\n", pos + 2)
        if headers_end < 0:
            if len(data) - pos > 16 * 1024:
                raise InvalidRequest(
                    "The body is not valid multipart/form-data (a part's headers never end)."
                )
            return None
        headers = data[pos + 2 : headers_end]
        name = _NAME.search(headers)
        start = headers_end + 4
        end = data.find(b"\r\n" + delimiter, start)
        file_match = _FILENAME.search(headers)
        if file_match is not None:
            filename = file_match.group(1).decode("utf-8", "replace")
        if name is not None and name.group(1) == b"model":
            if end < 0:
                if len(data) - start > 1024:
                    raise InvalidRequest("'model' must be a model name.", param="model")
                return None
            model = data[start:end].decode("utf-8", "replace")
            if not model or len(model) > 256 or not model.isprintable():
                raise InvalidRequest(
                    "'model' must be 1 to 256 printable characters (no control characters).",
                    param="model",
                )
            return _Found(model, start, end, filename)
        if end < 0:
            return None
        pos = end + 2 + len(delimiter)
    raise InvalidRequest(
        f"'model' must be among the first {MAX_PARTS_BEFORE_MODEL} form fields.", param="model"
    )
