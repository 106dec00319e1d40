"""``efflux-gateway import litellm``: a LiteLLM config becomes a config this gateway loads, with routes,
providers, prices, strategy, fallbacks, budgets and keys mapped, and no secret copied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from proxy.cli.litellm import translate
from proxy.cli.main import main
from proxy.config import interpolate, parse_settings

LITELLM = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o-deploy, api_base: "https://x.openai.azure.com"}
  - model_name: gpt-4o-mini
    litellm_params:
      model: openrouter/openai/gpt-4o-mini
      api_key: sk-or-literal-secret-value
      rpm: 100
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY, weight: 3}
  - model_name: llama
    litellm_params: {model: hosted_vllm/meta-llama/Llama-3-8B, api_base: "http://vllm:8000/v1"}
  - model_name: claude
    litellm_params: {model: claude-3-5-sonnet-20241022, api_key: os.environ/ANTHROPIC_API_KEY}
router_settings:
  routing_strategy: least-busy
  fallbacks: [{gpt-4o: [gpt-4o-mini]}]
litellm_settings: {request_timeout: 120, max_budget: 100, budget_duration: 30d}
general_settings: {master_key: sk-master-literal-1234}
"""
KEYS = [
    {
        "key_alias": "web app",
        "team_id": "acme",
        "models": ["gpt-4o"],
        "rpm_limit": 60,
        "tpm_limit": 10000,
        "max_budget": 5,
        "budget_duration": "7d",
    },
    {"key_alias": "batch", "models": ["all-proxy-models"], "max_budget": 20},
]
ENV = {
    "EFFLUX_ADMIN_TOKEN": "a" * 40,
    "OPENAI_API_KEY": "sk-o",
    "OPENROUTER_API_KEY": "sk-r",
    "KEY_WEB_APP": "egw-web-0123456789",
    "KEY_BATCH": "egw-batch-0123456789",
}


def test_the_translation_loads_and_maps_each_part() -> None:
    result = translate(yaml.safe_load(LITELLM), KEYS)
    settings = parse_settings(interpolate(result.config, ENV))
    assert {name: p.plugin for name, p in settings.providers.items()} == {
        "openai": "openai",
        "openrouter": "openrouter",
        "vllm": "openai_compatible",
        "anthropic": "anthropic",
    }
    assert settings.providers["vllm"].base_url == "http://vllm:8000/v1"
    assert settings.providers["openai"].timeouts.total == 120
    mini = settings.models["gpt-4o-mini"]
    assert [(t.provider, t.model, t.weight) for t in mini.targets] == [
        ("openrouter", "openai/gpt-4o-mini", 100.0),
        ("openai", "gpt-4o-mini", 3.0),
    ]
    assert mini.strategy == "least_busy"
    # the fallback's targets follow the route's own, one priority lower
    assert [(t.provider, t.priority) for t in settings.models["gpt-4o"].targets] == [
        ("openai", 0),
        ("openrouter", 1),
        ("openai", 1),
    ]
    assert settings.models["claude"].targets[0].model == "claude-3-5-sonnet-20241022"
    price = settings.pricing.models["gpt-4o"]
    assert (price.input, price.output) == (2.5, 10.0)  # per token -> per 1M tokens
    assert settings.server.admin_token == ENV["EFFLUX_ADMIN_TOKEN"]
    default = settings.tenants["default"].budget
    assert default is not None and (default.usd, default.period) == (100.0, "monthly")
    web, batch = settings.keys
    assert (web.name, web.key, web.tenant, web.models) == ("web-app", ENV["KEY_WEB_APP"], "acme", ["gpt-4o"])
    assert (web.limits.rpm, web.limits.tpm) == (60, 10000)
    assert web.budget is not None and (web.budget.usd, web.budget.period) == (5.0, "weekly")
    assert batch.models == ["*"] and batch.budget is not None and batch.budget.period == "total"
    notes = "\n".join(result.notes)
    assert "'azure/gpt-4o-deploy': no plugin here" in notes
    assert "no price for" in notes and "claude-3-5-sonnet-20241022" in notes


def test_no_secret_reaches_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "config.yaml"
    source.write_text(LITELLM)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": KEYS}))
    assert main(["import", "litellm", str(source), "--keys", str(keys)]) == 0
    captured = capsys.readouterr()
    for secret in ("sk-or-literal-secret-value", "sk-master-literal-1234"):
        assert secret not in captured.out and secret not in captured.err
    assert "set OPENROUTER_API_KEY in .env" in captured.err
    assert "set EFFLUX_ADMIN_TOKEN in .env" in captured.err
    config = yaml.safe_load(captured.out)
    assert config["providers"]["openrouter"]["api_key"] == "${OPENROUTER_API_KEY:-}"
    assert config["server"]["admin_token"] == "${EFFLUX_ADMIN_TOKEN}"
    assert parse_settings(interpolate(config, ENV)).keys[0].name == "web-app"


def test_a_bad_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "config.yaml"
    source.write_text("model_list: {not: a list}\n")
    assert main(["import", "litellm", str(source)]) == 2
    assert capsys.readouterr().err.startswith("import litellm: model_list: must be a list")
    assert main(["import", "litellm", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
