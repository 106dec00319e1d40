"""``efflux-gateway init [DIR]``: a starter config and a ``.env`` with fresh secrets, never overwritten;
the config it writes passes ``check`` with nothing but that ``.env``."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from proxy.cli.main import main
from proxy.config import load_settings
from proxy.config.dotenv import parse_env_file

SECRETS = ("EFFLUX_ADMIN_TOKEN", "EFFLUX_KEY_SECRET", "EFFLUX_MASTER_KEY", "EFFLUX_VIRTUAL_KEY")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*SECRETS, "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_init_writes_a_config_and_fresh_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "gw"
    assert main(["init", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"efflux-gateway serve --config {folder / 'gateway.yaml'}" in out  # the next command
    env_file = folder / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = parse_env_file(env_file.read_text(), ".env")
    assert set(SECRETS) <= set(values)
    assert all(len(values[name]) >= 32 for name in SECRETS)
    for name in SECRETS:
        assert values[name] not in out  # the secrets stay in the file
        assert values[name] not in (folder / "gateway.yaml").read_text()

    settings = load_settings(folder / "gateway.yaml")  # the .env beside it supplies the ${VAR}s
    assert settings.server.admin_token == values["EFFLUX_ADMIN_TOKEN"]
    assert settings.secrets.key_secret == values["EFFLUX_KEY_SECRET"]
    assert settings.secrets.master_keys == [values["EFFLUX_MASTER_KEY"]]
    assert [key.key for key in settings.keys] == [values["EFFLUX_VIRTUAL_KEY"]]
    assert main(["check", "--config", str(folder / "gateway.yaml")]) == 0  # plugins, prices, vault key

    assert main(["init", str(tmp_path / "other")]) == 0
    other = parse_env_file((tmp_path / "other" / ".env").read_text(), ".env")
    assert all(other[name] != values[name] for name in SECRETS)  # fresh each time


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".env").write_text("MINE=1\n")
    assert main(["init", str(tmp_path)]) == 1
    assert "already exist" in capsys.readouterr().err
    assert (tmp_path / ".env").read_text() == "MINE=1\n"
    assert not (tmp_path / "gateway.yaml").exists()


def test_the_environment_wins_over_the_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["init", str(tmp_path)]) == 0
    monkeypatch.setenv("EFFLUX_ADMIN_TOKEN", "from-the-environment-0123456789")
    assert load_settings(tmp_path / "gateway.yaml").server.admin_token == "from-the-environment-0123456789"
