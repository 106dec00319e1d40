"""The vault: AES-256-GCM with a key id per ciphertext and tenant/provider bound as associated data."""

from __future__ import annotations

import base64
import os

import pytest

from proxy.config import ConfigError, parse_settings
from proxy.tenancy.vault import Sealed, Vault, VaultError, VaultNotConfigured, check_secrets, key_id


def master() -> bytes:
    return os.urandom(32)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_round_trip_and_key_id_in_every_ciphertext() -> None:
    key = master()
    vault = Vault([key])
    sealed = vault.seal("acme", "openai", "sk-secret-value")
    assert sealed.kid == key_id(key) and vault.current == sealed.kid
    assert b"sk-secret-value" not in sealed.blob
    assert vault.open("acme", "openai", sealed) == "sk-secret-value"
    # A fresh nonce each time: the same secret never seals to the same bytes.
    assert vault.seal("acme", "openai", "sk-secret-value").blob != sealed.blob


@pytest.mark.parametrize(
    ("tenant", "provider"), [("globex", "openai"), ("acme", "anthropic"), ("acm", "eopenai")]
)
def test_a_ciphertext_moved_to_another_tenant_or_provider_fails(tenant: str, provider: str) -> None:
    vault = Vault([master()])
    sealed = vault.seal("acme", "openai", "sk-secret-value")
    with pytest.raises(VaultError):
        vault.open(tenant, provider, sealed)


def test_tampered_blob_and_unknown_kid_fail() -> None:
    vault = Vault([master()])
    sealed = vault.seal("acme", "openai", "sk")
    flipped = bytes([sealed.blob[0]]) + bytes([sealed.blob[1] ^ 1]) + sealed.blob[2:]
    with pytest.raises(VaultError):
        vault.open("acme", "openai", Sealed(sealed.kid, flipped))
    with pytest.raises(VaultError):
        Vault([master()]).open("acme", "openai", sealed)


def test_first_key_seals_all_keys_open_and_rewrap_moves_to_the_first() -> None:
    old, new = master(), master()
    sealed_old = Vault([old]).seal("acme", "openai", "sk-1")
    rotated = Vault([new, old])
    assert rotated.open("acme", "openai", sealed_old) == "sk-1"
    moved = rotated.rewrap("acme", "openai", sealed_old)
    assert moved is not None and moved.kid == key_id(new)
    assert Vault([new]).open("acme", "openai", moved) == "sk-1"
    assert rotated.rewrap("acme", "openai", moved) is None


def test_no_master_key_cannot_seal() -> None:
    with pytest.raises(VaultNotConfigured):
        Vault([]).seal("acme", "openai", "sk")


def settings(**secrets: object) -> object:
    return parse_settings(
        {
            "secrets": secrets,
            "store": {"backend": "redis", "url": "redis://x"},
            "server": {"admin_token": "t" * 40},
        }
    )


@pytest.mark.parametrize(
    ("secrets", "setting"),
    [
        ({}, "secrets.key_secret"),  # redis + admin API: required
        ({"key_secret": "short-secret-value"}, "secrets.key_secret"),
        ({"key_secret": "k" * 40, "master_keys": ["bm90LWJhc2U2NA"]}, "secrets.master_keys[0]"),
        ({"key_secret": "k" * 40, "master_keys": [b64(b"x" * 16)]}, "secrets.master_keys[0]"),
    ],
)
def test_startup_refuses_missing_short_or_malformed_secrets(secrets: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_secrets(settings(**secrets))  # type: ignore[arg-type]
    assert str(err.value).startswith(setting)
    for value in secrets.values():
        for text in value if isinstance(value, list) else [value]:
            assert str(text) not in str(err.value)


def test_startup_refuses_reused_secrets() -> None:
    key = b64(master())
    with pytest.raises(ConfigError) as err:
        check_secrets(settings(key_secret=key, master_keys=[key]))  # type: ignore[arg-type]
    assert "secrets.key_secret: must differ" in str(err.value) and key not in str(err.value)
    with pytest.raises(ConfigError) as err:
        check_secrets(settings(key_secret="k" * 40, master_keys=[key, key]))  # type: ignore[arg-type]
    assert "secrets.master_keys[1]" in str(err.value)


def test_good_secrets_pass_and_memory_store_needs_no_key_secret() -> None:
    check_secrets(settings(key_secret="k" * 40, master_keys=[b64(master()), b64(master())]))  # type: ignore[arg-type]
    check_secrets(parse_settings({"server": {"admin_token": "t" * 40}}))
