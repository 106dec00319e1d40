"""End to end: the official ``openai`` SDK streams through a real gateway process, which reaches a TLS
provider signed by a private CA (trusted through ``tls.ca_file``) through a local CONNECT proxy that
wants a password (from ``${PROXY_PASS}``). A provider without the CA fails with a 502 naming it."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from aiohttp import web
from support import KEY, base_config
from upstream_support import HTTPProxy, PrivateCA

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess


class TLSFakeProvider(ThreadedFakeProvider):
    """The fake provider served over TLS (its certificate names localhost), in a background thread."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self.context = context

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> TLSFakeProvider:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=self.context).start()
        self.port = self._runner.addresses[0][1]
        return self

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, HTTPProxy]]:
    ca = PrivateCA(Path(tmp_path_factory.mktemp("ca")))
    fake = TLSFakeProvider(ca.server_context("localhost")).start_in_thread()
    loop = fake._loop
    assert loop is not None
    proxy = asyncio.run_coroutine_threadsafe(HTTPProxy(credentials="alice:s3cret").start(), loop).result(5)
    config = base_config(fake.url)
    config["providers"] = {
        "private": {
            "plugin": "openai_compatible",
            "base_url": fake.url,
            "proxy": f"http://alice:${{PROXY_PASS}}@127.0.0.1:{proxy.port}",
            "tls": {"ca_file": str(ca.ca_file)},
        },
        "untrusting": {"plugin": "openai_compatible", "base_url": fake.url},
    }
    config["models"] = {
        "e2e-*": {"targets": [{"provider": "private"}]},
        "wrong-ca": {"targets": [{"provider": "untrusting"}]},
    }
    env = {"PROXY_PASS": "s3cret", "HTTPS_PROXY": "", "https_proxy": "", "NO_PROXY": "", "no_proxy": ""}
    try:
        with GatewayProcess(config, env=env) as gw:
            yield gw, proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(5)
        fake.stop_thread()


def test_a_stream_through_a_connect_proxy_to_a_private_ca_upstream(
    world: tuple[GatewayProcess, HTTPProxy],
) -> None:
    gw, proxy = world
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="e2e-private", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    assert proxy.tunnels >= 1
    credential = base64.b64encode(b"alice:s3cret")
    assert proxy.heads[0].startswith(b"CONNECT localhost:")
    assert b"Proxy-Authorization: Basic " + credential + b"\r\n" in proxy.heads[0]
    reply = client.chat.completions.create(model="e2e-again", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


def test_an_untrusted_certificate_is_a_502_naming_the_provider(
    world: tuple[GatewayProcess, HTTPProxy],
) -> None:
    gw, _ = world
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="wrong-ca", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    message = str(caught.value.message)
    assert "untrusting" in message and "certificate" in message, message
