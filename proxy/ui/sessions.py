"""Dashboard sessions: what a login cookie stands for, kept server-side in the store.

The cookie is ``<session id>.<cookie key>`` (both random, urlsafe base64). The store holds, under
``sha256(session id)``, the session's kind (``admin`` or ``tenant``), its CSRF token and expiry and, for a
tenant session, the virtual key sealed with AES-256-GCM under the cookie key. So:

- the store (Redis in production) never holds a secret in plain text: a virtual key is only readable with
  the cookie, and an admin session holds nothing secret at all (the bridge adds the configured token);
- the cookie alone is useless once the session is deleted (logout) or expired;
- sessions live in the store like every other shared state, so any replica or worker serves them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from proxy.store.base import Store

KIND = "ui_sessions"  # the store document kind (not a snapshot layer: nothing serves from it)
COOKIE = "efflux_ui"
LIFETIME = 8 * 3600.0  # seconds; a session is never extended, the operator logs in again


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    kind: str  # "admin" | "tenant"
    csrf: str
    expires_at: float
    label: str  # what the page header shows: "admin", or "<key name> (tenant <tenant>)"
    secret: str | None = None  # the virtual key of a tenant session (decrypted; never stored so)


def _doc_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def create(store: Store, kind: str, label: str, secret: str | None = None) -> tuple[str, Session]:
    """Store a new session; returns the cookie value and the session."""
    session_id, cookie_key = secrets.token_bytes(32), secrets.token_bytes(32)
    session = Session(kind, secrets.token_urlsafe(32), time.time() + LIFETIME, label, secret)
    doc: dict[str, object] = {
        "kind": kind,
        "csrf": session.csrf,
        "expires_at": session.expires_at,
        "label": label,
    }
    if secret is not None:
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(cookie_key).encrypt(nonce, secret.encode(), _b64(session_id).encode())
        doc["sealed"] = _b64(nonce + sealed)
    await store.put_doc(KIND, _doc_id(_b64(session_id)), orjson.dumps(doc))
    await _sweep(store)
    return f"{_b64(session_id)}.{_b64(cookie_key)}", session


async def load(store: Store, cookie: str | None) -> Session | None:
    """The live session a cookie stands for, or None (unknown, expired, tampered)."""
    if not cookie or cookie.count(".") != 1:
        return None
    session_id, key_text = cookie.split(".")
    try:
        cookie_key = _unb64(key_text)
    except ValueError:
        return None
    raw = await store.get_doc(KIND, _doc_id(session_id))
    if raw is None:
        return None
    doc = orjson.loads(raw)
    if doc["expires_at"] <= time.time():
        await store.delete_doc(KIND, _doc_id(session_id))
        return None
    secret: str | None = None
    if "sealed" in doc:
        blob = _unb64(doc["sealed"])
        try:
            secret = AESGCM(cookie_key).decrypt(blob[:12], blob[12:], session_id.encode()).decode()
        except (InvalidTag, ValueError):
            return None
    return Session(doc["kind"], doc["csrf"], doc["expires_at"], doc["label"], secret)


async def delete(store: Store, cookie: str | None) -> None:
    if cookie and cookie.count(".") == 1:
        await store.delete_doc(KIND, _doc_id(cookie.split(".")[0]))


async def _sweep(store: Store) -> None:
    """Drop expired sessions (at each login: logins are rare, so this stays cheap)."""
    now = time.time()
    for doc_id, raw in (await store.list_docs(KIND)).items():
        if orjson.loads(raw).get("expires_at", 0) <= now:
            await store.delete_doc(KIND, doc_id)
