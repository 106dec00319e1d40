"""A private PostgreSQL server for tests and benches: ``initdb`` in a temporary directory, ``postgres`` on
a free port, stopped (and its directory removed) by ``stop()``. ``crash()`` is an immediate shutdown (the
server dies without a checkpoint, as on a kill; ``start()`` again runs crash recovery).

The binaries are found on PATH or under ``/usr/lib/postgresql/*/bin``. PostgreSQL refuses to run as root:
as root, the server runs as the ``postgres`` user (``runuser``), which then owns the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from proxy.testing.redis_server import free_port


def binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise FileNotFoundError(f"{name} not found (PATH, /usr/lib/postgresql/*/bin): install PostgreSQL")
    return found


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> PostgresServer:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            _as_owner(
                [binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )
        return self

    def start(self, timeout: float = 30.0) -> PostgresServer:
        command = [binary("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.directory)]
        command += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"]
        log = (self.directory / "postgres.log").open("ab")
        self.process = subprocess.Popen(_as_owner(command), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"postgres on port {self.port} did not answer within {timeout} s")
            time.sleep(0.1)
        return self

    def answers(self) -> bool:
        result = subprocess.run(
            [binary("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-t", "1"],
            capture_output=True,
        )
        return result.returncode == 0

    def listens(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def crash(self) -> None:
        """Immediate shutdown: every connection is cut, nothing is checkpointed."""
        self._ctl("immediate")

    def stop(self) -> None:
        self._ctl("fast")

    def _ctl(self, mode: str) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run(
            _as_owner([binary("pg_ctl"), "-D", str(self.data), "stop", "-m", mode, "-w", "-t", "30"]),
            capture_output=True,
        )
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.directory / "postgres.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""


def spawn_postgres() -> PostgresServer:
    """A new private server, started (``stop()`` it, then ``cleanup(server)``)."""
    directory = Path(tempfile.mkdtemp(prefix="efflux-pg-"))
    return PostgresServer(free_port(), directory).init().start()


def cleanup(server: PostgresServer) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)
