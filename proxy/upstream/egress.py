"""How the client reaches one provider and how much it takes from it: built once per provider when the
config is loaded (the TLS context reads files: never on the loop mid-serving), then read per request.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from proxy.upstream.proxy import EgressProxy

MAX_HEAD_BYTES = 64 * 1024  # status line and headers, 1xx answers included
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # a non-stream body, decoded: big embedding batches fit
MAX_INFORMATIONAL = 10  # 1xx answers (100 Continue, 103 Early Hints) before the real one
MAX_DECOMPRESSION_RATIO = 100  # decoded bytes per byte on the wire, checked past RATIO_FLOOR
RATIO_FLOOR = 1024 * 1024  # decoded bytes before the ratio is checked (tiny bodies compress well)


@dataclass(slots=True)
class Egress:
    """One provider's way out. ``proxy`` None: the environment's (``HTTPS_PROXY`` ...) decides;
    ``ssl`` None: the client's default context (the system's CA store)."""

    provider: str = ""  # named in every error
    proxy: EgressProxy | None = None
    ssl: ssl.SSLContext | None = None
    max_head_bytes: int = MAX_HEAD_BYTES
    max_response_bytes: int = MAX_RESPONSE_BYTES
    max_informational: int = MAX_INFORMATIONAL
    max_decompression_ratio: int = MAX_DECOMPRESSION_RATIO


DEFAULT_EGRESS = Egress()
