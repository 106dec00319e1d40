"""The command line: ``efflux-gateway`` (and ``python -m proxy``).

    serve --config F [--host H] [--port P] [--workers N]
    check --config F
    sync --config F [provider]
    vault genkey | rewrap --config F
    keys create|list|revoke --config F   (proxy.cli.commands)
    migrate --config F, usage export --config F --format csv|jsonl   (proxy.cli.ledger)

Exit codes: 0 ok, 1 failure, 2 config error (the message names the YAML path).
"""

from __future__ import annotations

import argparse
import base64
import gc
import multiprocessing
import os
import secrets
import signal
import socket
import sys
from collections.abc import Sequence

from proxy.cli import commands, ledger
from proxy.config import ConfigError, Settings, load_settings
from proxy.tenancy.vault import check_secrets

DEFAULT_CONFIG = "config/gateway.example.yaml"
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="efflux-gateway", description="An OpenAI-compatible LLM gateway.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", default=os.environ.get("EFFLUX_CONFIG", DEFAULT_CONFIG))
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (needs the redis store)"
    )

    check = sub.add_parser("check", help="validate a config file without serving")
    check.add_argument("--config", default=os.environ.get("EFFLUX_CONFIG", DEFAULT_CONFIG))

    sync = sub.add_parser("sync", help="sync model catalogues now (all providers with sync:, or one)")
    sync.add_argument("--config", default=os.environ.get("EFFLUX_CONFIG", DEFAULT_CONFIG))
    sync.add_argument("provider", nargs="?", help="only this provider")

    vault = sub.add_parser("vault", help="master keys for the provider-key vault")
    vault_sub = vault.add_subparsers(dest="vault_command", required=True)
    vault_sub.add_parser("genkey", help="print a new master key (urlsafe base64 of 32 random bytes)")
    rewrap = vault_sub.add_parser("rewrap", help="re-seal every provider key with the first master key")
    rewrap.add_argument("--config", default=os.environ.get("EFFLUX_CONFIG", DEFAULT_CONFIG))
    commands.add_parsers(sub, os.environ.get("EFFLUX_CONFIG", DEFAULT_CONFIG))
    ledger.add_parsers(sub, os.environ.get("EFFLUX_CONFIG", DEFAULT_CONFIG))

    args = parser.parse_args(argv)
    if args.command == "vault" and args.vault_command == "genkey":
        print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        return 0
    try:
        settings = load_settings(args.config)
        from proxy.state.snapshot import build_snapshot

        snapshot = build_snapshot(settings)
        check_secrets(settings)
        if args.command == "keys":
            return commands.keys_command(args, settings, snapshot)
        if args.command == "vault":
            return commands.rewrap_command(settings)
        if args.command == "migrate":
            return ledger.migrate_command(settings)
        if args.command == "usage":
            return ledger.export_command(args, settings)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"{args.config}: {line}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "sync":
        from proxy.cli.sync import sync_command

        return sync_command(settings, snapshot, args.provider)
    if args.command == "check":
        print(
            f"{args.config}: ok ({len(snapshot.providers)} providers, {len(settings.models)} routes, "
            f"{len(snapshot.keys)} keys, store {settings.store.backend})"
        )
        return 0
    return _serve(args, settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    if args.workers > 1:
        if settings.store.backend == "memory":
            print(
                f"{args.config}: store.backend: --workers {args.workers} needs the redis store "
                "(with the memory store each process would keep its own limits and ledger)",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        return _serve_workers(args, settings, host, port)
    run(settings, host, port, reuse_port=False, config_path=args.config)
    return 0


def run(
    settings: Settings, host: str, port: int, *, reuse_port: bool, config_path: str | None = None
) -> None:
    import asyncio
    import logging

    from proxy.app import create_app
    from proxy.edge.connections import connection_cap, raise_open_files_limit
    from proxy.edge.shutdown import serve_until_signalled
    from proxy.observe.logs import setup_logging

    setup_logging()
    # Idle and half-sent client connections hold a file each: the hard limit, not the soft default of
    # 1024, bounds them, and so does server.max_connections (at most half the open files).
    open_files = raise_open_files_limit()
    cap = connection_cap(settings.server.max_connections, open_files)
    fields = {"msg": "open files limit", "open_files": open_files, "max_connections": cap}
    logging.getLogger("efflux").info("open files limit", extra={"fields": fields})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = create_app(settings, config_path=config_path)  # the file is re-read on reload
    # Everything built so far (modules, schemas, the snapshot) lives as long as the process: take it out of
    # the garbage collector's sight, and collect the young generation less often (the data plane allocates
    # short-lived objects by the thousand per second; they die by reference counting, not by the GC).
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 20, 20)
    # SIGTERM: readiness off, stop accepting, finish in-flight streams, flush, exit 0 (proxy.edge.shutdown).
    asyncio.run(serve_until_signalled(app, host, port, settings.server, reuse_port=reuse_port))


def _worker(config: str, host: str, port: int) -> None:
    run(load_settings(config), host, port, reuse_port=True, config_path=config)


def _serve_workers(args: argparse.Namespace, settings: Settings, host: str, port: int) -> int:
    if not hasattr(socket, "SO_REUSEPORT"):
        print("--workers needs SO_REUSEPORT, which this platform lacks", file=sys.stderr)
        return 1
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(args.config, host, port), daemon=False) for _ in range(args.workers)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, forward)  # reload: each worker re-reads the file
    for p in procs:
        p.join()
    return max((p.exitcode or 0) for p in procs)
