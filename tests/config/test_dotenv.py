"""The ``.env`` file beside the config (``proxy.config.dotenv``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError, load_settings
from proxy.config.dotenv import MAX_BYTES, env_beside, parse_env_file


def test_lines_comments_quotes_and_export() -> None:
    text = (
        "# a comment\n\nA=1\nexport B = two\nC='with # hash'\nD=\"double\"\nE=bare # trailing comment\nF=\n"
    )
    assert parse_env_file(text, ".env") == {
        "A": "1",
        "B": "two",
        "C": "with # hash",
        "D": "double",
        "E": "bare",
        "F": "",
    }


@pytest.mark.parametrize("line", ["not a variable", "1A=x", "A B=c"])
def test_a_line_that_is_not_an_assignment_is_an_error_naming_it(line: str) -> None:
    with pytest.raises(ConfigError, match=r"^\.env line 2: expected NAME=value$"):
        parse_env_file(f"OK=1\n{line}\n", ".env")


def test_no_file_no_variables(tmp_path: Path) -> None:
    assert env_beside(tmp_path / "gateway.yaml") == {}


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"A=" + b"x" * MAX_BYTES)
    with pytest.raises(ConfigError, match="larger than"):
        env_beside(tmp_path / "gateway.yaml")


def test_load_settings_reads_it_and_an_explicit_env_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EGW_TEST_TOKEN", raising=False)
    (tmp_path / ".env").write_text("EGW_TEST_TOKEN=from-the-file\n")
    config = tmp_path / "gateway.yaml"
    config.write_text("server: {admin_token: '${EGW_TEST_TOKEN}'}\n")
    assert load_settings(config).server.admin_token == "from-the-file"
    monkeypatch.setenv("EGW_TEST_TOKEN", "from-the-environment")
    assert load_settings(config).server.admin_token == "from-the-environment"
    with pytest.raises(ConfigError, match="EGW_TEST_TOKEN is not set"):
        load_settings(config, env={})  # a caller's own mapping is all there is
