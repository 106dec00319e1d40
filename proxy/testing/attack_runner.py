"""Play one attack of :mod:`proxy.testing.attacks` against a gateway process and measure what it cost.

The attacked client (one key) sends its request and reads the answer (at most ``READ_CAP`` bytes); the
hostile upstream's script runs until the gateway closes its connection or the script is done; then a
client of another key asks the same provider for an honest answer. Meanwhile the gateway's resident
memory is sampled from ``/proc/<pid>/status`` (and its high-water mark reset and read where the kernel
allows), its CPU time read from ``/proc/<pid>/stat`` and, when asked, ``/healthz`` polled to find the
worst latency another client saw during the attack.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import orjson

from proxy.testing.attacks import ATTACKER, VICTIM, Attack
from proxy.testing.hostile_upstream import MIB, HostileUpstream

READ_CAP = 64 * MIB  # the most of one answer read here: a runaway relay is cut, not buffered
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Answer:
    status: int  # 0: no HTTP answer (the text says why)
    body: bytes


@dataclass
class Result:
    attack: Attack
    answer: Answer
    follow_up: Answer
    follow_up_model: str
    rss_growth_mib: float  # peak during the attack over the resident size before it
    peak_rss_mib: float
    cpu_seconds: float  # the gateway process's, during the attack
    worst_health_ms: float | None  # the slowest /healthz during the attack (None: not polled)
    reused: bool  # the gateway sent another request on the attack's connection


def post(gateway_url: str, key: str, model: str, stream: bool, timeout: float = 90.0) -> Answer:
    where = urlsplit(gateway_url)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=timeout)
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        conn.request("POST", "/v1/chat/completions", orjson.dumps(body), headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.read(READ_CAP))
    except (OSError, http.client.HTTPException) as exc:
        return Answer(0, f"{type(exc).__name__}: {exc}".encode())
    finally:
        conn.close()


def status_kib(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class Watch:
    """While open: samples the process's RSS (every 10 ms) and, with ``health_url``, times ``/healthz``
    one call after another. The peak is also read from VmHWM when it could be reset at the start."""

    def __init__(self, pid: int, health_url: str | None = None) -> None:
        self.pid = pid
        self.health_url = health_url
        self.base_kib = 0
        self.peak_kib = 0
        self.worst_health: float | None = None
        self._hwm_reset = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Watch:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM back to the current RSS
            self._hwm_reset = True
        except OSError:
            pass
        self.base_kib = self.peak_kib = status_kib(self.pid, "VmRSS")
        self._threads = [threading.Thread(target=self._sample, daemon=True)]
        if self.health_url is not None:
            self.worst_health = 0.0
            self._threads.append(threading.Thread(target=self._poll, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        if self._hwm_reset:
            self.peak_kib = max(self.peak_kib, status_kib(self.pid, "VmHWM"))

    @property
    def growth_mib(self) -> float:
        return max(0, self.peak_kib - self.base_kib) / 1024

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_kib = max(self.peak_kib, status_kib(self.pid, "VmRSS"))

    def _poll(self) -> None:
        assert self.health_url is not None
        where = urlsplit(self.health_url)
        while not self._stop.is_set():
            started = time.monotonic()
            conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30)
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            conn.close()
            took = time.monotonic() - started
            self.worst_health = max(self.worst_health or 0.0, took)
            self._stop.wait(0.02)


def run(
    gateway_url: str, pid: int, upstream: HostileUpstream, attack: Attack, poll_health: bool = False
) -> Result:
    upstream.scripts[attack.model] = attack.script
    upstream.arm()
    first = len(upstream.connections)
    watch = Watch(pid, gateway_url if poll_health else None)
    with watch:
        cpu = cpu_seconds(pid)
        answer = post(gateway_url, ATTACKER, attack.model, attack.stream)
        upstream.release()
        upstream.settled(70.0)
        cpu = cpu_seconds(pid) - cpu
    follow_up_model = "ok-after-" + attack.model
    follow_up = post(gateway_url, VICTIM, follow_up_model, attack.stream)
    attacked = [c.models for c in upstream.connections[first:] if attack.model in c.models]
    reused = any(models[-1] != attack.model for models in attacked)
    worst = watch.worst_health * 1000 if watch.worst_health is not None else None
    return Result(
        attack,
        answer,
        follow_up,
        follow_up_model,
        watch.growth_mib,
        watch.peak_kib / 1024,
        cpu,
        worst,
        reused,
    )


def problems(result: Result) -> list[str]:
    """What the gateway got wrong in this attack (empty: it held)."""
    attack, answer = result.attack, result.answer
    found: list[str] = []
    expect = attack.expect
    if expect == "502 or error event":  # a stream: which one depends on where the gateway stopped it
        expect = "error event" if answer.status == 200 else "502"
    if expect == "502":
        error = _envelope(answer.body)
        if answer.status != 502 or error is None or error.get("type") != "upstream_error":
            found.append(f"expected a 502 upstream_error envelope, got {_show(answer)}")
    elif expect == "error event":
        events = _events(answer.body)
        last = _json(events[-1]) if events else None
        error = last.get("error") if isinstance(last, dict) else None
        if answer.status != 200 or len(events) < 2 or b"[DONE]" in events or not isinstance(error, dict):
            found.append(f"expected the first event then an error event, got {_show(answer)}")
    elif _content(answer, attack.stream) != attack.model:
        found.append(f"expected its own answer {attack.model!r}, got {_show(answer)}")
    if _content(result.follow_up, attack.stream) != result.follow_up_model:
        found.append(f"the next client (another key) got {_show(result.follow_up)}")
    if result.rss_growth_mib >= attack.rss_mib:
        found.append(f"RSS grew by {result.rss_growth_mib:.0f} MiB (bound: {attack.rss_mib} MiB)")
    if result.reused:
        found.append("the gateway sent another request on the attack's connection")
    return found


def _json(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _envelope(body: bytes) -> dict[str, object] | None:
    obj = _json(body)
    error = obj.get("error") if isinstance(obj, dict) else None
    return error if isinstance(error, dict) else None


def _events(body: bytes) -> list[bytes]:
    """The data of each SSE event (one ``data:`` line each, as the gateway sends them)."""
    blocks = body.replace(b"\r\n", b"\n").split(b"\n\n")
    return [b.removeprefix(b"data:").strip() for b in blocks if b.startswith(b"data:")]


def _content(answer: Answer, stream: bool) -> str | None:
    """The assistant's text in a 200 answer (a stream counts only when it ends with [DONE])."""
    if answer.status != 200:
        return None
    if not stream:
        obj = _json(answer.body)
        try:
            return str(obj["choices"][0]["message"]["content"])  # type: ignore[index]
        except (TypeError, KeyError, IndexError):
            return None
    events = _events(answer.body)
    if not events or events[-1] != b"[DONE]":
        return None
    text: list[str] = []
    for event in events[:-1]:
        obj = _json(event)
        choices = obj.get("choices") if isinstance(obj, dict) else None
        for choice in choices if isinstance(choices, list) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                text.append(delta["content"])
    return "".join(text)


def _show(answer: Answer) -> str:
    return f"HTTP {answer.status} {answer.body[:300]!r}"
