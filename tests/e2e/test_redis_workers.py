"""``serve --workers N``: refused with the memory store (exit code 2: each process would keep its own
limits and ledger), served by N processes on one port with Redis. (The budget race in
``test_redis_limits.py`` runs on a ``--workers 3`` gateway too.)"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from redis_support import metered_config

from proxy.testing.gateway_process import GatewayProcess, free_port
from proxy.testing.redis_server import RedisServer


def test_workers_are_refused_with_the_memory_store(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(metered_config("http://127.0.0.1:9/v1", {"backend": "memory"}, [])))
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config), "--port", str(free_port()),
         "--workers", "2"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--workers 2 needs the redis store" in done.stderr


@pytest.mark.redis
def test_workers_share_one_port_with_redis(tmp_path: Path, private_redis: RedisServer) -> None:
    store = {"backend": "redis", "url": private_redis.url, "journal": str(tmp_path / "j")}
    with GatewayProcess(metered_config("http://127.0.0.1:9/v1", store, []), workers=3) as gateway:
        assert gateway.proc is not None
        deadline = time.monotonic() + 10
        workers: list[int] = []
        while len(workers) < 3 and time.monotonic() < deadline:
            children = Path(f"/proc/{gateway.proc.pid}/task/{gateway.proc.pid}/children").read_text()
            workers = [int(pid) for pid in children.split() if _serves(int(pid))]
            time.sleep(0.1)
        assert len(workers) == 3
        for _ in range(10):
            with urllib.request.urlopen(f"{gateway.url}/readyz", timeout=5) as resp:
                assert resp.status == 200


def _serves(pid: int) -> bool:
    """A spawned worker (not multiprocessing's resource tracker)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
