"""``efflux-gateway prices show MODEL`` and ``prices missing``, run through the CLI's entry point."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from proxy.cli.main import main
from proxy.config import load_settings
from proxy.state import catalogues
from proxy.store import open_store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "config" / "gateway.example.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def config(tmp_path: Path, **changes: Any) -> str:
    """The example config with ``changes`` laid over its sections (its price file copied beside it)."""
    data = yaml.safe_load(Path(EXAMPLE).read_text())
    for section, value in changes.items():
        data[section] = {**data.get(section, {}), **value}
    (tmp_path / "pricing.yaml").write_text((ROOT / "config" / "pricing.yaml").read_text())
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_missing_on_the_example_config_lists_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "prices", "missing", "--config", EXAMPLE)
    assert code == 0 and out == ""
    assert "openrouter/* -> openrouter: any model" in err and "served at zero" in err


def test_missing_lists_unpriced_targets_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(
        tmp_path,
        models={"house": {"targets": [{"provider": "local", "model": "house-llm"}]}},
        providers={"local": {"plugin": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}},
    )
    code, out, _ = run(capsys, "prices", "missing", "--config", path, "--json")
    assert code == 1
    assert [orjson.loads(line) for line in out.splitlines()] == [
        {"route": "house", "provider": "local", "model": "house-llm", "source": "none", "unknown": "refuse"}
    ]
    code, out, _ = run(capsys, "prices", "missing", "--config", path)
    assert code == 1 and "local/house-llm" in out and "refused (pricing.unknown: refuse)" in out


def test_show_names_the_source_per_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prices", "show", "gpt-4o-mini", "--config", EXAMPLE, "--json")
    assert code == 0
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [(r["provider"], r["model"], r["source"]) for r in rows] == [
        ("openai", "gpt-4o-mini", "file"),
        ("aihubmix", "gpt-4o-mini", "file"),
        ("openrouter", "openai/gpt-4o-mini", "file"),
    ]
    assert rows[0] | {"route": None} == {
        "requested": "gpt-4o-mini",
        "route": None,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "source": "file",
        "input": 0.15,
        "output": 0.6,
        "cached_input": 0.075,
        "cache_write": 0.15,
    }
    code, out, _ = run(capsys, "prices", "show", "demo", "--config", EXAMPLE)
    assert code == 0 and "local/demo-model" in out and " config " in out and "input 0.1  output 0.4" in out


def test_show_a_wildcard_model_priced_by_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    model = "openrouter/meta-llama/llama-3.1-8b-instruct"
    code, out, _ = run(capsys, "prices", "show", model, "--config", EXAMPLE, "--json")
    assert code == 0
    [row] = [orjson.loads(line) for line in out.splitlines()]
    assert (row["route"], row["model"], row["source"]) == ("openrouter/*", model[11:], "genai-prices")
    code, out, _ = run(capsys, "prices", "show", "openrouter/someone/invented-model", "--config", EXAMPLE)
    assert code == 0 and "served at zero (pricing.unknown: allow)" in out


def test_show_tiers_and_a_refused_or_unroutable_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(
        tmp_path,
        models={"house": {"targets": [{"provider": "local", "model": "house-llm"}]}},
        pricing={"models": {"house-llm": {"input": 1}}, "unknown": "refuse"},
    )
    code, out, _ = run(capsys, "prices", "show", "openrouter/google/gemini-2.5-pro", "--config", path)
    assert code == 0 and "genai-prices" in out and "above 200000 prompt tokens: input 2.5" in out
    code, out, _ = run(capsys, "prices", "show", "house", "--config", path)
    assert code == 0 and "local/house-llm" in out
    missing = config(tmp_path, models={"house": {"targets": [{"provider": "local", "model": "nope"}]}})
    code, out, _ = run(capsys, "prices", "show", "house", "--config", missing)
    assert code == 1 and "refused (pricing.unknown: refuse)" in out
    code, _, err = run(capsys, "prices", "show", "not-a-route", "--config", EXAMPLE)
    assert code == 2 and "no route" in err


def test_with_the_redis_store_synced_prices_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    """A catalogue synced into the store prices its models (``sync``); a model it gives no price to falls
    through to the package, and ``prices missing`` sees the synced models too."""
    prefix = f"prices-{uuid.uuid4().hex[:8]}"
    path = config(tmp_path, store={"backend": "redis", "url": redis_url, "prefix": prefix})
    settings = load_settings(path)
    models = {
        "house-model": {"input": 0.7, "output": 1.4},
        "gpt-4o-mini": {"context_length": 128000},  # listed without a price (as OpenAI's list is)
        "mystery-model": {},
    }

    async def put() -> None:
        store = open_store(settings)
        try:
            await store.put_doc(catalogues.KIND, "aihubmix", catalogues.encode("aihubmix", models))
        finally:
            await store.close()

    asyncio.run(put())
    code, out, _ = run(capsys, "prices", "show", "aihubmix/house-model", "--config", path, "--json")
    assert code == 0 and orjson.loads(out)["source"] == "sync" and orjson.loads(out)["input"] == 0.7
    code, out, _ = run(capsys, "prices", "show", "aihubmix/gpt-4o-mini", "--config", path, "--json")
    assert code == 0 and orjson.loads(out)["source"] == "file"  # the file beats a priceless sync entry
    code, out, _ = run(capsys, "prices", "missing", "--config", path, "--json")
    assert code == 1
    rows = [orjson.loads(line) for line in out.splitlines()]
    # once per target, though the model routes as aihubmix/mystery-model and as mystery-model
    assert [(r["route"], r["provider"], r["model"]) for r in rows] == [
        ("aihubmix/mystery-model", "aihubmix", "mystery-model")
    ]
