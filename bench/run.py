"""The benchmark in one command: fake upstream, bare pass-through and gateway as real processes, a load
generator, a table, the issue's ratios, and bench/results/latest.json.

    .venv/bin/python -m bench [--duration 5] [--rounds 2] [--profile]

Layout on a two-core machine: the gateway and the pass-through are pinned to the same core (``--server-cpu``,
one of them busy at a time); the upstream and this process (the load generator) share the other one.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # `python bench/run.py`: make `bench` and `proxy` importable
    sys.path.insert(0, str(ROOT))

try:
    import orjson
    import uvloop
    import yaml
except ImportError:  # not the project's venv: re-run with it if there is one
    venv_python = ROOT / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve():
        os.execv(str(venv_python), [str(venv_python), "-m", "bench", *sys.argv[1:]])
    raise

# After the path and venv fix-ups above, hence not at the top.
from bench import report  # noqa: E402
from bench.load import chat_request, fetch, get_request, run_load  # noqa: E402
from bench.procs import (  # noqa: E402
    Child,
    cpu_seconds,
    free_port,
    pinning,
    pyspy,
    python_module,
    rss_mb,
    spawn,
)
from bench.upstream import DRIP_MODEL  # noqa: E402

HOST = "127.0.0.1"
KEY = "egw-bench-key-0123456789"
MODEL = "bench-model"


@dataclass
class Target:
    name: str
    port: int
    key: str | None
    server: Child  # the process whose CPU and memory are measured (the upstream itself for "direct")


def gateway_config(
    upstream_port: int, access_log: bool = True, store: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Memory store (or ``store``), metering on: a key with limits far above what the run sends, budgets,
    prices."""
    price = {"input": 0.15, "output": 0.60}
    return {
        "server": {"host": HOST, "access_log": access_log},
        "store": store or {"backend": "memory"},
        "providers": {
            "bench": {
                "plugin": "openai_compatible",
                "base_url": f"http://{HOST}:{upstream_port}/v1",
                "timeouts": {"connect": "2s", "first_byte": "30s", "idle": "30s", "total": "60s"},
            }
        },
        "models": {m: {"targets": [{"provider": "bench", "model": m}]} for m in (MODEL, DRIP_MODEL.decode())},
        "pricing": {"models": {MODEL: price, DRIP_MODEL.decode(): price}},
        "metering": {"default_max_tokens": 4096},
        "keys": [
            {
                "name": "bench",
                "tenant": "bench",
                "key": KEY,
                "models": ["*"],
                "limits": {"rpm": 100_000_000, "tpm": 10**12},
                "budget": {"usd": 1_000_000, "period": "monthly"},
            }
        ],
        "tenants": {"bench": {"budget": {"usd": 10_000_000, "period": "monthly"}}},
    }


