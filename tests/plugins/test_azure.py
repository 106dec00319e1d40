"""The azure plugin: deployment and v1 URLs, the api-key header or an Entra ID token, content filters,
and the config's checks of its settings (api_version, entra_token, a target's deployment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plugins.azure import Plugin
from proxy.config import ConfigError, parse_settings
from proxy.plugin import Call, Endpoint, Fault, ProviderSettings
from proxy.state.snapshot import build_snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASE = "https://acme.openai.azure.com"


def plugin(base_url: str = BASE, api_key: str | None = "azure-key", **options: str) -> Plugin:
    return Plugin(ProviderSettings("azure", base_url, api_key, {}, options))


def chat(provider: Plugin, deployment: str | None = None, endpoint: Endpoint = Endpoint.CHAT) -> Call:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}]}
    return Call(endpoint, body, "gpt-4o-mini", False, False, provider.settings.api_key, deployment)


@pytest.mark.parametrize(
    ("version", "base", "deployment", "url", "model"),
    [
        (
            "2024-10-21",
            BASE,
            "prod",
            f"{BASE}/openai/deployments/prod/chat/completions?api-version=2024-10-21",
            "prod",
        ),
        (
            "2025-04-01-preview",
            f"{BASE}/openai",
            None,
            f"{BASE}/openai/deployments/gpt-4o-mini/chat/completions?api-version=2025-04-01-preview",
            "gpt-4o-mini",
        ),
        ("v1", f"{BASE}/openai/v1", "prod", f"{BASE}/openai/v1/chat/completions", "prod"),
        ("preview", BASE, None, f"{BASE}/openai/v1/chat/completions?api-version=preview", "gpt-4o-mini"),
    ],
)
def test_urls(version: str, base: str, deployment: str | None, url: str, model: str) -> None:
    provider = plugin(base, api_version=version)
    request = provider.build_request(chat(provider, deployment))
    assert request.url == url
    assert request.headers["api-key"] == "azure-key" and "Authorization" not in request.headers
    assert b'"model":"%s"' % model.encode() in request.body


def test_embeddings_through_a_deployment() -> None:
    provider = plugin(api_version="2024-10-21")
    request = provider.build_request(chat(provider, "emb", Endpoint.EMBEDDINGS))
    assert request.url == f"{BASE}/openai/deployments/emb/embeddings?api-version=2024-10-21"


def test_without_api_version_the_v1_path() -> None:
    provider = plugin()
    assert provider.build_request(chat(provider)).url == f"{BASE}/openai/v1/chat/completions"


def test_an_entra_token_is_a_bearer_and_counts_as_the_key() -> None:
    provider = plugin(api_key=None, entra_token="eyJ0eXAi.token")
    assert provider.settings.api_key == "eyJ0eXAi.token"  # keyed, and masked in errors like a key
    headers = provider.build_request(chat(provider)).headers
    assert headers["Authorization"] == "Bearer eyJ0eXAi.token" and "api-key" not in headers
    # a tenant's own key (BYOK) is an api-key
    call = chat(provider)
    call.api_key = "tenant-key"
    headers = provider.build_request(call).headers
    assert headers["api-key"] == "tenant-key" and "Authorization" not in headers


def test_the_content_filter_error_is_the_callers_fault() -> None:
    body = (FIXTURES / "azure" / "error-400-content-filter.json").read_bytes()
    error = plugin().map_error(400, "application/json", body)
    assert (error.status, error.fault, error.code, error.type) == (
        400,
        Fault.CLIENT,
        "content_filter",
        "invalid_request_error",
    )
    assert error.param == "prompt" and "content management policy" in error.message


def config(provider: dict[str, Any], target: dict[str, Any] | None = None) -> Any:
    return parse_settings(
        {
            "providers": {
                "azure": {"plugin": "azure", "base_url": BASE, "api_key": "k", **provider},
                "local": {"plugin": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
            },
            "models": {"gpt": {"targets": [target or {"provider": "azure"}]}},
            "pricing": {"default": {"input": 1.0}},
        }
    )


def test_a_bad_api_version_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"providers\.azure: api_version must be v1, preview, latest or a date"
    ):
        build_snapshot(config({"api_version": "yesterday"}))


def test_a_region_is_not_an_azure_setting() -> None:
    with pytest.raises(ConfigError, match=r"providers\.azure\.region: not a setting of plugin 'azure'"):
        build_snapshot(config({"region": "eastus"}))


def test_a_deployment_needs_a_provider_with_deployments() -> None:
    with pytest.raises(ConfigError, match=r"models\.gpt\.targets\[0\]\.deployment: provider 'local'"):
        build_snapshot(config({}, {"provider": "local", "deployment": "prod"}))
    snapshot = build_snapshot(
        config({"api_version": "2024-10-21"}, {"provider": "azure", "model": "gpt-4o", "deployment": "prod"})
    )
    assert snapshot.providers["azure"].settings.options == {"api_version": "2024-10-21"}
