"""Helpers of the browser tests (constants, login, navigation, screenshots); fixtures are in conftest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from support import ADMIN_TOKEN

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("EFFLUX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OTHER_KEY = "egw-other-tenant-key-0123456789"
XSS_KEY = "egw-xss-tenant-key-0123456789"
XSS = '<img src=x onerror="window.__xss=1">'
FAKE_KEY_ENV = "UI_FAKE_AGGREGATOR_KEY"


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Any, token: str = ADMIN_TOKEN) -> None:
    page.goto("/ui/")
    page.wait_for_url("**/ui/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_selector("#main[data-ready=true]")


def open_page(page: Any, name: str) -> None:
    page.evaluate("name => { location.hash = '#/' + name; }", name)
    page.wait_for_selector(f"#main[data-page={name}][data-ready=true]")


def logout(page: Any) -> None:
    page.click("#logout")
    page.wait_for_url("**/ui/login")
