"""Browser fixtures: Debian's Chromium driven by Playwright, a gateway process with a fake aggregator.

The UI tests never skip: CI requires them, so a missing Chromium or Playwright fails with the fix.
Every page's console errors fail the test that produced them; screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import base_config
from uisupport import CHROMIUM, CHROMIUM_ARGS, FAKE_KEY_ENV, OTHER_KEY, XSS, XSS_KEY

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess


def catalogue() -> dict[str, Any]:
    """An OpenRouter-style catalogue (USD per token, as strings) for the fake aggregator."""

    def model(mid: str, prompt: str, completion: str, *params: str) -> dict[str, Any]:
        return {
            "id": mid,
            "context_length": 128000,
            "pricing": {"prompt": prompt, "completion": completion},
            "supported_parameters": list(params),
        }

    return {
        "data": [
            model("ui-model-a", "0.000001", "0.000002", "tools"),
            model("ui-model-b", "0.000003", "0.000015", "tools", "reasoning"),
            model("ui-cheap", "0.0000001", "0.0000004"),
            model(XSS, "0.000001", "0.000001"),
        ]
    }


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Per module, not per session: Playwright's sync API keeps an event loop running in this thread
    until it stops, and the async tests of later modules could not start theirs."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: run scripts/bootstrap (pip install -e '.[test]').")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: run scripts/bootstrap (apt-get install -y chromium), "
            "or set EFFLUX_CHROMIUM to a Chromium binary. The UI tests are required, never skipped."
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def fake(threaded_fake: ThreadedFakeProvider) -> ThreadedFakeProvider:
    import orjson

    threaded_fake.models_body = orjson.dumps(catalogue())
    return threaded_fake


@pytest.fixture(scope="module")
def gateway(fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]) -> GatewayProcess:
    config = base_config(fake.url)
    config["providers"][XSS] = {"plugin": "openai_compatible", "base_url": fake.url}
    config["models"]["xss-model"] = {"targets": [{"provider": XSS}]}
    config["keys"] += [
        {"name": "other", "tenant": "globex", "key": OTHER_KEY},
        {"name": XSS, "tenant": XSS, "key": XSS_KEY, "budget": {"usd": 1, "period": "daily"}},
    ]
    # tenants' own provider keys are sealed by the vault (a fixed test master key: 32 bytes, urlsafe base64)
    master_key = base64.urlsafe_b64encode(b"ui-tests-master-key-32-bytes-ok!").decode()
    config["secrets"] = {"master_keys": [master_key]}
    config["tenants"] = {
        "acme": {"budget": {"usd": 10, "period": "monthly"}},
        XSS: {"budget": {"usd": 2, "period": "daily"}},
    }
    config["server"]["runtime_env_allowlist"] = [FAKE_KEY_ENV]  # the provider the dashboard adds names it
    return gateway_process(config, env={FAKE_KEY_ENV: "sk-fake-aggregator"})


class Console:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


@pytest.fixture
def page(chromium: Any, gateway: GatewayProcess) -> Iterator[Any]:
    context = chromium.new_context(base_url=gateway.url, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = Console(page)
    yield page
    context.close()
    assert console.errors == [], f"console errors: {console.errors}"
