"""How many tokens a prompt may be billed, read from the request body once, before admission.

A body's bytes say nothing of what its media parts cost: a provider bills an image by its pixels (a
1 kB data URL and a 1 MB photo can cost the same), so media parts are reserved at their worst case:

- ``image_url``: ``image_tokens`` per part (``metering.reserve.image_tokens``, or the model's own
  ``pricing.models.<name>.image_tokens``), whatever the size of the URL or data;
- ``input_audio``: its base64 data at ``audio_bytes_per_token``;
- ``file``: its ``file_data`` at ``file_bytes_per_token``; a file known only by ``file_id`` may be any
  size, so it reserves the whole context (the tightest candidate's ``context_length``, else
  ``MAX_PROMPT_ESTIMATE``).

Everything else in the body (text, tool definitions, JSON syntax) is counted by its bytes at
``TEXT_BYTES_PER_TOKEN``, a high guess (English runs at ~4 bytes per token, CJK at ~3). That is the one
part that is not a bound: a token covers at least one byte, so text can be billed at most
``TEXT_BYTES_PER_TOKEN`` times its reservation (README "Budgets" states the resulting overshoot).
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.config import ReserveConfig
from proxy.plugin import JSONObject

TEXT_BYTES_PER_TOKEN = 3  # what admission reserves: bytes of text per token
ESTIMATE_BYTES_PER_TOKEN = 4  # what an estimate charges when the provider reported no usage
MAX_PROMPT_ESTIMATE = 1_000_000  # the ceiling when no candidate declares a context length

DEFAULTS = ReserveConfig()
IMAGE_TOKENS = DEFAULTS.image_tokens
AUDIO_BYTES_PER_TOKEN = DEFAULTS.audio_bytes_per_token
FILE_BYTES_PER_TOKEN = DEFAULTS.file_bytes_per_token


# Not frozen, though never changed: one per request (see proxy.store.records.UsageRecord).
@dataclass(slots=True)
class Prompt:
    """A prompt as admission sees it: text bytes, image parts, audio and files' tokens."""

    text_bytes: int
    images: int = 0
    media_tokens: int = 0  # audio and files with their data, by size
    unbounded: bool = False  # a file known only by id: nothing bounds it but the context

    def reserve(self, image_tokens: int, ceiling: int) -> int:
        """The most this prompt may be billed (text at TEXT_BYTES_PER_TOKEN), capped at ``ceiling``."""
        return self._tokens(TEXT_BYTES_PER_TOKEN, image_tokens, ceiling)

    def estimate(self, image_tokens: int, ceiling: int) -> int:
        """What an estimated record charges for this prompt: text at ESTIMATE_BYTES_PER_TOKEN, media
        parts at their reservation."""
        return self._tokens(ESTIMATE_BYTES_PER_TOKEN, image_tokens, ceiling)

    def _tokens(self, text_bytes_per_token: int, image_tokens: int, ceiling: int) -> int:
        if self.unbounded:
            return ceiling
        text = self.text_bytes // text_bytes_per_token + 1
        return min(text + self.images * image_tokens + self.media_tokens, ceiling)


def measure(obj: JSONObject, size: int, settings: ReserveConfig) -> Prompt:
    """Read the media parts of a chat body's messages, of a Responses body's input items (``input_image``,
    ``input_file``) or of an Anthropic Messages body's (``image`` and ``document`` blocks): the same worst
    cases; ``size``: the body's bytes. Other endpoints' bodies are text only."""
    messages = obj.get("messages")
    if type(messages) is not list:
        messages = obj.get("input")
        if type(messages) is not list:
            return Prompt(size)
    media_bytes = images = media_tokens = 0
    unbounded = False
    for message in messages:
        content = message.get("content") if type(message) is dict else None
        if type(content) is not list:
            continue  # a plain string: text
        for part in content:
            kind = part.get("type") if type(part) is dict else None
            if kind is None or kind == "text":
                continue
            if kind == "image_url":
                images += 1
                media_bytes += _length(part.get("image_url"), "url")
            elif kind == "input_audio":
                data = _length(part.get("input_audio"), "data")
                media_bytes += data
                media_tokens += -(-data // settings.audio_bytes_per_token)
            elif kind == "file" or kind == "input_file":
                data = _length(part.get("file") if kind == "file" else part, "file_data")
                if data:
                    media_bytes += data
                    media_tokens += -(-data // settings.file_bytes_per_token)
                else:
                    unbounded = True
            elif kind == "input_image":  # by URL, data URL or file id: any of them is one image
                images += 1
                media_bytes += _length(part, "image_url")
            elif kind == "image":  # Anthropic's image block (/v1/messages): the same worst case
                images += 1
                media_bytes += _source_length(part)
            elif kind == "document":  # Anthropic's document block: a file by its data; by URL, any size
                source = part.get("source")
                data = _length(source, "data")
                if data:
                    media_bytes += data
                    media_tokens += -(-data // settings.file_bytes_per_token)
                elif type(source) is dict and source.get("type") == "url":
                    unbounded = True
    return Prompt(max(0, size - media_bytes), images, media_tokens, unbounded)


def _length(container: object, key: str) -> int:
    """Characters of the payload string (base64 and URLs are ASCII: bytes); 0 when there is none.
    Some clients send ``image_url`` as the URL string itself."""
    if type(container) is str:
        return len(container)
    value = container.get(key) if type(container) is dict else None
    return len(value) if type(value) is str else 0


def _source_length(block: JSONObject) -> int:
    """Characters of an Anthropic image block's ``source`` payload (base64 ``data`` or a ``url``)."""
    source = block.get("source")
    return (_length(source, "data") or _length(source, "url")) if type(source) is dict else 0
