"""The command line's own surface: ``--version``, help on every option, ``check`` listing every problem
once, ``keys`` on the memory store, and the safe start (``proxy.cli.exposure``). In-process: ``main()``
returns before serving in every case here."""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from support import base_config

from proxy.cli.exposure import DEMO_KEY, exposure_problems, is_loopback
from proxy.cli.main import build_parser, main
from proxy.config import parse_settings

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, config: object, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config) if not isinstance(config, str) else config, encoding="utf-8")
    return path


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"efflux-gateway {metadata.version('efflux-gateway')}"


def _parsers(parser: argparse.ArgumentParser, name: str = "efflux-gateway") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found.extend(_parsers(sub, f"{name} {sub_name}"))
    return found


def test_every_option_and_argument_has_help() -> None:
    undocumented = [
        f"{name} {action.dest}"
        for name, parser in _parsers(build_parser())
        for action in parser._actions  # type: ignore[attr-defined]
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction) and not action.help
    ]
    assert not undocumented, undocumented
    assert len(_parsers(build_parser())) > 8  # the walk reached the subcommands


def test_config_help_names_its_environment_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    assert "$EFFLUX_CONFIG" in " ".join(capsys.readouterr().out.split())


def test_the_config_defaults_to_efflux_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, base_config("http://127.0.0.1:9/v1"))
    monkeypatch.setenv("EFFLUX_CONFIG", str(path))
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok")


def test_check_lists_every_problem_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An unknown key, a bad value and a misspelt provider: the last used to hide behind the first two.
    config = base_config("http://127.0.0.1:9/v1")
    config["server"].update({"prot": 1, "port": "x"})
    config["providers"]["local"]["bogus"] = 1
    config["models"]["typo"] = {"targets": [{"provider": "lokal"}]}
    config["keys"].append({"name": "test", "key": "egw-another-key-0123"})
    path = write(tmp_path, config)
    assert main(["check", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert sorted(lines) == sorted(
        f"{path}: {problem}"
        for problem in (
            "server.port: input should be a valid integer, unable to parse string as an integer",
            "server.prot: unknown key",
            "providers.local.bogus: unknown key",
            "models.typo.targets[0].provider: unknown provider 'lokal' (did you mean 'local'?)",
            "keys[1].name: duplicate key name 'test'",
        )
    ), lines


def test_check_lists_plugin_price_and_secret_problems_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = base_config("http://127.0.0.1:9/v1")
    config["providers"]["local"]["plugin"] = "opnai"
    config["secrets"] = {"key_secret": "short"}
    path = write(tmp_path, config)
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: providers.local.plugin: unknown plugin 'opnai'" in err
    assert f"{path}: secrets.key_secret: too short" in err  # used to wait for the plugin to be fixed


def test_a_missing_file_is_named_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.yaml"
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count(str(path)) == 1, err
    assert "cannot read the config file" in err


def test_keys_create_on_the_memory_store_says_it_needs_redis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, base_config("http://127.0.0.1:9/v1"))  # memory store, no key_secret
    assert main(["keys", "create", "--name", "x", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "needs the redis store" in err
    assert "key_secret" not in err


# --- the safe start ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("gateway.internal", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposure_names_the_demo_key_and_the_missing_admin_token() -> None:
    config = base_config("http://127.0.0.1:9/v1")
    config["server"] = {}
    config["keys"].append({"name": "demo", "key": DEMO_KEY})
    settings = parse_settings(config)
    assert exposure_problems(settings, "127.0.0.1") == []
    problems = exposure_problems(settings, "0.0.0.0")
    assert len(problems) == 2
    assert problems[0].startswith(f"keys[1] (demo): uses the built-in demo key {DEMO_KEY!r}")
    assert problems[1].startswith("server.admin_token: not set")
    assert exposure_problems(parse_settings(base_config("http://127.0.0.1:9/v1")), "0.0.0.0") == []


def test_serve_refuses_an_unsafe_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EFFLUX_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("EFFLUX_DEMO_KEY", raising=False)
    example = ROOT / "config" / "gateway.example.yaml"
    assert main(["serve", "--config", str(example), "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on '0.0.0.0'" in err
    assert f"{example}: keys[0] (demo): uses the built-in demo key" in err
    assert f"{example}: server.admin_token: not set" in err
    assert "--allow-unsafe-bind" in err


def test_the_example_config_has_the_admin_token_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy.config import load_settings

    example = ROOT / "config" / "gateway.example.yaml"
    assert load_settings(example, env={}).server.admin_token == ""
    token = "t" * 32
    assert load_settings(example, env={"EFFLUX_ADMIN_TOKEN": token}).server.admin_token == token
