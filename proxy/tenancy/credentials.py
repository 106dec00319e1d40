"""Tenants' own provider keys as credentials: what a key must be to be stored, and the id it is known by.

A key is sent in an HTTP header (``Authorization: Bearer <key>``, ``x-api-key: <key>``), so it must be
one header token: printable ASCII without whitespace, of a sane length. A key with CR/LF, a space or
a non-ASCII character could never be sent; it is refused when stored instead of failing every request.

Breakers and ``Retry-After`` cool-downs are kept per credential (:mod:`proxy.routing.breaker`): the shared
key of a provider is the credential ``""``; a tenant's own key is ``<tenant>:<12 hex>``, a domain-separated
hash of the key. The id names the tenant in the admin view and changes when the tenant replaces its
key (a new key starts with a closed breaker), and it reveals nothing of the key: it is what the admin
view and logs see, never the secret.
"""

from __future__ import annotations

import hashlib

MIN_KEY_LENGTH = 8
MAX_KEY_LENGTH = 4096
_PRINTABLE = frozenset(range(0x21, 0x7F))  # visible ASCII: no space, tab, CR, LF or other control


def check_provider_key(secret: str) -> str:
    """``secret`` if it can be sent as a provider key; ValueError saying why not (never quoting it)."""
    if not MIN_KEY_LENGTH <= len(secret) <= MAX_KEY_LENGTH:
        raise ValueError(f"must be {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} characters long")
    if not secret.isascii() or not _PRINTABLE.issuperset(secret.encode("ascii")):
        raise ValueError(
            "must be printable ASCII without spaces, tabs or line breaks (it is sent in an HTTP header)"
        )
    return secret


def credential_id(tenant: str, secret: str) -> str:
    """The non-secret id of ``tenant``'s own key ``secret`` (breakers and cool-downs are keyed by it)."""
    digest = hashlib.sha256(b"efflux-credential:" + secret.encode()).hexdigest()
    return f"{tenant}:{digest[:12]}"
