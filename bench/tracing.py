"""What tracing costs: the same gateway config served by three processes, measured in interleaved rounds.

    .venv/bin/python -m bench.tracing [--baseline /path/to/another/checkout] [--rounds 3] [--duration 5]

- ``baseline``: the gateway from another checkout (``--baseline``, e.g. the branch before tracing), if given;
- ``off``: this checkout with no ``OTEL_*`` exporter configured (tracing off);
- ``on``: this checkout exporting every span over OTLP/HTTP to a sink in this process (answers 200).

Prints requests/s and server CPU ms per request (non-stream, 32 connections; and streams, 32
connections) per target, and the ratios against ``off`` (and ``baseline``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import uvloop
import yaml
from aiohttp import web

from bench.load import chat_request, run_load
from bench.procs import Child, cpu_seconds, free_port, pinning, python_module, spawn
from bench.run import HOST, KEY, Target, gateway_config, sanity, wait_ready

ROOT = Path(__file__).resolve().parent.parent
OTEL_OFF = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


async def sink(port: int) -> tuple[web.AppRunner, list[int]]:
    spans = [0]

    async def traces(request: web.Request) -> web.Response:
        spans[0] += len(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    return runner, spans


async def run(args: argparse.Namespace, tmp: Path, children: list[Child]) -> None:
    pinned, _ = pinning()
    server_cpu, load_cpu = (1, 0) if pinned else (None, None)
    up_port, sink_port = free_port(), free_port()
    children.append(
        spawn("upstream", python_module("bench.upstream", "--port", str(up_port)), load_cpu, tmp, ROOT)
    )
    config = tmp / "gateway.yaml"
    config.write_text(yaml.safe_dump(gateway_config(up_port, access_log=False), sort_keys=False))
    clean = {k: v for k, v in os.environ.items() if k not in OTEL_OFF and k != "PYTHONPATH"}
    quiet = {"EFFLUX_LOG_LEVEL": "WARNING"}
    plans: list[tuple[str, dict[str, str]]] = []
    if args.baseline:
        plans.append(("baseline", {**clean, **quiet, "PYTHONPATH": args.baseline}))
    plans.append(("off", {**clean, **quiet}))
    endpoint = f"http://{HOST}:{sink_port}/v1/traces"
    if not args.no_on:
        plans.append(("on", {**clean, **quiet, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint}))
    targets = []
    for name, env in plans:
        port = free_port()
        argv = python_module("proxy", "serve", "--config", str(config), "--port", str(port))
        child = spawn(name, argv, server_cpu, tmp, ROOT if name != "baseline" else Path(args.baseline), env)
        children.append(child)
        targets.append(Target(name, port, KEY, child))
    runner, exported = await sink(sink_port)
    try:
        for t in targets:
            await wait_ready(t, "/readyz")
            await sanity(t)
        results: dict[str, dict[str, list[tuple[float, float]]]] = {
            t.name: {"plain": [], "stream": []} for t in targets
        }
        for r in range(args.rounds):
            for stream in (False, True):
                for t in targets if r % 2 == 0 else targets[::-1]:  # alternate the order: no position bias
                    request = chat_request(HOST, t.port, t.key, stream=stream)
                    await run_load(HOST, t.port, request, concurrency=32, duration=args.warmup)
                    before = cpu_seconds(t.server.pid)
                    res = await run_load(HOST, t.port, request, concurrency=32, duration=args.duration)
                    cpu = cpu_seconds(t.server.pid) - before
                    ok = sum(1 for s in res.samples if s.status == 200)
                    kind = "stream" if stream else "plain"
                    results[t.name][kind].append((ok / res.wall, cpu * 1000 / max(ok, 1)))
                    rps, ms = ok / res.wall, cpu * 1000 / max(ok, 1)
                    print(
                        f"round {r + 1} {kind:<6} {t.name:<9} {rps:8.1f}/s  {ms:.3f} ms CPU/req", flush=True
                    )
        print(f"\nspans exported to the sink: {exported[0]} bytes of OTLP")
        report(results)
    finally:
        await runner.cleanup()


def report(results: dict[str, dict[str, list[tuple[float, float]]]]) -> None:
    def pooled(name: str, kind: str) -> tuple[float, float]:
        rows = results[name][kind]
        return sum(r for r, _ in rows) / len(rows), sum(c for _, c in rows) / len(rows)

    print(
        f"\n{'target':<9} {'kind':<6} {'req/s':>9} {'CPU ms/req':>11} {'rps vs off':>11} {'CPU vs off':>11}"
    )
    for kind in ("plain", "stream"):
        off_rps, off_cpu = pooled("off", kind)
        for name in results:
            rps, cpu = pooled(name, kind)
            print(f"{name:<9} {kind:<6} {rps:9.1f} {cpu:11.3f} {rps / off_rps:11.3f} {cpu / off_cpu:11.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", help="another checkout of the gateway to measure as the baseline")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--no-on", action="store_true", help="leave out the target with tracing on")
    args = p.parse_args(argv)
    if args.baseline:
        args.baseline = str(Path(args.baseline).resolve())
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="efflux-bench-tracing-") as tmp:
        try:
            uvloop.run(run(args, Path(tmp), children))
        finally:
            for child in reversed(children):
                child.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
