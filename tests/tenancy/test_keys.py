"""Virtual keys: held only as HMAC-SHA256 digests under the server secret, looked up by digest."""

from __future__ import annotations

import hashlib
import hmac

from proxy.config import KeyConfig, parse_settings
from proxy.metering.pricing import usd_to_micro
from proxy.store.base import Period
from proxy.tenancy.keys import (
    KEY_PREFIX,
    KeyRing,
    VirtualKey,
    build_keyring,
    key_from_config,
    new_key_secret,
)

SERVER_SECRET = b"server-secret-for-tests"
SECRET = "egw-the-client-secret-0123456789"


def vkey(name: str = "web", tenant: str = "acme") -> VirtualKey:
    return VirtualKey(
        id=f"yaml:{name}",
        name=name,
        tenant=tenant,
        models=("*",),
        rpm=None,
        tpm=None,
        budget_micro_usd=None,
        period=Period.MONTHLY,
    )


def everything_held(ring: KeyRing) -> list[object]:
    """Every value reachable from the keyring's attributes (slots and __dict__), recursively."""
    seen: list[object] = []

    def walk(value: object) -> None:
        seen.append(value)
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list | tuple | set | frozenset):
            for v in value:
                walk(v)
        elif isinstance(value, VirtualKey):
            for field in VirtualKey.__slots__:
                walk(getattr(value, field))

    for value in vars(ring).values():
        walk(value)
    return seen


def test_digest_is_hmac_sha256_under_the_server_secret() -> None:
    ring = KeyRing(SERVER_SECRET)
    expected = hmac.new(SERVER_SECRET, SECRET.encode(), hashlib.sha256).digest()
    assert ring.digest(SECRET) == expected
    assert ring.digest(SECRET) != hashlib.sha256(SECRET.encode()).digest()  # keyed, not a plain hash


def test_digests_differ_by_server_secret() -> None:
    assert KeyRing(b"one").digest(SECRET) != KeyRing(b"two").digest(SECRET)


def test_the_keyring_never_holds_the_secret() -> None:
    ring = KeyRing(SERVER_SECRET, [(SECRET, vkey())])
    held = everything_held(ring)
    assert len(held) > 3
    for value in held:
        if isinstance(value, str):
            assert SECRET not in value
        if isinstance(value, bytes):
            assert SECRET.encode() not in value
    assert ring.digest(SECRET) in held


def test_lookup_finds_the_key() -> None:
    key = vkey()
    ring = KeyRing(SERVER_SECRET, [(SECRET, key), ("egw-another-secret-0000", vkey("other"))])
    assert len(ring) == 2
    assert ring.lookup(SECRET) is key
    assert ring.lookup("egw-another-secret-0000") == vkey("other")


def test_unknown_keys_are_none() -> None:
    ring = KeyRing(SERVER_SECRET, [(SECRET, vkey())])
    assert ring.lookup("egw-unknown") is None
    assert ring.lookup("") is None
    assert ring.lookup(SECRET + " ") is None
    assert ring.lookup(SECRET.upper()) is None
    assert ring.lookup("\udcff-not-utf8") is None  # a header decoded with surrogates does not raise


def test_a_key_from_another_server_secret_is_unknown() -> None:
    ring = KeyRing(SERVER_SECRET)
    ring.add(KeyRing(b"another server").digest(SECRET), vkey())
    assert ring.lookup(SECRET) is None


def test_keys_can_be_added_by_digest() -> None:
    # the admin API stores digests only: a key is added without its secret
    ring = KeyRing(SERVER_SECRET)
    ring.add(ring.digest(SECRET), vkey("api"))
    assert ring.lookup(SECRET) == vkey("api")


def test_key_from_config() -> None:
    config = KeyConfig.model_validate(
        {
            "name": "web-app",
            "tenant": "acme",
            "key": SECRET,
            "models": ["gpt-4o-mini", "openrouter/*"],
            "limits": {"rpm": 600, "tpm": 200000},
            "budget": {"usd": 50.25, "period": "daily"},
        }
    )
    key = key_from_config(config)
    assert key == VirtualKey(
        id="yaml:web-app",
        name="web-app",
        tenant="acme",
        models=("gpt-4o-mini", "openrouter/*"),
        rpm=600,
        tpm=200000,
        budget_micro_usd=50_250_000,
        period=Period.DAILY,
    )
    assert SECRET not in repr(key)


def test_key_defaults() -> None:
    key = key_from_config(KeyConfig.model_validate({"name": "k", "key": SECRET}))
    assert (key.tenant, key.models, key.rpm, key.tpm, key.budget_micro_usd) == (
        "default",
        ("*",),
        None,
        None,
        None,
    )


def test_build_keyring_from_settings() -> None:
    settings = parse_settings(
        {
            "keys": [
                {"name": "a", "key": "egw-aaaaaaaaaa"},
                {"name": "b", "key": "egw-bbbbbbbbbb", "tenant": "t"},
            ]
        }
    )
    ring = build_keyring(settings, SERVER_SECRET)
    assert len(ring) == 2
    found = ring.lookup("egw-bbbbbbbbbb")
    assert found is not None
    assert (found.name, found.tenant) == ("b", "t")


def test_usd_to_micro_is_exact_for_cents() -> None:
    assert usd_to_micro(0.1) == 100_000
    assert usd_to_micro(50) == 50_000_000
    assert usd_to_micro(19.99) == 19_990_000


def test_new_secrets_look_like_virtual_keys_and_differ() -> None:
    first, second = new_key_secret(), new_key_secret()
    assert first.startswith(KEY_PREFIX)
    assert len(first) > len(KEY_PREFIX) + 40  # 32 random bytes
    assert first != second
