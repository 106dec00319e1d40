"""The login page of a gateway without an admin token (the example config with ``EFFLUX_ADMIN_TOKEN``
unset) says so before anyone types a token, and after a wrong one; a virtual key still logs in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import KEY, base_config
from uisupport import shot

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess


@pytest.fixture
def page_without_admin(
    chromium: Any, threaded_fake: ThreadedFakeProvider, gateway_process: Callable[..., GatewayProcess]
) -> Iterator[Any]:
    config = base_config(threaded_fake.url)
    config["server"] = {"admin_token": ""}  # what ${EFFLUX_ADMIN_TOKEN:-} gives when it is unset
    gateway = gateway_process(config)
    context = chromium.new_context(base_url=gateway.url, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == []


def test_the_login_page_says_no_admin_token_is_configured(page_without_admin: Any) -> None:
    page = page_without_admin
    page.goto("/ui/login")
    notice = page.locator("#login-notice")
    notice.wait_for(state="visible")
    assert "No admin token is configured" in notice.inner_text()
    assert "EFFLUX_ADMIN_TOKEN" in notice.inner_text()
    shot(page, "login-without-admin-token")
    page.fill("#token", "some-guess-at-a-token")
    page.click("button[type=submit]")
    page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
    assert "No admin token is configured" in page.locator("#login-error").inner_text()
    page.fill("#token", KEY)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/#/me")
