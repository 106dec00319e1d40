"""docs/configuration.md is generated from the schema (``proxy.config.reference``): it must be current,
list every setting, and say what each one does."""

from __future__ import annotations

from pathlib import Path

from config.test_coverage import settings_paths

from proxy.config.reference import COMMAND, render, rows

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"


def as_coverage_path(path: str) -> str:
    return path.replace(".<name>", ".*")


def test_the_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), f"docs/configuration.md is stale: run {COMMAND}"


def test_every_setting_is_listed() -> None:
    listed = {as_coverage_path(row.path) for row in rows()}
    missing = [path for path in settings_paths() if path not in listed]
    assert not missing, missing
    assert len(listed) > 90


def test_every_setting_says_what_it_does() -> None:
    undescribed = [row.path for row in rows() if len(row.description) < 10]
    assert not undescribed, f"settings without a description (a docstring under the field): {undescribed}"


def test_the_settings_once_left_out_are_described() -> None:
    described = {as_coverage_path(row.path): row for row in rows()}
    for path in (
        "server.max_concurrency",
        "server.body_timeout",
        "server.write_timeout",
        "server.shutdown_delay",
        "server.drain_timeout",
        "server.retry_budget.ratio",
        "models.*.strategy",
        "models.*.timeouts.first_byte",
        "providers.*.byok",
    ):
        assert described[path].description, path
    assert described["server.body_timeout"].default == "`30s`"
    assert described["models.*.strategy"].type == "one of `weighted`, `least_busy`, `lowest_latency`"
