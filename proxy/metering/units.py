"""Metering in an endpoint's own units: images, audio seconds, characters of speech input, searches.

The endpoints of :data:`proxy.plugin.UNIT_ENDPOINTS` are priced per unit where the price table has a unit
price (``per_image``, ``per_second``, ``per_million_characters``, ``per_search``), and per token where the
provider reports tokens (gpt-image-1, gpt-4o-transcribe, a rerank server's ``total_tokens``). Admission
reserves the worst case of both; settlement charges what the answer says (or what the request says:
speech is charged for the characters it was asked to read).

A model with no price at all is still served on these endpoints, at :data:`UNPRICED`, and its record is
flagged ``estimated: true`` (moderations excepted: they are free unless the table prices them). Audio
whose answer gives no duration is estimated from the upload's size at its format's usual bitrate
(:func:`audio_seconds`), flagged the same way.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from proxy.config import ReserveConfig
from proxy.metering import pricing
from proxy.metering.meter import Plan
from proxy.metering.pricing import TOKENS_PER_PRICE, Price, worst_case_micro_usd
from proxy.metering.reserve import DEFAULTS, MAX_PROMPT_ESTIMATE, Prompt
from proxy.plugin import Endpoint
from proxy.store.base import Scope

UNPRICED = pricing.UNPRICED  # a unit endpoint's model no price source knows (price_source: none)

# The unit each endpoint is counted in (the record's ``unit``); moderations have none.
UNIT_OF = {
    Endpoint.IMAGES: "image",
    Endpoint.SPEECH: "character",
    Endpoint.TRANSCRIPTIONS: "second",
    Endpoint.TRANSLATIONS: "second",
    Endpoint.RERANK: "search",
}

# Bytes per second of audio at each format's usual bitrate, for an answer that gives no duration.
BYTES_PER_SECOND = {
    "mp3": 16_000,  # 128 kbit/s
    "mpga": 16_000,
    "mpeg": 16_000,
    "m4a": 16_000,
    "mp4": 16_000,
    "aac": 16_000,
    "ogg": 8_000,  # Opus/Vorbis voice at 64 kbit/s
    "opus": 8_000,
    "webm": 8_000,
    "flac": 88_200,  # about half of 16-bit 44.1 kHz stereo
    "wav": 32_000,  # 16-bit 16 kHz mono, what speech recorders write
}
DEFAULT_BYTES_PER_SECOND = 16_000
# The lowest bitrate a speech upload is likely to have: admission reserves an upload's seconds at it, so
# that the reservation is never short of the estimate.
MIN_BYTES_PER_SECOND = 2_000  # 16 kbit/s


def audio_seconds(size: int, filename: str | None) -> int:
    """Seconds of audio in ``size`` bytes of a file named ``filename``, at its format's usual bitrate."""
    suffix = PurePosixPath(filename).suffix.lower().lstrip(".") if filename else ""
    rate = BYTES_PER_SECOND.get(suffix, DEFAULT_BYTES_PER_SECOND)
    return max(1, -(-size // rate))


def worst_units(endpoint: Endpoint, body: dict[str, object], upload_bytes: int) -> int:
    """The most units the request can cost, from the request alone."""
    if endpoint is Endpoint.IMAGES:
        n = body.get("n")
        return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    if endpoint is Endpoint.SPEECH:
        text = body.get("input")
        return len(text) if isinstance(text, str) else 0
    if endpoint is Endpoint.RERANK:
        return 1
    if endpoint in (Endpoint.TRANSCRIPTIONS, Endpoint.TRANSLATIONS):
        return max(1, -(-upload_bytes // MIN_BYTES_PER_SECOND))
    return 0


def unit_plan(
    scopes: tuple[Scope, ...],
    prompt: Prompt,
    units: int,
    prices: list[Price],
    reserve: ReserveConfig = DEFAULTS,
) -> Plan:
    """The reservation of a unit endpoint: the text sent (the prompt, the speech input, the query) as
    tokens, and ``units`` at the dearest candidate's unit price; no output tokens (a transcription's
    text is priced by its audio seconds, or by its tokens when the provider reports them)."""
    tokens = prompt.reserve(reserve.image_tokens, MAX_PROMPT_ESTIMATE)
    cost = 0
    for price in prices:
        per_units = -(-units * price.per_million_units // TOKENS_PER_PRICE)
        cost = max(cost, worst_case_micro_usd(tokens, 0, price) + per_units)
    return Plan(scopes, tokens, 0, cost, prompt, reserve.image_tokens, MAX_PROMPT_ESTIMATE)
