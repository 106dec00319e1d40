"""Each plugin's ``list_models`` against a local server replaying its recorded catalogue: field names,
units (USD per 1M tokens), strings as numbers, and the sync CLI with its progress bar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from support import FIXTURES, fixture

from plugins.aihubmix import AiHubMix
from plugins.openai_compatible import OpenAICompatible
from plugins.openrouter import OpenRouter
from proxy.plugin import CatalogueError, ProviderSettings
from proxy.testing.fake_provider import Behaviour, FakeProvider, ThreadedFakeProvider


async def test_aihubmix_catalogue_per_1k_to_per_1m(fake: FakeProvider) -> None:
    fake.gets["/api/v1/models"] = fixture("aihubmix/api-v1-models.json")
    fake.gets["/v1/models"] = fixture("aihubmix/v1-models.json")
    plugin = AiHubMix(ProviderSettings("aihubmix", fake.url, "sk-x", {"APP-Code": "CODE"}))
    assert plugin.catalogue_url == f"http://127.0.0.1:{fake.port}/api/v1/models"
    assert AiHubMix(ProviderSettings("a", "https://aihubmix.com/v1")).catalogue_url == (
        "https://aihubmix.com/api/v1/models"
    )
    async with aiohttp.ClientSession() as http:
        models = {m.id: m for m in await plugin.list_models(http)}
    sonnet = models["claude-sonnet-4-5"]
    # 0.003 / 0.015 / 0.0003 / 0.00375 USD per 1K
    assert (sonnet.input, sonnet.output, sonnet.cached_input, sonnet.cache_write) == (3.0, 15.0, 0.3, 3.75)
    assert sonnet.context_length == 200000
    assert "thinking" in sonnet.features and "input:pdf" in sonnet.features
    assert sonnet.owned_by == "custom"  # from /v1/models
    assert fake.received[0].headers.get("APP-Code") == "CODE"
    catalogue = json.loads((FIXTURES / "aihubmix/api-v1-models.json").read_text())["data"]
    listing = json.loads((FIXTURES / "aihubmix/v1-models.json").read_text())["data"]
    assert set(models) == {m["model_id"] for m in catalogue} | {m["id"] for m in listing}


async def test_openrouter_catalogue_per_token_strings(fake: FakeProvider) -> None:
    fake.gets["/v1/models"] = fixture("openrouter/models.json")
    plugin = OpenRouter(ProviderSettings("openrouter", fake.url, "sk-or"))
    async with aiohttp.ClientSession() as http:
        (gpt4,) = await plugin.list_models(http)
    assert (gpt4.id, gpt4.input, gpt4.output, gpt4.context_length) == ("openai/gpt-4", 30.0, 60.0, 8192)
    assert "input:text" in gpt4.features and "temperature" in gpt4.features
    assert [r.path for r in fake.received] == ["/v1/models", "/api/v1/models"]  # links.next followed once


async def test_openai_list_has_no_prices(fake: FakeProvider) -> None:
    fake.gets["/v1/models"] = fixture("openai/models-list.json")
    plugin = OpenAICompatible(ProviderSettings("openai", fake.url, "sk"))
    async with aiohttp.ClientSession() as http:
        models = await plugin.list_models(http)
    assert len(models) == 10 and all(m.input is None for m in models)
    assert any(":" in m.id for m in models)  # fine-tuned ids survive as they are


@pytest.mark.parametrize(
    "answer",
    [
        Behaviour(503, b"<html>down</html>", "text/html"),
        Behaviour(200, b'{"data": [{"id": "a"'),
        Behaviour.json(200, {"object": "list"}),
        Behaviour.json(200, [1, 2]),
    ],
)
async def test_unreadable_catalogues_raise(fake: FakeProvider, answer: Behaviour) -> None:
    fake.gets["/v1/models"] = answer
    async with aiohttp.ClientSession() as http:
        for plugin in (OpenAICompatible, OpenRouter):
            with pytest.raises(CatalogueError):
                await plugin(ProviderSettings("p", fake.url, "sk")).list_models(http)


@pytest.mark.e2e  # the CLI as a process
def test_sync_cli_reports_and_draws_progress(tmp_path: Path) -> None:
    fake = ThreadedFakeProvider().start_in_thread()
    try:
        fake.gets["/v1/models"] = fixture("openrouter/models.json")
        config = {
            "providers": {
                "openrouter": {"plugin": "openrouter", "base_url": fake.url, "api_key": "sk", "sync": {}},
                "broken": {
                    "plugin": "openai_compatible",
                    "base_url": "http://127.0.0.1:9/v1",
                    "sync": {"timeout": 1},
                },
            }
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        run = subprocess.run(
            [sys.executable, "-m", "proxy", "sync", "--config", str(path), "openrouter"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert run.returncode == 0, run.stderr
        assert '"added":["openai/gpt-4"]' in run.stdout
        assert "[########################] 1/1 openrouter: 1 models" in run.stderr
        run = subprocess.run(
            [sys.executable, "-m", "proxy", "sync", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert run.returncode == 1  # one of the two failed
        assert "broken: Syncing provider 'broken' failed" in run.stderr and "2/2" in run.stderr
    finally:
        fake.stop_thread()
