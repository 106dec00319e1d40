"""The config file: interpolation, durations, unknown keys, and what ``check`` says about broken files.

The broken-config cases run the real CLI in a subprocess (``python -m proxy check --config F``): exit code 2,
one line per problem naming the YAML path, never a traceback.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from proxy.config import (
    ConfigError,
    Settings,
    interpolate,
    load_settings,
    parse_duration,
    parse_settings,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "gateway.example.yaml"
UNSET = "EFFLUX_TEST_SURELY_UNSET_VARIABLE"


# --- ${VAR} interpolation ------------------------------------------------------------------------------


def test_interpolation_replaces_variables_inside_strings() -> None:
    env = {"HOST": "10.0.0.1", "PORT": "9000"}
    assert interpolate("http://${HOST}:${PORT}/v1", env) == "http://10.0.0.1:9000/v1"


def test_interpolation_default_applies_when_unset_or_empty() -> None:
    assert interpolate("${A:-fallback}", {}) == "fallback"
    assert interpolate("${A:-fallback}", {"A": ""}) == "fallback"  # shell ':-' semantics
    assert interpolate("${A:-fallback}", {"A": "set"}) == "set"
    assert interpolate("${A:-}", {}) == ""


def test_interpolation_set_but_empty_without_default_is_empty() -> None:
    assert interpolate("${A}", {"A": ""}) == ""


def test_interpolation_walks_mappings_and_lists_but_not_keys() -> None:
    node = {"${K}": ["${V}", {"deep": "${V}"}], "n": 5, "b": True, "none": None}
    assert interpolate(node, {"K": "key", "V": "val"}) == {
        "${K}": ["val", {"deep": "val"}],
        "n": 5,
        "b": True,
        "none": None,
    }


def test_unset_variable_without_default_names_the_path() -> None:
    node = {"keys": [{"name": "a", "key": "${MISSING_KEY}"}]}
    with pytest.raises(ConfigError) as err:
        interpolate(node, {})
    assert str(err.value) == "keys[0].key: environment variable MISSING_KEY is not set"


def test_interpolated_values_are_not_parsed_as_yaml(tmp_path: Path) -> None:
    # A value from the environment stays a string; it cannot inject YAML structure.
    file = tmp_path / "gw.yaml"
    file.write_text("server:\n  admin_token: ${TOKEN}\n  port: ${PORT}\n")
    settings = load_settings(file, env={"TOKEN": "a: {b: 1}", "PORT": "9090"})
    assert settings.server.admin_token == "a: {b: 1}"
    assert settings.server.port == 9090


def test_load_settings_reads_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFFLUX_TEST_HOST", "0.0.0.0")
    file = tmp_path / "gw.yaml"
    file.write_text("server: {host: '${EFFLUX_TEST_HOST}'}\n")
    assert load_settings(file).server.host == "0.0.0.0"


# --- durations --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        ("30", 30.0),
        (" 5 s ", 5.0),
        (7, 7.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5x", "five seconds", "1h30m", "-5s", "", "ms", "5 sec", True])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_durations_in_the_config() -> None:
    settings = parse_settings(
        {
            "providers": {"p": {"plugin": "openai", "timeouts": {"connect": "250ms", "total": 90}}},
            "store": {"timeout": "1s"},
            "metering": {"drain_timeout": "1m"},
        }
    )
    assert settings.providers["p"].timeouts.connect == 0.25
    assert settings.providers["p"].timeouts.total == 90.0
    assert settings.store.timeout == 1.0
    assert settings.metering.drain_timeout == 60.0


def test_negative_duration_number_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^store\.timeout: input should be greater than or equal to 0$"):
        parse_settings({"store": {"timeout": -1}})


# --- unknown keys at every level --------------------------------------------------------------------------

FULL: dict[str, Any] = {
    "server": {"port": 8080},
    "store": {"backend": "memory"},
    "secrets": {"master_keys": []},
    "features": {"aggregators": True},
    "providers": {
        "p": {
            "plugin": "openai",
            "timeouts": {"connect": 1},
            "breaker": {"failures": 3},
            "sync": {"every": "1h"},
        }
    },
    "models": {"m": {"targets": [{"provider": "p"}]}},
    "pricing": {"default": {"input": 1}, "models": {"m": {"input": 1}}},
    "keys": [{"name": "k", "key": "egw-0123456789", "limits": {"rpm": 1}, "budget": {"usd": 1}}],
    "tenants": {"t": {"budget": {"usd": 1}, "limits": {"rpm": 1}, "alerts": {"at": [0.5]}}},
    "metering": {"default_max_tokens": 10},
}

SECTIONS = [
    (),
    ("server",),
    ("store",),
    ("secrets",),
    ("features",),
    ("providers", "p"),
    ("providers", "p", "timeouts"),
    ("providers", "p", "breaker"),
    ("providers", "p", "sync"),
    ("models", "m"),
    ("models", "m", "targets", 0),
    ("pricing",),
    ("pricing", "default"),
    ("pricing", "models", "m"),
    ("keys", 0),
    ("keys", 0, "limits"),
    ("keys", 0, "budget"),
    ("tenants", "t"),
    ("tenants", "t", "budget"),
    ("tenants", "t", "limits"),
    ("tenants", "t", "alerts"),
    ("metering",),
]


def _yaml_path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def test_the_full_config_is_valid() -> None:
    assert isinstance(parse_settings(copy.deepcopy(FULL)), Settings)


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: _yaml_path(s) or "<root>")
def test_unknown_keys_are_refused_at_every_level(section: tuple[str | int, ...]) -> None:
    data = copy.deepcopy(FULL)
    node: Any = data
    for part in section:
        node = node[part]
    node["bogus"] = 1
    with pytest.raises(ConfigError) as err:
        parse_settings(data)
    assert str(err.value) == f"{_yaml_path((*section, 'bogus'))}: unknown key"


def test_base_dir_in_yaml_is_an_unknown_key() -> None:
    # base_dir is the file's own folder, filled in at load; a YAML key of that name is not a setting.
    with pytest.raises(ConfigError, match=r"^base_dir: unknown key$"):
        parse_settings({"base_dir": "/etc"})


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"server": {"port": "abc", "prot": 1}, "store": {"timeout": "soon"}})
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert {line.split(":")[0] for line in lines} == {"server.port", "server.prot", "store.timeout"}


def test_empty_file_is_the_default_config(tmp_path: Path) -> None:
    file = tmp_path / "empty.yaml"
    file.write_text("# nothing\n")
    settings = load_settings(file, env={})
    assert settings.server.port == 8080
    assert settings.store.backend == "memory"
    assert settings.base_dir == str(tmp_path.resolve())


def test_the_example_config_loads() -> None:
    settings = load_settings(EXAMPLE, env={})
    assert settings.providers["aihubmix"].headers == {"APP-Code": ""}
    assert settings.providers["local"].timeouts.connect == 2.0
    assert settings.metering.drain_timeout == 10.0
    assert settings.server.port == 8080  # "${EFFLUX_PORT:-8080}" is a string until validated
    assert [t.provider for t in settings.models["gpt-4o-mini"].targets] == [
        "openai",
        "aihubmix",
        "openrouter",
    ]


# --- the CLI on broken configs ----------------------------------------------------------------------------


def run_check(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != UNSET}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "proxy", "check", "--config", str(config)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


VALID_PROVIDERS = """
providers:
  openai: {plugin: openai, api_key: sk-test}
  aihubmix: {plugin: aihubmix, api_key: sk-test}
