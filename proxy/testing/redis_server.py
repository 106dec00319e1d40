"""Private ``redis-server`` processes for tests and benches: one server, or a 3-master Redis Cluster.

Each server runs on a free port in its own temporary directory, without persistence, and is stopped (and
its directory removed) by ``stop()``. ``freeze``/``thaw``/``kill`` simulate the outages the store must
survive: a frozen server accepts connections (the kernel completes the handshake) but never answers.

A missing ``redis-server`` raises :class:`FileNotFoundError`: tests that need Redis must fail, not skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

CLUSTER_BUS_OFFSET = 10000  # Redis Cluster's node-to-node bus listens on port + 10000


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if path is None:
        raise FileNotFoundError(f"{name} not found on PATH: install Redis (>= 7.0) to run these tests")
    return path


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, cluster: bool = False) -> int:
    """A port nobody listens on (and, for a cluster node, whose bus port is free too)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not cluster or (port + CLUSTER_BUS_OFFSET < 65536 and _port_is_free(port + CLUSTER_BUS_OFFSET)):
            return port
    raise RuntimeError("no free port found")


@dataclass
class RedisServer:
    """One private ``redis-server``; ``url`` is ``redis://127.0.0.1:<port>/0``."""

    port: int
    directory: Path
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start (or restart, after ``kill``) on the same port and wait until it answers PING."""
        command = [_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory), *self.args]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout} s")
            time.sleep(0.02)
        return self

    def answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        """A synchronous client for inspection (remember to close it)."""
        return redis.Redis(port=self.port, socket_timeout=5.0)

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted, nothing is answered (a hung server or a GC-like pause)."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, and wait: connections are refused until ``start()``."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Terminate and wait (a frozen server is thawed first, or it could not handle SIGTERM)."""
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        path = self.directory / "redis.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal(self, signum: signal.Signals) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("redis-server is not running")
        self.process.send_signal(signum)


def start_redis(*args: str, directory: Path | None = None) -> RedisServer:
    """Start a private ``redis-server`` (extra ``args`` are passed on the command line)."""
    home = directory or Path(tempfile.mkdtemp(prefix="egw-redis-"))
    return RedisServer(free_port(), home, tuple(args)).start()


@dataclass
class RedisClusterServers:
    """A Redis Cluster of private masters; ``url`` names one node (clients discover the rest)."""

    nodes: list[RedisServer]
    directory: Path

    @property
    def url(self) -> str:
        return self.nodes[0].url.removesuffix("/0")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis_cluster(masters: int = 3, timeout: float = 30.0) -> RedisClusterServers:
    """Start ``masters`` cluster-enabled servers, join them with ``redis-cli --cluster create`` (no
    replicas) and wait until every node reports ``cluster_state:ok``."""
    home = Path(tempfile.mkdtemp(prefix="egw-redis-cluster-"))
    cluster = RedisClusterServers([], home)
    try:
        for index in range(masters):
            directory = home / f"node{index}"
            directory.mkdir()
            options = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
            node = RedisServer(
                free_port(cluster=True), directory, (*options, "--cluster-node-timeout", "2000")
            )
            cluster.nodes.append(node.start())
        addresses = [f"127.0.0.1:{node.port}" for node in cluster.nodes]
        create = [_binary("redis-cli"), "--cluster", "create", *addresses]
        done = subprocess.run(
            [*create, "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout!r} {done.stderr!r}")
        deadline = time.monotonic() + timeout
        while not all(_cluster_ok(node) for node in cluster.nodes):
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster_state did not become ok within {timeout} s")
            time.sleep(0.05)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _cluster_ok(node: RedisServer) -> bool:
    with node.client() as client:
        info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text