async def wait_ready(target: Target, path: str, patience: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        if not target.server.alive():
            raise RuntimeError(f"{target.server.name} exited during startup:\n{target.server.tail()}")
        try:
            sample = await fetch(HOST, target.port, get_request(HOST, target.port, path), limit=2.0)
            if sample.status == 200:
                return
        except (OSError, TimeoutError):
            pass
        if loop.time() > deadline:
            raise RuntimeError(f"{target.name} not ready after {patience:.0f}s:\n{target.server.tail()}")
        await asyncio.sleep(0.1)


async def sanity(target: Target) -> None:
    """One request of each kind, checked, so a broken target fails the run instead of timing errors."""
    plain = await fetch(HOST, target.port, chat_request(HOST, target.port, target.key))
    stream = await fetch(HOST, target.port, chat_request(HOST, target.port, target.key, stream=True))
    problems = []
    if plain.status != 200 or b'"usage"' not in plain.body:
        problems.append(f"non-stream: HTTP {plain.status} {plain.body[:300]!r}")
    if stream.status != 200 or b"data: [DONE]" not in stream.body or b'"usage"' not in stream.body:
        problems.append(f"stream: HTTP {stream.status} {stream.body[:300]!r}")
    if problems:
        raise RuntimeError(f"{target.name} answers wrongly: " + "; ".join(problems))


async def phase(
    target: Target,
    *,
    stream: bool,
    concurrency: int,
    duration: float,
    warmup: float,
    model: str = MODEL,
    stagger: float = 0.0,
) -> report.Summary:
    request = chat_request(HOST, target.port, target.key, model=model, stream=stream)
    if warmup > 0:  # a separate run, so the CPU measured below covers exactly the recorded requests
        await run_load(HOST, target.port, request, concurrency=concurrency, duration=warmup)
    before = cpu_seconds(target.server.pid)
    res = await run_load(
        HOST, target.port, request, concurrency=concurrency, duration=duration, stagger=stagger
    )
    cpu = cpu_seconds(target.server.pid) - before
    summary = report.summarize(res, cpu)
    if model == DRIP_MODEL.decode():
        summary.update(report.spacing(res))
    flag = ""
    if summary["failed"]:
        flag = f"  FAILED {summary['failed']} {summary['errors']} {summary['statuses']}"
    kind = "stream" if stream else "plain"
    print(
        f"  {target.name:<12} {kind} c={concurrency:<3} {summary['rps']:>9.1f}/s  "
        f"first byte p50 {summary['ttfb_p50_ms']:.2f} ms  "
        f"last byte p50 {summary['ttlb_p50_ms']:.2f} ms{flag}",
        flush=True,
    )
    return summary


async def measure(
    args: argparse.Namespace, targets: list[Target], start_profiler: Callable[[], Child | None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    for t, path in zip(targets, ("/healthz", "/healthz", "/readyz", "/readyz"), strict=False):
        await wait_ready(t, path)
    await asyncio.sleep(0.5)  # let startup garbage settle before the idle reading
    rss: dict[str, Any] = {t.name: {"startup_mb": round(rss_mb(t.server.pid), 1)} for t in targets}
    for t in targets:
        await sanity(t)
    profiler = start_profiler()  # attached after startup, so the samples are the serving, not the imports
    results: dict[str, Any] = {t.name: {"throughput": []} for t in targets}
    w = args.warmup
    # Rounds interleave the targets, so a noisy neighbour hits all of them rather than one.
    for r in range(args.rounds):
        print(f"non-stream throughput, round {r + 1}/{args.rounds}:", flush=True)
        for t in targets:
            res = await phase(t, stream=False, concurrency=args.concurrency, duration=args.duration, warmup=w)
            results[t.name]["throughput"].append(res)
    print("latency and streams:", flush=True)
    short = args.short_duration
    for t in targets:
        results[t.name]["latency"] = await phase(t, stream=False, concurrency=1, duration=short, warmup=0.3)
    for t in targets:
        c = args.stream_concurrency
        results[t.name]["stream"] = await phase(t, stream=True, concurrency=c, duration=short, warmup=0.3)
    for t in targets:
        c = args.concurrency
        results[t.name]["stream_load"] = await phase(t, stream=True, concurrency=c, duration=short, warmup=w)
    for t in targets:
        stream_time = (args.chunks + 2) * args.drip_ms / 1000
        results[t.name]["drip"] = await phase(
            t,
            stream=True,
            concurrency=4,
            duration=short,
            warmup=0,
            model=DRIP_MODEL.decode(),
            stagger=stream_time,
        )
    if profiler is not None:
        profiler.stop()
    await asyncio.sleep(1.0)
    for t in targets:
        rss[t.name]["after_load_mb"] = round(rss_mb(t.server.pid), 1)
    return results, rss


def start_servers(
    args: argparse.Namespace,
    tmp: Path,
    children: list[Child],
    server_cpu: int | None,
    load_cpu: int | None,
    profile: Path | None,
) -> list[Target]:
    """Start upstream, pass-through and gateway; each is added to ``children`` as soon as it exists."""
    up_port, pass_port, gw_port, redis_gw_port = (free_port() for _ in range(4))
    up_args = ("--port", str(up_port), "--chunks", str(args.chunks), "--drip-ms", str(args.drip_ms))
    pass_args = ("--port", str(pass_port), "--upstream", f"http://{HOST}:{up_port}")
    config = tmp / "gateway.yaml"
    redis_store = {"backend": "redis", "url": args.redis_url, "journal": str(tmp / "journal")}
    store = redis_store if args.store == "redis" else None
    config.write_text(yaml.safe_dump(gateway_config(up_port, not args.no_access_log, store), sort_keys=False))
    gw_args = ("serve", "--config", str(config), "--port", str(gw_port))
    quiet = {"EFFLUX_LOG_LEVEL": "WARNING"} if args.no_access_log else None
    servers = [
        ("upstream", python_module("bench.upstream", *up_args), load_cpu, None),
        ("passthrough", python_module("bench.passthrough", *pass_args), server_cpu, None),
        ("gateway", python_module("proxy", *gw_args, profile_to=profile), server_cpu, quiet),
    ]
    if args.store == "both":  # the same gateway on Redis, measured in the same interleaved rounds
        redis_config = tmp / "gateway-redis.yaml"
        redis_yaml = gateway_config(up_port, not args.no_access_log, redis_store)
        redis_config.write_text(yaml.safe_dump(redis_yaml, sort_keys=False))
        redis_args = ("serve", "--config", str(redis_config), "--port", str(redis_gw_port))
        servers.append(("gateway-redis", python_module("proxy", *redis_args), server_cpu, quiet))
    for name, argv, cpu, env in servers:
        children.append(spawn(name, argv, cpu, tmp, ROOT, env))
    started = children[-len(servers) :]
    targets = [
        Target("direct", up_port, None, started[0]),
        Target("passthrough", pass_port, None, started[1]),
        Target("gateway", gw_port, KEY, started[2]),
    ]
    if args.store == "both":
        targets.append(Target("gateway-redis", redis_gw_port, KEY, started[3]))
    return targets


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0, help="seconds per non-stream throughput round")
    p.add_argument("--rounds", type=int, default=2, help="interleaved throughput rounds per target")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unrecorded load before each run")
    p.add_argument("--short-duration", type=float, default=3.0, help="seconds per latency/stream phase")
    p.add_argument("--concurrency", type=int, default=32, help="connections for the throughput phases")
    p.add_argument("--stream-concurrency", type=int, default=1, help="connections for the TTFB phase")
    p.add_argument("--chunks", type=int, default=10, help="content events per upstream stream")
    p.add_argument("--drip-ms", type=float, default=20.0, help="upstream delay between events (drip phase)")
    p.add_argument("--server-cpu", type=int, default=1, help="core for the gateway and the pass-through")
    p.add_argument("--load-cpu", type=int, default=0, help="core for the upstream and the load generator")
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample the gateway with py-spy (cProfile if py-spy is not installed), print hotspots",
    )
    p.add_argument(
        "--no-access-log",
        action="store_true",
        help="run the gateway at log level WARNING (no access-log lines), to see what they cost",
    )
    p.add_argument(
        "--store",
        choices=("memory", "redis", "both"),
        default="memory",
        help="the gateway's store; redis: a private redis-server (proxy.testing.redis_server) on the load "
        "CPU; both: a second gateway on Redis beside the memory one, compared in the same rounds",
    )
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    return p.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    # Raising here could land inside a uvloop protocol callback, which would swallow it; SIGINT's handler
    # (asyncio.Runner's during the run) cancels the main task instead, and the cleanup runs.
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both end the run through the cleanup below. SIGINT is set explicitly because a
    # shell starts background jobs with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    can_pin, why = pinning()
    server_cpu, load_cpu = (args.server_cpu, args.load_cpu) if can_pin else (None, None)
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    if can_pin:
        print(f"pinning: gateway and pass-through on CPU {server_cpu}, upstream and load on CPU {load_cpu}")
    else:
        print(f"NOT PINNED: {why}")
    tmp = Path(tempfile.mkdtemp(prefix="efflux-bench-"))
    children: list[Child] = []
    args.output.parent.mkdir(parents=True, exist_ok=True)
    spy = pyspy() if args.profile else None
    profile: Path | None = None
    if args.profile:
        profile = args.output.with_name("gateway-pyspy.txt" if spy else "gateway.pstats")

    def start_profiler() -> Child | None:
        if spy is None or profile is None:
            return None
        gateway = children[-1]
        argv = [spy, "record", "--pid", str(gateway.pid), "--rate", "250", "--nonblocking"]
        return spawn("py-spy", [*argv, "--format", "raw", "--output", str(profile)], load_cpu, tmp, ROOT)

    redis = None
    args.redis_url = None
    try:
        if args.store in ("redis", "both"):
            from proxy.testing.redis_server import start_redis

            redis = start_redis()
            args.redis_url = redis.url
            if load_cpu is not None and redis.process is not None:
                os.sched_setaffinity(redis.process.pid, {load_cpu})
        cprofile_to = profile if args.profile and spy is None else None
        targets = start_servers(args, tmp, children, server_cpu, load_cpu, cprofile_to)
        results, rss = uvloop.run(measure(args, targets, start_profiler))
        targets[2].server.stop(timeout=30)  # the gateway first: cProfile writes its file on a clean exit
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the servers", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            child.stop()
        if redis is not None:
            redis.stop()
            shutil.rmtree(redis.directory, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)

    events = args.chunks + 3  # content events, the finish event, the usage event, [DONE]
    drip = report.drip_verdict(results["gateway"]["drip"], args.drip_ms, events)
    verdicts = report.verdicts(results, rss, drip)
    print()
    print(report.table(results, rss))
    print()
    print(report.verdict_lines(verdicts))
    if profile is not None:
        print("\nNB: the gateway ran under a profiler, which slows it down; compare its figures with care.")
        from bench.hotspots import print_hotspots

        print_hotspots(profile)
    out = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "pinned": can_pin,
            "note": why,
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "verdicts": verdicts,
        "rss": rss,
        "results": results,
    }
    args.output.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    print(f"\nwritten: {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
