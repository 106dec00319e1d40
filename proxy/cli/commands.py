"""The operator commands that work on the configured store directly, without a running gateway:

    efflux-gateway keys create --config F --name N [--tenant T] [--model GLOB ...] [--rpm N] [--tpm N]
                               [--budget-usd X --period P]
    efflux-gateway keys list   --config F
    efflux-gateway keys revoke --config F ID
    efflux-gateway vault rewrap --config F

Running gateways see each change within a second (they poll the documents' versions). ``vault rewrap``
is safe while gateways serve: each document is re-sealed under a per-document lock that API writes also
take, and readers open either master key meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

import orjson

from proxy.config import BudgetConfig, ConfigError, LimitsConfig, Settings
from proxy.errors import GatewayError
from proxy.services.keys import KeyCreate, api_keys, create_key, delete_key, doc_info
from proxy.services.rewrap import rewrap
from proxy.state.snapshot import Snapshot
from proxy.store import Store, StoreUnavailable, open_store
from proxy.tenancy.vault import Vault


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    keys = sub.add_parser("keys", help="virtual keys in the store (keys from the YAML file are not listed)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (the only time it is shown)")
    create.add_argument("--name", required=True, help="the key's name (unique)")
    create.add_argument("--tenant", default="default", help="the tenant it spends for (default: default)")
    create.add_argument(
        "--model", action="append", dest="models", help="allowed model glob (repeatable; default: all)"
    )
    create.add_argument("--rpm", type=int, help="requests per minute (default: no limit)")
    create.add_argument("--tpm", type=int, help="tokens per minute (default: no limit)")
    create.add_argument("--budget-usd", type=float, help="the key's budget in USD per --period")
    create.add_argument(
        "--period",
        default="monthly",
        choices=["daily", "weekly", "monthly", "total"],
        help="the budget's period (default: monthly)",
    )
    keys_sub.add_parser("list", help="list keys created through the API or this command")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id", help="the key's id (from keys list)")
    for parser in (create, keys_sub.choices["list"], revoke):
        add_config(parser)


def open_for_commands(settings: Settings) -> Store:
    if settings.store.backend != "redis":
        raise ConfigError(
            "store.backend: this command needs the redis store (the memory store lives inside one gateway "
            "process; use the admin API there)"
        )
    return open_store(settings)


def keys_command(args: argparse.Namespace, settings: Settings, snapshot: Snapshot) -> int:
    store = open_for_commands(settings)  # first: with the memory store no key_secret would help
    if args.keys_command == "create" and not settings.secrets.key_secret:
        asyncio.run(store.close())
        raise ConfigError("secrets.key_secret: required to create keys (gateways must digest them the same)")
    return asyncio.run(_keys(args, store, snapshot))


async def _keys(args: argparse.Namespace, store: Store, snapshot: Snapshot) -> int:
    try:
        if args.keys_command == "create":
            body = KeyCreate(
                name=args.name,
                tenant=args.tenant,
                models=args.models or ["*"],
                limits=LimitsConfig(rpm=args.rpm, tpm=args.tpm),
                budget=BudgetConfig(usd=args.budget_usd, period=args.period)
                if args.budget_usd is not None
                else None,
            )
            print(orjson.dumps(await create_key(store, snapshot, body)).decode())
        elif args.keys_command == "list":
            for doc in sorted((await api_keys(store)).values(), key=lambda d: d.id):
                print(orjson.dumps(doc_info(doc)).decode())
        elif not await delete_key(store, args.id):
            print(f"no key with id {args.id!r}", file=sys.stderr)
            return 1
        else:
            print(f"revoked {args.id}")
        return 0
    except (GatewayError, ValueError) as exc:
        print(f"keys {args.keys_command}: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable:
        print("the store does not answer", file=sys.stderr)
        return 1
    finally:
        await store.close()


def rewrap_command(settings: Settings) -> int:
    vault = Vault.from_settings(settings)
    if not vault.configured:
        raise ConfigError("secrets.master_keys: required to rewrap (the first one seals)")
    store = open_for_commands(settings)
    done = asyncio.run(rewrap(store, vault))
    for failure in done.failures:
        print(failure, file=sys.stderr)
    failed = len(done.failures)
    print(
        f"rewrapped {done.moved}, already current {done.current}, failed {failed} "
        f"(current master key {vault.current})"
    )
    return 1 if failed else 0
