"""A provider's TLS settings at work in a gateway: ``tls.ca_file`` trusts a private CA (beside the system's
store, or alone with ``system_ca: false``), ``tls.cert_file`` / ``tls.key_file`` present a client
certificate. The system's store is played by a second CA named in ``SSL_CERT_FILE``, the variable
OpenSSL reads its default store from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import AUTH, base_config
from upstream_support import PrivateCA, RawServer, answering

REPLY = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
)


@pytest.fixture
async def servers() -> AsyncIterator[list[RawServer]]:
    started: list[RawServer] = []
    yield started
    for server in started:
        await server.stop()


def providers(config: dict[str, Any], **named: tuple[RawServer, dict[str, Any] | None]) -> None:
    """Providers (each a server and its ``tls`` section), each the only target of the model of its name."""
    config["providers"] = {}
    for name, (server, tls) in named.items():
        provider = {"plugin": "openai_compatible", "base_url": f"https://localhost:{server.port}/v1"}
        config["providers"][name] = provider | ({"tls": tls} if tls is not None else {})
    config["models"] = {name: {"targets": [{"provider": name}]} for name in named}


async def ask(client: Any, model: str) -> tuple[int, str]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    response = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    if response.status == 200:
        assert (await response.json())["choices"][0]["message"]["content"] == "ok"
        return 200, ""
    return response.status, (await response.json())["error"]["message"]


def refused(result: tuple[int, str], provider: str) -> bool:
    status, message = result
    return status == 502 and f"'{provider}'" in message and "certificate" in message


async def test_system_ca_false_trusts_the_private_ca_alone(
    make_gateway: Callable[..., Any],
    servers: list[RawServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for folder in ("private", "system"):
        (tmp_path / folder).mkdir()
    private, system = PrivateCA(tmp_path / "private"), PrivateCA(tmp_path / "system")
    monkeypatch.setenv("SSL_CERT_FILE", str(system.ca_file))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "none"))
    servers.append(mine := await answering(REPLY, private.server_context("localhost")))
    servers.append(public := await answering(REPLY, system.server_context("localhost")))
    beside = {"ca_file": str(private.ca_file)}
    alone = {"ca_file": str(private.ca_file), "system_ca": False}
    config = base_config("http://127.0.0.1:1/v1")
    providers(
        config,
        untrusting=(mine, None),
        mine_beside=(mine, beside),
        public_beside=(public, beside),
        mine_alone=(mine, alone),
        public_alone=(public, alone),
    )
    client = await make_gateway(config)
    assert refused(await ask(client, "untrusting"), "untrusting")  # the private CA needs ca_file
    assert await ask(client, "mine_beside") == (200, "")
    assert await ask(client, "public_beside") == (200, "")  # the system's store is trusted too
    assert await ask(client, "mine_alone") == (200, "")
    assert refused(await ask(client, "public_alone"), "public_alone")  # ... but not with system_ca: false


async def test_a_client_certificate_from_cert_file_and_key_file(
    make_gateway: Callable[..., Any], servers: list[RawServer], tmp_path: Path
) -> None:
    ca = PrivateCA(tmp_path)
    servers.append(server := await answering(REPLY, ca.server_context("localhost", client_ca=True)))
    cert, key = ca.issue("gateway", client=True)
    both = tmp_path / "gateway-both.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    config = base_config("http://127.0.0.1:1/v1")
    providers(
        config,
        mutual=(server, {"ca_file": str(ca.ca_file), "cert_file": str(cert), "key_file": str(key)}),
        one_pem=(server, {"ca_file": str(ca.ca_file), "cert_file": str(both)}),
        anonymous=(server, {"ca_file": str(ca.ca_file)}),
    )
    client = await make_gateway(config)
    assert await ask(client, "mutual") == (200, "")
    assert await ask(client, "one_pem") == (200, "")  # cert_file holding the key as well
    status, message = await ask(client, "anonymous")  # no client certificate: the server hangs up
    assert status == 502 and "'anonymous'" in message, message
