"""Turning load results into figures: per-phase summaries, the issue's ratios and targets, the table."""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench.load import LoadResult, percentile

TARGETS = ("direct", "passthrough", "gateway")
THROUGHPUT_TARGET_PCT = 60.0
RSS_TARGET_MB = 80.0
TTFB_TARGET_MS = 2.0
REDIS_TARGET_PCT = 80.0

Summary = dict[str, Any]


def _ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 3)


def summarize(res: LoadResult, cpu: float | None = None) -> Summary:
    """One phase of one target; ``cpu`` is the measured server's CPU seconds during the phase."""
    ok = res.ok
    ttfb = [s.ttfb for s in ok]
    ttlb = [s.ttlb for s in ok]
    out: Summary = {
        "concurrency": res.concurrency,
        "seconds": round(res.wall, 3),
        "ok": len(ok),
        "failed": res.failures,
        "errors": res.errors,
        "statuses": sorted({s.status for s in res.samples}),
        "rps": round(res.rps(), 1),
        "ttfb_p50_ms": _ms(ttfb, 50),
        "ttfb_p99_ms": _ms(ttfb, 99),
        "ttlb_p50_ms": _ms(ttlb, 50),
        "ttlb_p99_ms": _ms(ttlb, 99),
    }
    if cpu is not None and ok:
        out["cpu_ms_per_req"] = round(cpu / len(ok) * 1000, 4)
        out["core_busy_pct"] = round(cpu / res.wall * 100, 1)
    return out


def spacing(res: LoadResult) -> Summary:
    """How a dripped stream arrived: reads carrying body bytes, and the gaps between them."""
    gaps = [b - a for s in res.ok for a, b in zip(s.arrivals, s.arrivals[1:], strict=False)]
    reads = [len(s.arrivals) for s in res.ok]
    return {
        "reads_per_stream_p50": statistics.median(reads) if reads else math.nan,
        "gap_p50_ms": _ms(gaps, 50),
        "gap_p99_ms": _ms(gaps, 99),
    }


