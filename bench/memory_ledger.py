"""The memory store's RSS under sustained load: does it stay bounded by ``store.memory_ledger_records``?

    .venv/bin/python -m bench.memory_ledger                              # the default bound (100k records)
    .venv/bin/python -m bench.memory_ledger --records 10000 --requests 100000

Starts the bench upstream and a gateway (memory store, metering on, access log off) as processes, drives
non-streaming chat requests in rounds of ``--round`` seconds until ``--requests`` have been served, and
prints the gateway's resident memory after each round. Once more requests than the bound were served,
the ledger holds exactly the bound and RSS should stop growing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import yaml

from bench.load import chat_request, run_load
from bench.procs import free_port, python_module, rss_mb, spawn
from bench.run import HOST, KEY, Target, gateway_config, wait_ready

REPO = Path(__file__).resolve().parents[1]


async def drive(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="efflux-memledger-") as tmp:
        root = Path(tmp)
        upstream_port, gateway_port = free_port(), free_port()
        config = gateway_config(
            upstream_port,
            access_log=False,
            store={"backend": "memory", "memory_ledger_records": args.records},
        )
        (root / "gateway.yaml").write_text(yaml.safe_dump(config))
        cwd = REPO
        upstream = spawn(
            "upstream", python_module("bench.upstream", "--port", str(upstream_port)), None, root, cwd
        )
        argv = python_module(
            "proxy", "serve", "--config", str(root / "gateway.yaml"), "--port", str(gateway_port)
        )
        gateway = spawn("gateway", argv, None, root, cwd)
        try:
            target = Target("gateway", gateway_port, KEY, gateway)
            await wait_ready(target, "/healthz")
            start_rss = rss_mb(gateway.pid)
            print(f"store.memory_ledger_records = {args.records:,}; RSS after start {start_rss:.0f} MB")
            request = chat_request(HOST, gateway_port, KEY)
            served = 0
            while served < args.requests:
                result = await run_load(
                    HOST, gateway_port, request, concurrency=args.concurrency, duration=args.round
                )
                ok = sum(1 for s in result.samples if s.status == 200)
                served += ok
                held = min(served, args.records)
                print(
                    f"  served {served:>9,}  ledger holds {held:>9,}  RSS {rss_mb(gateway.pid):6.0f} MB  "
                    f"({ok / result.wall:,.0f} req/s)",
                    flush=True,
                )
        finally:
            gateway.stop()
            upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="store.memory_ledger_records")
    parser.add_argument("--requests", type=int, default=300_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--round", type=float, default=10.0, help="seconds per round")
    asyncio.run(drive(parser.parse_args()))


if __name__ == "__main__":
    main()
