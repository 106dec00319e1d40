"""one-api / new-api resellers: OpenAI's wire format behind a reseller's own host (``base_url`` is
required), with their error habits.

- Some errors come with HTTP 200 and an ``{"error": {...}}`` body; the code says which status it stands
  for (oneapi/one-api-retrieve-model-not-found-http200.json). The shared reader handles it.
- ``code`` may be an empty string (oneapi/new-api-401-invalid-token.json) and a request id is appended to
  the message (" (request id: ...)"), kept for the operator's support ticket.
- Quota exhaustion of the gateway's account at the reseller is a 403 with ``insufficient_user_quota``
  (oneapi/new-api-403-insufficient-quota.json): not the caller's fault, so it is a server fault (429) and
  the next target is tried. ``model_not_found`` with 503 (no channel for the model) is a server fault too.
"""

from __future__ import annotations

import dataclasses

from plugins.openai_compatible import OpenAICompatible
from proxy.plugin import Endpoint, Fault, ProviderType, UpstreamError

# The reseller's codes that are the gateway account's trouble, not the caller's: (status, fault).
_ACCOUNT_CODES = {"insufficient_user_quota": (429, Fault.SERVER), "insufficient_quota": (429, Fault.SERVER)}


class NewAPI(OpenAICompatible):
    plugin_name = "newapi"
    requires_key = True
    provider_type = ProviderType.AGGREGATOR
    default_base_url = ""  # every reseller has its own host
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})

    def refine(self, error: UpstreamError, body: object) -> UpstreamError:
        account = _ACCOUNT_CODES.get(error.code or "")
        if account is None:
            return error
        status, fault = account
        return dataclasses.replace(error, status=status, fault=fault)


Plugin = NewAPI
