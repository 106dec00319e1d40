"""Is the SSE path linear? CPU seconds and peak memory of one large event, at two sizes ten times apart.

    .venv/bin/python -m bench.sse_linearity                    # the parser in this tree
    .venv/bin/python -m bench.sse_linearity --parser-file F    # another SSEParser (say, an older sse.py)
    .venv/bin/python -m bench.sse_linearity --kinds parser --shapes line --repeat 1

Each event is fed in reads of ``--read`` bytes (16 KiB: what a provider connection typically yields) to
the parser alone and to the stream tap with the ``openai_compatible`` reader, each case in a fresh child
process so that its peak resident memory is its own. Shapes: ``line`` is one ``data:`` line holding a
chat chunk with a huge content string (a base64 image, say); ``lines`` is one event made of 1 KiB
``data:`` lines. The bound on one event is raised above the largest size for the run.

A linear path costs ~10x for a 10x larger event (the same ns per byte at both sizes); a quadratic one
~100x. The target is < 10x (issue 13). ``floor`` is no parser at all: the reads joined twice at the
event's end (its raw bytes and its data, each one contiguous ``bytes``), the least any parser must do;
its ratio shows what memory (page faults, caches) alone adds at 32 MiB. Each case runs ``--repeat``
times (3), each in a fresh process; the least CPU counts. Peak memory is the growth of the child's VmHWM
over its resident size once the reads are built (they are not counted: a relay holds one read at a time).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
SIZES = {"3.2 MiB": 32 * MIB // 10, "32 MiB": 32 * MIB}
KINDS = ("floor", "parser", "tap")
SHAPES = ("line", "lines")
LIMIT = 64 * MIB  # above every size measured: the bound is not what this measures


def build(shape: str, size: int) -> bytes:
    """One event of ``size`` bytes, built without large temporaries (they would count in the peak)."""
    out = bytearray()
    if shape == "line":
        head = b'data: {"choices":[{"index":0,"delta":{"content":"'
        tail = b'"},"finish_reason":null}]}\n\n'
        out += head
        out += b"A" * (size - len(head) - len(tail))
        out += tail
    else:
        line = b"data: " + b"B" * 1017 + b"\n"
        for _ in range((size - 1) // len(line)):
            out += line
        out += b"data: " + b"C" * max(0, size - len(out) - 8) + b"\n\n"
    return bytes(out)


def load_parser(path: str | None) -> Any:
    if path is None:
        from proxy.upstream.sse import SSEParser

        return SSEParser
    spec = importlib.util.spec_from_file_location("sse_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.SSEParser


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _joins() -> Callable[[bytes], bytes]:
    """The floor: keep the reads, and at the event's end join them twice (its raw bytes and its data):
    what any parser that hands out both as contiguous bytes must at least do."""
    kept: list[bytes] = []

    def feed(chunk: bytes) -> bytes:
        kept.append(chunk)
        if not chunk.endswith(b"\n\n"):
            return b""
        raw, data = b"".join(kept), b"".join(kept)
        kept.clear()
        return raw if len(data) == len(raw) else b""

    return feed


def measure(kind: str, shape: str, size: int, read: int, parser_file: str | None) -> dict[str, Any]:
    """In the child: feed one event, return CPU seconds and the peak memory growth."""
    parser_class = load_parser(parser_file)
    takes_limit = "max_event_bytes" in inspect.signature(parser_class).parameters
    parser = parser_class(max_event_bytes=LIMIT) if takes_limit else parser_class()
    data = build(shape, size)
    reads = [data[i : i + read] for i in range(0, len(data), read)]
    del data
    if kind == "floor":
        feed = _joins()
    elif kind == "tap":
        from plugins.openai_compatible import OpenAIStreamReader
        from proxy.dataplane.tap import StreamTap

        tap = StreamTap(OpenAIStreamReader(include_usage=True), LIMIT)
        tap.parser = parser  # the parser under test inside the tap as it is
        feed = tap.feed
    else:
        feed = parser.feed
    with contextlib.suppress(OSError):  # VmHWM back to the current RSS (Linux 4.0+): the peak is ours
        Path("/proc/self/clear_refs").write_text("5")
    base = status_kib("VmRSS")
    produced = 0
    started = time.process_time()
    for chunk in reads:
        out = feed(chunk)
        produced += len(out) if isinstance(out, bytes) else sum(len(e.raw) for e in out)
    cpu = time.process_time() - started
    if produced != size:
        raise SystemExit(f"{kind}/{shape}: {produced} bytes came out of {size}")
    return {"cpu": cpu, "peak_mib": (status_kib("VmHWM") - base) / 1024}


def child(kind: str, shape: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    """One case in a fresh process, ``--repeat`` times: the least CPU (the least disturbed run)."""
    cmd = [sys.executable, "-m", "bench.sse_linearity", "--read", str(args.read)]
    cmd += ["--child", json.dumps([kind, shape, size])]
    if args.parser_file:
        cmd += ["--parser-file", args.parser_file]
    runs: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(done.stderr or done.stdout)
        runs.append(json.loads(done.stdout))
    return min(runs, key=lambda r: float(r["cpu"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sse_linearity", description=__doc__.split("\n")[0])
    parser.add_argument("--parser-file", help="measure the SSEParser of this file instead of proxy's")
    parser.add_argument("--read", type=int, default=16 * 1024, help="bytes per read (16384)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=",".join(KINDS))
    parser.add_argument("--shapes", default=",".join(SHAPES), help=",".join(SHAPES))
    parser.add_argument("--repeat", type=int, default=3, help="runs per case, the least CPU counts (3)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, shape, size = json.loads(args.child)
        print(json.dumps(measure(kind, shape, size, args.read, args.parser_file)))
        return 0
    print(f"parser: {args.parser_file or 'proxy.upstream.sse'}; reads of {args.read} bytes")
    print(f"{'kind':<7} {'shape':<6} {'size':>8} {'cpu s':>8} {'ns/byte':>8} {'peak MiB':>9}")
    for kind in args.kinds.split(","):
        for shape in args.shapes.split(","):
            cpu: list[float] = []
            for label, size in SIZES.items():
                result = child(kind, shape, size, args)
                cpu.append(result["cpu"])
                per_byte = result["cpu"] * 1e9 / size
                print(
                    f"{kind:<7} {shape:<6} {label:>8} {result['cpu']:>8.3f} {per_byte:>8.2f}"
                    f" {result['peak_mib']:>9.1f}"
                )
            print(f"{kind:<7} {shape:<6} {'ratio':>8} {cpu[1] / max(cpu[0], 1e-6):>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
