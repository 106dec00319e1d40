"""Reading a gateway profile: py-spy's collapsed stacks (``--format raw``) or a cProfile ``.pstats`` file.

For py-spy samples it prints the functions with the most samples on top of the stack (own time), the
most samples anywhere in the stack (inclusive), and the share of a few gateway stages, so a regression
shows up as a stage growing.

    python -m bench.hotspots bench/results/gateway-pyspy.txt
"""

from __future__ import annotations

import io
import pstats
import sys
from collections import Counter
from pathlib import Path

# Stage -> a frame that marks it (prefix of "function (package/file.py"). A sample counts for every
# stage whose frame is on its stack, so the shares overlap where stages nest.
STAGES = {
    "whole request handler (edge middleware)": "edge (proxy/app.py",
    "  authenticate (HMAC key lookup)": "authenticate (proxy/dataplane/spine.py",
    "  read_body (orjson parse + checks)": "read_body (proxy/dataplane/body.py",
    "  resolve (routing, prices)": "resolve (proxy/dataplane/spine.py",
    "  admit (metering, memory store)": "admit (proxy/metering/meter.py",
    "  dispatch (upstream call)": "dispatch (proxy/dataplane/dispatch.py",
    "    aiohttp ClientSession._request": "ClientSession._request (aiohttp/client.py",
    "    plugin build_request": "build_request (plugins/",
    "    plugin read_reply (orjson parse of the reply)": "read_reply (plugins/",
    "  stream relay": "relay (proxy/dataplane/relay.py",
    "  _meter (record, settle, metrics)": "_meter (proxy/dataplane/spine.py",
    "  access log line (on the loop)": "access (proxy/observe/logs.py",
    "  request id (secrets.token_hex)": "new_request_id (proxy/app.py",
    "prometheus_client, anywhere": "(prometheus_client/",
    "log writer thread (format + write)": "QueueListener._monitor (",
}


def _frame(raw: str) -> str:
    name, _, where = raw.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name


def collapsed(path: Path, limit: int = 25) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
        joined = ";".join(frames)
        for stage, marker in STAGES.items():
            if marker in joined:
                stages[stage] += n
    if not total:
        return f"no samples in {path}"

    def pct(n: int) -> str:
        return f"{n / total * 100:5.1f}%"

    out = [f"{total} samples of the gateway's threads while busy ({path})", "", "-- stages --"]
    out += [f"{pct(stages[s])}  {s}" for s in STAGES]
    out += ["", "-- own time (top of stack) --"]
    out += [f"{pct(n)}  {f}" for f, n in own.most_common(limit)]
    out += ["", "-- inclusive --"]
    out += [f"{pct(n)}  {f}" for f, n in inclusive.most_common(limit + 15)]
    return "\n".join(out)


def cprofile(path: Path, limit: int = 25) -> str:
    out = []
    for order in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(str(path), stream=buf).strip_dirs().sort_stats(order).print_stats(limit)
        out += [
            f"-- by {order} (cProfile times are wall clock and include the loop's idle time) --",
            buf.getvalue(),
        ]
    return "\n".join(out)


def print_hotspots(path: Path, limit: int = 25) -> None:
    if not path.exists():
        print(f"no profile at {path} (did the profiler exit cleanly?)")
        return
    print(cprofile(path, limit) if path.suffix == ".pstats" else collapsed(path, limit))


if __name__ == "__main__":
    print_hotspots(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results/gateway-pyspy.txt"))