"""

# (id, config text, extra files beside it, the start of each stderr line after "<config file>: ")
BROKEN: list[tuple[str, str, dict[str, str], list[str]]] = [
    (
        "yaml-syntax",
        "server:\n  port: 1\n   host: x\n",
        {},
        ["<yaml> line 3, column 8: mapping values are not allowed here"],
    ),
    (
        "unquoted-variable-in-flow-mapping",
        "server: {port: ${PORT}}\n",
        {},
        ["<yaml> line 1, column 17: expected ',' or '}', but got '{' (inside {...} or [...], quote values"],
    ),
    (
        "yaml-unclosed-flow",
        "models: {a: [1, 2}\n",
        {},
        ["<yaml> line 1, column 18:"],
    ),
    ("unknown-top-level-key", "sever: {port: 1}\n", {}, ["sever: unknown key"]),
    (
        "unknown-nested-key",
        VALID_PROVIDERS.replace("api_key: sk-test}", "api_key: sk-test, timeouts: {conect: 1s}}", 1),
        {},
        ["providers.openai.timeouts.conect: unknown key"],
    ),
    (
        "wrong-type-port",
        'server: {port: "abc"}\n',
        {},
        ["server.port: input should be a valid integer"],
    ),
    (
        "port-out-of-range",
        "server: {port: 70000}\n",
        {},
        ["server.port: input should be less than or equal to 65535"],
    ),
    (
        "unknown-provider-in-route",
        VALID_PROVIDERS
        + "models:\n  gpt-4o:\n    targets:\n      - {provider: openai}\n      - {provider: aihubmx}\n",
        {},
        ["models.gpt-4o.targets[1].provider: unknown provider 'aihubmx' (did you mean 'aihubmix'?)"],
    ),
    (
        "unknown-plugin",
        "providers:\n  mine: {plugin: aihubmx, api_key: k}\n",
        {},
        ["providers.mine.plugin: unknown plugin 'aihubmx' (did you mean 'aihubmix'?)"],
    ),
    (
        "plugin-spec-without-module",
        "providers:\n  mine: {plugin: ':Thing', base_url: 'http://127.0.0.1:1'}\n",
        {},
        ["providers.mine.plugin: ':Thing': use 'package.module:Class'"],
    ),
    (
        "plugin-not-a-provider",
        "providers:\n  mine: {plugin: 'json:JSONDecoder', base_url: 'http://127.0.0.1:1'}\n",
        {},
        ["providers.mine.plugin: 'json:JSONDecoder' is not a provider plugin"],
    ),
    (
        "provider-without-plugin",
        "providers:\n  openai: {api_key: sk-test}\n",
        {},
        ["providers.openai.plugin: required"],
    ),
    (
        "openai-compatible-without-base-url",
        "providers:\n  local: {plugin: openai_compatible}\n",
        {},
        ["providers.local.base_url: required for plugin 'openai_compatible'"],
    ),
    (
        "bad-base-url",
        "providers:\n  local: {plugin: openai_compatible, base_url: 'ftp://x'}\n",
        {},
        ["providers.local: base_url must be an http(s) URL, got 'ftp://x'"],
    ),
    (
        "bad-duration",
        "providers:\n  openai: {plugin: openai, timeouts: {first_byte: 5x}}\n",
        {},
        ["providers.openai.timeouts.first_byte: invalid duration '5x'"],
    ),
    (
        "negative-price",
        "pricing:\n  models:\n    gpt-4o: {input: -2.5, output: 10}\n",
        {},
        ["pricing.models.gpt-4o.input: input should be greater than or equal to 0"],
    ),
    (
        "duplicate-key-names",
        "keys:\n  - {name: web, key: egw-aaaaaaaaaa}\n  - {name: web, key: egw-bbbbbbbbbb}\n",
        {},
        ["keys[1].name: duplicate key name 'web'"],
    ),
    (
        "same-secret-twice",
        "keys:\n  - {name: a, key: egw-aaaaaaaaaa}\n  - {name: b, key: egw-aaaaaaaaaa}\n",
        {},
        ["keys[1].key: the same secret is used by two keys"],
    ),
    (
        "duplicate-yaml-mapping-key",
        "providers:\n  openai: {plugin: openai}\n  openai: {plugin: aihubmix}\n",
        {},
        ["<yaml> line 3, column 3: duplicate key 'openai'"],
    ),
    (
        "redis-without-url",
        "store: {backend: redis}\n",
        {},
        ["store: backend redis needs a url"],
    ),
    (
        "unknown-store-backend",
        "store: {backend: mongo}\n",
        {},
        ["store.backend: input should be 'memory' or 'redis'"],
    ),
    (
        "empty-targets",
        VALID_PROVIDERS + "models:\n  gpt-4o: {targets: []}\n",
        {},
        ["models.gpt-4o.targets: list should have at least 1 item"],
    ),
    (
        "unset-env-var",
        f"server: {{admin_token: '${{{UNSET}}}'}}\n",
        {},
        [f"server.admin_token: environment variable {UNSET} is not set"],
    ),
    (
        "missing-pricing-file",
        "pricing: {file: no-such-prices.yaml}\n",
        {},
        ["pricing.file: cannot read '{dir}/no-such-prices.yaml' (No such file or directory)"],
    ),
    (
        "bad-price-in-pricing-file",
        "pricing: {file: prices.yaml}\n",
        {"prices.yaml": "models:\n  gpt-4o: {input: cheap, output: 10}\n"},
        ["pricing.file(prices.yaml).models.gpt-4o.input: input should be a valid number"],
    ),
    (
        "pricing-entry-not-a-mapping",
        "pricing: {file: prices.yaml}\n",
        {"prices.yaml": "models:\n  gpt-4o: 5\n"},
        ["pricing.file(prices.yaml).models.gpt-4o: input should be a valid dictionary"],
    ),
    (
        "unknown-key-in-pricing-file",
        "pricing: {file: prices.yaml}\n",
        {"prices.yaml": "models:\n  gpt-4o: {input: 1, outptu: 2}\ndefaults: {}\n"},
        [
            "pricing.file(prices.yaml).defaults: unknown key",
            "pricing.file(prices.yaml).models.gpt-4o.outptu: unknown key",
        ],
    ),
    (
        "pricing-file-bad-yaml",
        "pricing: {file: prices.yaml}\n",
        {"prices.yaml": "models:\n  gpt-4o: {input: 1\n"},
        ["pricing.file(prices.yaml) line 3, column 1:"],
    ),
    (
        "root-not-a-mapping",
        "- server\n- models\n",
        {},
        ["<root>: the config must be a mapping"],
    ),
    (
        "not-utf8",
        "server: {host: '\udcff'}\n",
        {},
        ["the config file is not UTF-8 text (byte 16)"],  # the file named once, not twice
    ),
]


@pytest.mark.e2e  # the CLI as a process
@pytest.mark.parametrize(("text", "files", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_check_reports_a_broken_config(
    tmp_path: Path, text: str, files: dict[str, str], expected: list[str]
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_bytes(text.encode("utf-8", "surrogateescape"))
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    result = run_check(config)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    # One line per problem, each "<config file>: <yaml path>: <problem>".
    lines = result.stderr.splitlines()
    assert len(lines) == len(expected), result.stderr
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(
            f"{config}: " + want.replace("{file}", str(config)).replace("{dir}", str(tmp_path))
        ), line


@pytest.mark.e2e  # the CLI as a process
def test_check_lists_every_problem_on_its_own_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "providers:\n  a: {plugin: nope}\n  b: {plugin: openai_compatible}\npricing: {file: missing.yaml}\n"
    )
    result = run_check(config)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith(f"{config}: providers.a.plugin: unknown plugin 'nope'")
    assert lines[1] == f"{config}: providers.b.base_url: required for plugin 'openai_compatible'"
    assert lines[2].startswith(f"{config}: pricing.file: cannot read")


@pytest.mark.e2e  # the CLI as a process
def test_check_on_a_missing_config_file(tmp_path: Path) -> None:
    result = run_check(tmp_path / "absent.yaml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "cannot read the config file" in result.stderr


@pytest.mark.e2e  # the CLI as a process
def test_the_example_config_passes_check() -> None:
    result = run_check(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"{EXAMPLE}: ok (5 providers, 5 routes, 1 keys, store memory)")
