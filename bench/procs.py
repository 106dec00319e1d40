"""Child processes of the benchmark: started pinned to a core, probed until ready, measured through
/proc, and always stopped (also on Ctrl-C, and by the kernel if the benchmark itself is killed).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port that was free a moment ago (the child binds it right after; a collision fails loudly)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinning() -> tuple[bool, str]:
    """Whether we can pin (taskset present and at least two CPUs usable), and why not if not."""
    if shutil.which("taskset") is None:
        return False, "taskset not found: processes run unpinned"
    if len(os.sched_getaffinity(0)) < 2:
        return False, "fewer than two usable CPUs: processes run unpinned"
    return True, ""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the benchmark dies (even by SIGKILL), the kernel sends
    # the child SIGTERM, so no upstream or gateway outlives it. Survives the exec of taskset and python.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid  # taskset execs the command, so this is the server's own pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT first (aiohttp and cProfile shut down cleanly on it), then SIGKILL."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def spawn(
    name: str,
    argv: Sequence[str],
    cpu: int | None,
    log_dir: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> Child:
    cmd = [*(["taskset", "-c", str(cpu)] if cpu is not None else []), *argv]
    log = log_dir / f"{name}.log"
    out: IO[bytes]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
            preexec_fn=_die_with_parent,
        )
    return Child(name, proc, log)


def pyspy() -> str | None:
    """py-spy from the venv (``pip install py-spy``) or PATH: the sampling profiler for ``--profile``."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def python_module(module: str, *args: str, profile_to: Path | None = None) -> list[str]:
    if profile_to is not None:
        return [sys.executable, "-m", "cProfile", "-o", str(profile_to), "-m", module, *args]
    return [sys.executable, "-m", module, *args]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (resolution: one clock tick, usually 10 ms)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
