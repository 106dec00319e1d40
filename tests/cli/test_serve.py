"""``efflux-gateway serve``: where it listens comes from the config (``server.host``, ``server.port``)
unless the command line overrides it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from support import base_config

from proxy.testing.gateway_process import free_port

pytestmark = pytest.mark.e2e  # a gateway process


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_serve_listens_on_the_configured_host_and_port(tmp_path: Path) -> None:
    port = free_port()
    config = base_config("http://127.0.0.1:9/v1")
    config["server"].update({"host": "127.0.0.2", "port": port})  # another loopback address
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(path)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        for _ in range(200):  # a liveness bound of ~20 s on a loaded machine, not a timing claim
            if healthy(f"http://127.0.0.2:{port}") or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert healthy(f"http://127.0.0.2:{port}"), (tmp_path / "gateway.log").read_text()
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
            pass  # nothing listens on the other address
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
