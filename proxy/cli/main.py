"""The command line: ``efflux-gateway`` (and ``python -m proxy``).

    --version
    init [DIR]                           (proxy.cli.init: gateway.yaml and .env with fresh secrets)
    serve --config F [--host H] [--port P] [--workers N] [--allow-unsafe-bind]
    check --config F
    sync --config F [provider]
    vault genkey | rewrap --config F
    keys create|list|revoke --config F   (proxy.cli.commands)
    import litellm FILE [--keys JSON]    (proxy.cli.litellm: prints a translated config)
    prices show MODEL | missing --config F   (proxy.cli.prices)
    migrate --config F, usage export --config F --format csv|jsonl   (proxy.cli.ledger)

``--config`` defaults to ``$EFFLUX_CONFIG``, else ``config/gateway.example.yaml``.
Exit codes: 0 ok, 1 failure, 2 config error (the message names the YAML path; ``check`` lists every
problem it finds, one per line).
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
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.cli import commands, ledger, prices
from proxy.cli.exposure import OVERRIDE, exposure_problems
from proxy.cli.init import init_command
from proxy.cli.litellm import import_litellm
from proxy.config import ConfigError, Settings, load_settings
from proxy.tenancy.vault import check_secrets

if TYPE_CHECKING:
    from proxy.state.snapshot import Snapshot

DEFAULT_CONFIG = "config/gateway.example.yaml"
EXIT_CONFIG = 2


def version() -> str:
    try:
        return metadata.version("efflux-gateway")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def add_config(parser: argparse.ArgumentParser) -> None:
    """The ``--config`` option every command that reads the config takes, with its documented default."""
    parser.add_argument(
        "--config",
        default=os.environ.get("EFFLUX_CONFIG", DEFAULT_CONFIG),
        metavar="FILE",
        help=f"the YAML config file (default: $EFFLUX_CONFIG, else {DEFAULT_CONFIG}); the .env file beside "
        "it supplies ${VAR}s the environment does not set",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="efflux-gateway", description="An OpenAI-compatible LLM gateway.")
    parser.add_argument("--version", action="version", version=f"efflux-gateway {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="write a starter gateway.yaml and a .env with fresh secrets")
    init.add_argument("directory", nargs="?", default=".", help="where to write them (default: here)")

    serve = sub.add_parser("serve", help="run the gateway")
    add_config(serve)
    serve.add_argument("--host", help="listen on this address instead of server.host")
    serve.add_argument("--port", type=int, help="listen on this port instead of server.port")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port (default 1; more need the redis store)",
    )
    serve.add_argument(
        OVERRIDE,
        action="store_true",
        help="listen on a non-loopback address even with the demo key or without an admin token "
        "(only behind authentication of your own)",
    )

    check = sub.add_parser("check", help="validate a config file without serving (lists every problem)")
    add_config(check)

    sync = sub.add_parser("sync", help="sync model catalogues now (all providers with sync:, or one)")
    add_config(sync)
    sync.add_argument("provider", nargs="?", help="only this provider")

    vault = sub.add_parser("vault", help="master keys for the provider-key vault")
    vault_sub = vault.add_subparsers(dest="vault_command", required=True)
    vault_sub.add_parser("genkey", help="print a new master key (urlsafe base64 of 32 random bytes)")
    rewrap = vault_sub.add_parser("rewrap", help="re-seal every provider key with the first master key")
    add_config(rewrap)
    commands.add_parsers(sub, add_config)
    prices.add_parsers(sub, add_config)
    ledger.add_parsers(sub, add_config)

    imports = sub.add_parser("import", help="translate another gateway's config into this one's")
    import_sub = imports.add_subparsers(dest="import_command", required=True)
    litellm = import_sub.add_parser("litellm", help="a LiteLLM proxy config.yaml: prints YAML on stdout")
    litellm.add_argument("file", help="LiteLLM's config.yaml (model_list, router_settings, ...)")
    litellm.add_argument(
        "--keys", metavar="JSON", help="LiteLLM's /key/list?return_full_object=true output, to import keys"
    )
    return parser


def report(config: str, exc: ConfigError) -> int:
    """Each problem on its own line, prefixed with the file once (a message may already name it)."""
    prefix = f"{Path(config)}:"
    for line in str(exc).splitlines():
        print(line if line.startswith(prefix) else f"{config}: {line}", file=sys.stderr)
    return EXIT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "init":
        return init_command(args.directory)
    if args.command == "import":
        return import_litellm(args.file, args.keys)
    if args.command == "vault" and args.vault_command == "genkey":
        print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        return 0
    try:
        settings = load_settings(args.config)
        snapshot = _validate(settings)
        if args.command == "keys":
            return commands.keys_command(args, settings, snapshot)
        if args.command == "vault":
            return commands.rewrap_command(settings)
        if args.command == "prices":
            return prices.prices_command(args, settings, snapshot)
        if args.command == "migrate":
            return ledger.migrate_command(settings)
        if args.command == "usage":
            return ledger.export_command(args, settings)
    except ConfigError as exc:
        return report(args.config, exc)
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


def _validate(settings: Settings) -> Snapshot:
    """Everything a valid file must also pass (plugins, egress, prices, secrets), every problem at once."""
    from proxy.state.snapshot import build_snapshot

    problems: list[str] = []
    snapshot: Snapshot | None = None
    try:
        snapshot = build_snapshot(settings)
    except ConfigError as exc:
        problems.extend(str(exc).splitlines())
    try:
        check_secrets(settings)
    except ConfigError as exc:
        problems.extend(str(exc).splitlines())
    if problems or snapshot is None:
        raise ConfigError("\n".join(problems))
    return snapshot


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    problems = exposure_problems(settings, host)
    if problems and not args.allow_unsafe_bind:
        print(f"refusing to listen on {host!r}, an address other machines can reach:", file=sys.stderr)
        for problem in problems:
            print(f"{args.config}: {problem}", file=sys.stderr)
        print(
            f"(to serve anyway, behind authentication of your own: {OVERRIDE}; "
            "to serve this machine only: --host 127.0.0.1)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
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