def pooled_rps(rounds: list[Summary]) -> float:
    ok = sum(r["ok"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    return round(ok / seconds, 1) if seconds else 0.0


def pooled_cpu(rounds: list[Summary]) -> float | None:
    cpus = [r["cpu_ms_per_req"] for r in rounds if "cpu_ms_per_req" in r]
    return round(statistics.median(cpus), 4) if cpus else None


def verdicts(results: dict[str, Summary], rss: dict[str, Summary], drip: dict[str, Any]) -> Summary:
    """The issue's acceptance figures (#5), each with its target and whether this run met it."""
    tput = {t: pooled_rps(results[t]["throughput"]) for t in TARGETS}
    per_round = [
        round(g["rps"] / p["rps"] * 100, 1) if p["rps"] else math.nan
        for g, p in zip(results["gateway"]["throughput"], results["passthrough"]["throughput"], strict=True)
    ]
    pct = round(tput["gateway"] / tput["passthrough"] * 100, 1) if tput["passthrough"] else math.nan
    ttfb = {t: results[t]["stream"]["ttfb_p50_ms"] for t in TARGETS}
    added_direct = round(ttfb["gateway"] - ttfb["direct"], 3)
    added_pass = round(ttfb["gateway"] - ttfb["passthrough"], 3)
    idle = rss["gateway"]["startup_mb"]
    after = rss["gateway"]["after_load_mb"]
    return {
        "throughput_pct_of_passthrough": {
            "value": pct,
            "per_round": per_round,
            "target": f">= {THROUGHPUT_TARGET_PCT:.0f}",
            "met": pct >= THROUGHPUT_TARGET_PCT,
        },
        "idle_rss_mb": {
            "value": idle,
            "after_load": after,
            "target": f"< {RSS_TARGET_MB:.0f}",
            "met": idle < RSS_TARGET_MB,
        },
        "ttfb_added_p50_ms": {
            "vs_direct": added_direct,
            "vs_passthrough": added_pass,
            "target": f"< {TTFB_TARGET_MS:g}",
            "met": added_direct < TTFB_TARGET_MS,
        },
        "no_buffering": drip,
        **_redis_verdict(results),
    }


def _redis_verdict(results: dict[str, Summary]) -> Summary:
    """Issue 3: the gateway on Redis keeps at least 80% of its throughput on the memory store."""
    if "gateway-redis" not in results:
        return {}
    memory, redis = (pooled_rps(results[t]["throughput"]) for t in ("gateway", "gateway-redis"))
    per_round = [
        round(r["rps"] / m["rps"] * 100, 1) if m["rps"] else math.nan
        for r, m in zip(results["gateway-redis"]["throughput"], results["gateway"]["throughput"], strict=True)
    ]
    pct = round(redis / memory * 100, 1) if memory else math.nan
    target = {"value": pct, "per_round": per_round, "target": f">= {REDIS_TARGET_PCT:.0f}"}
    return {"redis_pct_of_memory": {**target, "met": pct >= REDIS_TARGET_PCT}}


def drip_verdict(res: Summary, drip_ms: float, events: int) -> dict[str, Any]:
    """Unbuffered: the first event arrives long before the last, and the events arrive spaced like the
    upstream wrote them (one read per event, ``drip_ms`` apart), not in one burst at the end."""
    gap = res["gap_p50_ms"]
    unbuffered = (
        res["ttfb_p50_ms"] < res["ttlb_p50_ms"] / 4
        and 0.5 * drip_ms <= gap <= 1.5 * drip_ms
        and res["reads_per_stream_p50"] >= 0.8 * events
    )
    return {
        "ttfb_p50_ms": res["ttfb_p50_ms"],
        "ttlb_p50_ms": res["ttlb_p50_ms"],
        "gap_p50_ms": gap,
        "reads_per_stream_p50": res["reads_per_stream_p50"],
        "upstream_gap_ms": drip_ms,
        "upstream_events": events,
        "met": unbuffered,
    }


def _f(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(results: dict[str, Summary], rss: dict[str, Summary]) -> str:
    rows = [
        ("non-stream c=%d  req/s", "throughput", "rps", 0),
        ("  latency p50 ms", "throughput", "ttlb_p50_ms", 2),
        ("  latency p99 ms", "throughput", "ttlb_p99_ms", 2),
        ("  server CPU ms/req", "throughput", "cpu_ms_per_req", 3),
        ("  server core busy %", "throughput", "core_busy_pct", 0),
        ("non-stream c=%d  p50 ms", "latency", "ttlb_p50_ms", 2),
        ("  p99 ms", "latency", "ttlb_p99_ms", 2),
        ("stream c=%d  first byte p50 ms", "stream", "ttfb_p50_ms", 2),
        ("  first byte p99 ms", "stream", "ttfb_p99_ms", 2),
        ("  last byte p50 ms", "stream", "ttlb_p50_ms", 2),
        ("  last byte p99 ms", "stream", "ttlb_p99_ms", 2),
        ("stream c=%d  streams/s", "stream_load", "rps", 0),
        ("  server CPU ms/stream", "stream_load", "cpu_ms_per_req", 3),
        ("dripped stream c=%d  first byte p50 ms", "drip", "ttfb_p50_ms", 2),
        ("  last byte p50 ms", "drip", "ttlb_p50_ms", 1),
        ("  gap between reads p50 ms", "drip", "gap_p50_ms", 1),
        ("  reads per stream p50", "drip", "reads_per_stream_p50", 0),
    ]
    width = 40
    present = [t for t in (*TARGETS, "gateway-redis") if t in results]
    lines = [f"{'':<{width}}" + "".join(f"{t:>14}" for t in present)]
    for label, phase, field, digits in rows:
        if "%d" in label:
            label = label % _phase(results["gateway"], phase)["concurrency"]
        cells = []
        for t in present:
            summary = _phase(results[t], phase)
            value = summary.get(field)
            if phase == "throughput":
                value = _throughput_cell(results[t]["throughput"], field)
            cells.append(f"{_f(value, digits):>14}")
        lines.append(f"{label:<{width}}" + "".join(cells))
    for label, field in (("RSS after startup MB", "startup_mb"), ("RSS after load MB", "after_load_mb")):
        lines.append(f"{label:<{width}}" + "".join(f"{_f(rss[t].get(field), 1):>14}" for t in present))
    return "\n".join(lines)


def _phase(result: Summary, phase: str) -> Summary:
    value = result[phase]
    return value[0] if isinstance(value, list) else value  # type: ignore[no-any-return]


def _throughput_cell(rounds: list[Summary], field: str) -> object:
    if field == "rps":
        return pooled_rps(rounds)
    if field == "cpu_ms_per_req":
        return pooled_cpu(rounds)
    values = [r[field] for r in rounds if field in r]
    return statistics.median(values) if values else None


def verdict_lines(v: Summary) -> str:
    def mark(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    t, r = v["throughput_pct_of_passthrough"], v["idle_rss_mb"]
    f, d = v["ttfb_added_p50_ms"], v["no_buffering"]
    rounds = ", ".join(_f(x, 1) for x in t["per_round"])
    return "\n".join(
        [
            f"[{mark(t['met'])}] gateway non-stream throughput = {_f(t['value'], 1)}% of the pass-through "
            f"(target {t['target']}%; per round: {rounds})",
            f"[{mark(r['met'])}] gateway idle RSS = {_f(r['value'], 1)} MB after startup "
            f"({_f(r['after_load'], 1)} MB after the load; target {r['target']} MB)",
            f"[{mark(f['met'])}] stream TTFB added at p50 = {_f(f['vs_direct'], 3)} ms vs direct, "
            f"{_f(f['vs_passthrough'], 3)} ms vs pass-through (target {f['target']} ms)",
            f"[{mark(d['met'])}] no buffering: through the gateway a stream of {d['upstream_events']} events "
            f"written {_f(d['upstream_gap_ms'], 0)} ms apart arrives in "
            f"{_f(d['reads_per_stream_p50'], 0)} reads "
            f"{_f(d['gap_p50_ms'], 1)} ms apart (p50); first byte {_f(d['ttfb_p50_ms'], 2)} ms, "
            f"last byte {_f(d['ttlb_p50_ms'], 1)} ms",
            *_redis_line(v, mark),
        ]
    )


def _redis_line(v: Summary, mark: Any) -> list[str]:
    if "redis_pct_of_memory" not in v:
        return []
    r = v["redis_pct_of_memory"]
    rounds = ", ".join(_f(x, 1) for x in r["per_round"])
    return [
        f"[{mark(r['met'])}] gateway non-stream throughput on Redis = {_f(r['value'], 1)}% of the same "
        f"gateway on the memory store (target {r['target']}%; per round: {rounds})"
    ]
