"""Client connections against a real gateway process (item 2 of issue 14): a request head must arrive
whole within ``server.header_timeout``, idle keep-alive connections close after
``server.keepalive_timeout``, past ``server.max_connections`` idle connections make room for new ones, and
the process raises its open-files limit at start, so idle and half-sent connections cannot starve new
requests. Everything stays on 127.0.0.1; the waits are liveness bounds, not timing claims."""

from __future__ import annotations

import contextlib
import resource
import socket
import time
import urllib.request
from collections.abc import Iterator

import orjson
import pytest
from support import AUTH, base_config

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess

IDLE = 2000
SLOW = 200
BOUND = 60.0  # seconds: how long the gateway may take to close what it must close (a liveness bound)


@contextlib.contextmanager
def open_files_soft_limit(limit: int) -> Iterator[None]:
    """Start processes with a low soft open-files limit (the usual default of 1024), then restore ours."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def gateway(threaded_fake: ThreadedFakeProvider) -> Iterator[GatewayProcess]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 3 * (IDLE + SLOW):
        pytest.skip(f"the hard open-files limit ({hard}) is too low for {IDLE + SLOW} client sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this test process holds 2,200 sockets
    config = base_config(threaded_fake.url)
    config["server"].update(header_timeout="1s", keepalive_timeout="2s", max_connections=1000)
    gw = GatewayProcess(config)
    # The gateway starts at 1024 open files, as on most systems: it must raise the limit itself.
    with open_files_soft_limit(1024):
        gw.start()
    try:
        yield gw
    finally:
        gw.__exit__(None, None, None)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def chat(url: str) -> int:
    body = orjson.dumps({"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
    req = urllib.request.Request(
        f"{url}/v1/chat/completions", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        status: int = resp.status
        return status


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(False)
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the gateway closed this connection (EOF or reset; a 503 refusal counts)."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def wait_all_closed(socks: list[socket.socket], bound: float) -> list[socket.socket]:
    """The sockets still open after ``bound`` seconds (liveness: the gateway should close them all)."""
    open_ = list(socks)
    deadline = time.monotonic() + bound
    while open_ and time.monotonic() < deadline:
        open_ = [s for s in open_ if not closed_by_peer(s)]
        if open_:
            time.sleep(0.2)
    return open_


def test_a_slow_head_is_cut_after_the_header_timeout_however_often_lines_arrive(
    gateway: GatewayProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + 20  # 40 lines: fewer than aiohttp's own cap on header lines
        cut = False
        line = 0
        while time.monotonic() < deadline and not cut:
            try:
                sock.sendall(f"X-Slow-{line}: a\r\n".encode())  # one line at a time, never the blank line
                line += 1
                sock.settimeout(0.5)
                cut = sock.recv(65536) == b""
            except TimeoutError:
                pass
            except OSError:
                cut = True
        assert cut, f"a head still arriving after 20 s ({line} lines) was never cut"


def test_idle_and_slow_head_connections_never_starve_new_requests(gateway: GatewayProcess) -> None:
    idle: list[socket.socket] = []
    slow: list[socket.socket] = []
    try:
        for i in range(IDLE):
            idle.append(connect(gateway.port))
            if i % 200 == 0:
                assert chat(gateway.url) == 200  # served while the idle connections pile up
        for _ in range(SLOW):
            sock = connect(gateway.port)
            sock.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer")
            slow.append(sock)
        for _ in range(20):
            assert chat(gateway.url) == 200
        assert wait_all_closed(slow, BOUND) == []
        assert wait_all_closed(idle, BOUND) == []
        assert chat(gateway.url) == 200
    finally:
        for sock in idle + slow:
            sock.close()
    assert '"open_files"' in gateway.log()  # the limit it raised to is logged at start
