"""The vault: tenants' own provider keys (BYOK), encrypted at rest with AES-256-GCM.

A sealed key is ``(kid, blob)``: ``kid`` names the master key that sealed it (a short hash of that key,
never a piece of it) and ``blob`` is ``nonce (12 bytes) || ciphertext+tag``. The associated data binds
the tenant and the provider, so a blob copied to another tenant or provider fails authentication instead
of decrypting into someone else's key.

``secrets.master_keys`` (urlsafe base64 of 32 bytes each): the first seals, every one opens. Rotation is
``efflux-gateway vault rewrap``: prepend a new key to the list, roll the replicas, rewrap (each blob is
re-sealed with the first key; replicas open either kid meanwhile), then drop the old key.

``check_secrets`` is the startup check of every server secret: it names the setting, never the value.
(A key a provider echoes back in an error message is masked by :mod:`proxy.tenancy.redaction`.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from proxy.config import ConfigError, Settings

KEY_BYTES = 32
NONCE_BYTES = 12
MIN_KEY_SECRET_BYTES = 32
_AAD_LABEL = b"efflux-vault/v1"


class VaultError(Exception):
    """A blob that cannot be opened here: unknown kid, wrong tenant/provider, or tampered with."""


class VaultNotConfigured(VaultError):
    """No ``secrets.master_keys``: provider keys cannot be stored."""


@dataclass(frozen=True, slots=True)
class Sealed:
    kid: str
    blob: bytes


def key_id(master_key: bytes) -> str:
    # A domain-separated hash: the id identifies a key in logs and docs without revealing any of it.
    return hashlib.sha256(b"efflux-vault-kid:" + master_key).hexdigest()[:12]


def decode_master_key(text: str, where: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ConfigError(
            f"{where}: not urlsafe base64 (generate one with 'efflux-gateway vault genkey')"
        ) from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(
            f"{where}: must be {KEY_BYTES} bytes of urlsafe base64, got {len(raw)} "
            "(generate one with 'efflux-gateway vault genkey')"
        )
    return raw


def _aad(tenant: str, provider: str) -> bytes:
    # JSON keeps the two names unambiguous ("a:b" + "c" never equals "a" + "b:c").
    return _AAD_LABEL + orjson.dumps([tenant, provider])


class Vault:
    def __init__(self, master_keys: list[bytes]) -> None:
        self._keys = {key_id(k): AESGCM(k) for k in master_keys}
        self.current = key_id(master_keys[0]) if master_keys else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls(
            [
                decode_master_key(text, f"secrets.master_keys[{i}]")
                for i, text in enumerate(settings.secrets.master_keys)
            ]
        )

    @property
    def configured(self) -> bool:
        return self.current is not None

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def seal(self, tenant: str, provider: str, secret: str) -> Sealed:
        if self.current is None:
            raise VaultNotConfigured("the vault has no master key (set secrets.master_keys)")
        nonce = os.urandom(NONCE_BYTES)
        blob = self._keys[self.current].encrypt(nonce, secret.encode(), _aad(tenant, provider))
        return Sealed(self.current, nonce + blob)

    def open(self, tenant: str, provider: str, sealed: Sealed) -> str:
        aead = self._keys.get(sealed.kid)
        if aead is None:
            raise VaultError(f"sealed with master key {sealed.kid}, which is not in secrets.master_keys")
        try:
            plain = aead.decrypt(sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:], _aad(tenant, provider))
        except InvalidTag:
            raise VaultError("the ciphertext does not belong to this tenant and provider") from None
        return plain.decode()

    def rewrap(self, tenant: str, provider: str, sealed: Sealed) -> Sealed | None:
        """The same secret sealed with the current key, or None when it already is."""
        if sealed.kid == self.current:
            return None
        return self.seal(tenant, provider, self.open(tenant, provider, sealed))


def check_secrets(settings: Settings) -> None:
    """Refuse secrets that cannot protect anything. Raises ConfigError naming the setting, never its value.

    ``secrets.key_secret`` digests virtual keys. It is required with the Redis store when the admin API
    is on: keys created there are stored as digests that every replica, and the next start, must
    reproduce. Unset with the memory store, a random per-process secret is used (API keys die with it).
    """
    problems: list[str] = []
    masters: list[bytes] = []
    for i, text in enumerate(settings.secrets.master_keys):
        try:
            key = decode_master_key(text, f"secrets.master_keys[{i}]")
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if key in masters:
            problems.append(f"secrets.master_keys[{i}]: the same key is listed twice")
        masters.append(key)
    secret = settings.secrets.key_secret
    if secret is None or secret == "":
        if settings.store.backend == "redis" and settings.server.admin_token:
            problems.append(
                "secrets.key_secret: required with the redis store and the admin API (keys created through "
                "the API are stored as digests under it); set it to 32+ random bytes, e.g. from "
                "'efflux-gateway vault genkey'"
            )
    else:
        raw = secret.encode()
        if len(raw) < MIN_KEY_SECRET_BYTES:
            problems.append(f"secrets.key_secret: too short (at least {MIN_KEY_SECRET_BYTES} bytes)")
        if any(
            raw == text.encode() or raw.strip() == text.strip().encode()
            for text in settings.secrets.master_keys
        ):
            problems.append("secrets.key_secret: must differ from every secrets.master_keys entry")
        admin = settings.server.admin_token
        if admin and admin == secret:
            problems.append("secrets.key_secret: must differ from server.admin_token")
    if problems:
        raise ConfigError("\n".join(problems))
