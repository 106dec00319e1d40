"""Malformed request heads against a real gateway process (item 4 of issue 14): aiohttp's server refuses
them, and the gateway's log must get one short line at most, never the head (with its ``Authorization``
secret or the admin token) and never a traceback."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable

import pytest
from support import ADMIN_TOKEN, AUTH, KEY, base_config

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess

HEADS = [
    # bare LF line endings
    f"POST /v1/chat/completions HTTP/1.1\nHost: x\nAuthorization: Bearer {KEY}\nContent-Length: 2\n\n{{}}",
    f"GET /admin/usage/records HTTP/1.1\nHost: x\nAuthorization: Bearer {ADMIN_TOKEN}\n\n",
    # a mix of CRLF and bare LF
    f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\nAuthorization: Bearer {KEY}\r\nX-A: b\n\r\n",
    # a space before the colon, a control character in a value
    f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer {KEY}\r\n\r\n",
    f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\x01\r\n\r\n",
]


@pytest.fixture(scope="module")
def gateway(
    threaded_fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]
) -> GatewayProcess:
    return gateway_process(base_config(threaded_fake.url))


def send_raw(port: int, head: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
        return answer


def test_malformed_heads_leave_no_secret_and_no_traceback_in_the_log(gateway: GatewayProcess) -> None:
    rounds = 20
    for _ in range(rounds):
        for head in HEADS:
            assert send_raw(gateway.port, head).split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    # A well-formed request afterwards: once its access line is in the log, so is anything logged before.
    req = urllib.request.Request(f"{gateway.url}/v1/models", headers={**AUTH, "x-request-id": "flush-mark"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    deadline = time.monotonic() + 30
    while "flush-mark" not in gateway.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = gateway.log()
    assert "flush-mark" in log
    assert KEY not in log
    assert ADMIN_TOKEN not in log
    assert "Traceback" not in log
    assert "Bearer" not in log
    noise = [line for line in log.splitlines() if "flush-mark" not in line and '"status":200' not in line]
    # Far fewer lines than malformed requests, each one short.
    assert len(noise) < rounds, "\n".join(noise[:5])
    assert all(len(line) < 400 for line in noise), max(noise, key=len)
