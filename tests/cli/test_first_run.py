"""The first run as a new user meets it, with the gateway as a process:

- ``scripts/serve`` serves the example config (its fake provider answers the ``demo`` model) and its admin
  token opens the dashboard;
- serving needs no test-only package (they are made unimportable here);
- the gateway prints where it listens, the dashboard's URL and how to log in, only once it listens, and
  never the admin token itself;
- ``--allow-unsafe-bind`` is the one way past the safe-start refusal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from support import base_config

from proxy.testing.gateway_process import free_port

pytestmark = pytest.mark.e2e  # gateway processes

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"efflux-gateway: listening on (\S+):(\d+)")
TEST_ONLY = ("pytest", "_pytest", "openai", "anthropic", "playwright", "schemathesis", "mypy", "ruff")
# Runs the CLI with the test-only packages unimportable: what a base install (scripts/install) has.
WITHOUT_TEST_PACKAGES = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TEST_ONLY!r}:
            raise ImportError("test-only package imported: " + name)
sys.meta_path.insert(0, Block())
if sys.argv[1] == "fake":
    import runpy
    sys.argv = ["fake_provider", *sys.argv[2:]]
    runpy.run_module("proxy.testing.fake_provider", run_name="__main__")
else:
    from proxy.cli.main import main
    sys.exit(main(sys.argv[1:]))
"""


def post(url: str, body: object, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for_line(proc: subprocess.Popen[str], pattern: re.Pattern[str], seen: list[str]) -> re.Match[str]:
    """Read stderr until a line matches (a liveness bound: the process ends or 60 s pass)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError("the process ended:\n" + "".join(seen))
        seen.append(line)
        if match := pattern.search(line):
            return match
    raise AssertionError("no such line:\n" + "".join(seen))


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # scripts/serve's children too are stopped through the group
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EFFLUX_")}
    env.update(extra)
    return env


def login(url: str, token: str) -> tuple[int, dict[str, object]]:
    return post(f"{url}/ui/login", {"token": token}, {"Origin": url, "X-Efflux-UI": "1"})


def test_scripts_serve_serves_the_demo_and_its_admin_token_opens_the_dashboard() -> None:
    port, fake_port = free_port(), free_port()
    token = "egw-admin-test-token-0123456789abcdef"
    env = environment(
        EFFLUX_ADMIN_TOKEN=token,
        FAKE_PROVIDER_PORT=str(fake_port),
        LOCAL_BASE_URL=f"http://127.0.0.1:{fake_port}/v1",
    )
    seen: list[str] = []
    with process([str(ROOT / "scripts" / "serve"), "--port", str(port)], env) as proc:
        match = wait_for_line(proc, LISTENING, seen)
        assert (match.group(1), int(match.group(2))) == ("127.0.0.1", port)
        dashboard = wait_for_line(proc, re.compile(r"dashboard (\S+) : (.*)"), seen)
        url = f"http://127.0.0.1:{port}"
        assert dashboard.group(1) == f"{url}/ui/"
        assert f"ending in …{token[-4:]}" in dashboard.group(2)
        assert token not in "".join(seen)

        status, body = login(url, token)
        assert (status, body["kind"]) == (200, "admin"), body
        chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        auth = {"Authorization": "Bearer egw-demo-key-change-me"}
        for _ in range(300):  # the fake provider starts beside the gateway: a liveness bound of ~30 s
            status, body = post(f"{url}/v1/chat/completions", chat, auth)
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, body


def test_serving_needs_no_test_package_and_the_line_comes_once_listening(tmp_path: Path) -> None:
    fake_port = free_port()
    config = base_config(f"http://127.0.0.1:{fake_port}/v1")
    config["server"]["port"] = 0  # any free port: the line says which
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = environment()
    base = [sys.executable, "-c", WITHOUT_TEST_PACKAGES]
    with (
        process([*base, "fake", "--port", str(fake_port)], env),
        process([*base, "serve", "--config", str(path)], env) as gateway,
    ):
        seen: list[str] = []
        match = wait_for_line(gateway, LISTENING, seen)
        url = f"http://127.0.0.1:{match.group(2)}"
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:  # listening, as it said
            assert response.status == 200
        with urllib.request.urlopen(f"{url}/ui/login", timeout=10) as response:  # the dashboard's files
            assert response.status == 200
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(300):  # the fake provider's start: a liveness bound
            status, body = post(
                f"{url}/v1/chat/completions", chat, {"Authorization": "Bearer egw-test-key-0123456789"}
            )
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, body
        assert "test-only package imported" not in "".join(seen)


def test_allow_unsafe_bind_is_the_way_past_the_refusal(tmp_path: Path) -> None:
    config = base_config("http://127.0.0.1:9/v1")
    config["server"] = {"port": 0}  # no admin token: unsafe on 0.0.0.0
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    serve = [sys.executable, "-m", "proxy", "serve", "--config", str(path), "--host", "0.0.0.0"]
    refused = subprocess.run(serve, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "server.admin_token: not set" in refused.stderr
    seen: list[str] = []
    with process([*serve, "--allow-unsafe-bind"], environment()) as proc:
        match = wait_for_line(proc, LISTENING, seen)
        assert match.group(1) == "0.0.0.0"
        notice = wait_for_line(proc, re.compile(r"dashboard (\S+) : (.*)"), seen)
        assert notice.group(1) == f"http://127.0.0.1:{match.group(2)}/ui/"
        assert "no admin token is configured" in notice.group(2)
