"""The operator console's fixes in Chromium: charts on real time axes with zero-based value axes, buckets
that follow the range, gateway refusals shown as errors, one money format on every page, the ledger paged
by the server, a copy button and last use and spend per key, the Models page counting what /v1/models
lists, the estimate/savings/adoption pages, a pasted provider key sealed and never shown, and every page
at desktop (1280x800) and phone (390x844) width without sideways scrolling, screenshotted into
test-artifacts/ui/."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from support import ADMIN, KEY
from uisupport import login, logout, open_page, shot

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess

OPERATOR_PAGES = [
    "usage", "providers", "models", "keys", "tenants", "compare", "requests",
    "estimate", "savings", "adoption",
]  # fmt: skip
TENANT_PAGES = ["me", "estimate"]
WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
# $0 · $0.00025 · $0.012 · $0.25 · $20.00 · $1,234.50: cents from a dollar up, two significant digits below
MONEY = re.compile(r"\$[0-9][0-9,.]*")
GOOD_MONEY = re.compile(r"^\$(0|[1-9]\d{0,2}(,\d{3})*\.\d\d|0\.\d\d|0\.0*[1-9]\d?)$")


def admin(gateway: GatewayProcess, path: str, body: bytes | None = None) -> Any:
    headers = {**ADMIN, "Content-Type": "application/json"}
    req = urllib.request.Request(gateway.url + path, headers=headers, data=body)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def sdk(gateway: GatewayProcess, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def chat(gateway: GatewayProcess, key: str, model: str, n: int = 1) -> None:
    client = sdk(gateway, key)
    for _ in range(n):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "console test"}])


def money_texts(page: Any) -> list[str]:
    """Every money amount in the page's main area (HTML and SVG leaves, one text each)."""
    leaves = page.evaluate(
        "() => Array.from(document.querySelectorAll('#main *'))"
        ".filter(e => e.children.length === 0).map(e => e.textContent)"
    )
    return [m.rstrip(".,") for text in leaves for m in MONEY.findall(text)]


@pytest.fixture
def context(chromium: Any, gateway: GatewayProcess) -> Iterator[Any]:
    """A browser context at desktop width whose console errors fail the test."""
    ctx = chromium.new_context(base_url=gateway.url, viewport=WIDTHS["desktop"])
    errors: list[str] = []
    ctx.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    ctx.on("weberror", lambda e: errors.append(f"uncaught: {e.error}"))
    yield ctx
    ctx.close()
    assert errors == [], f"console errors: {errors}"


def new_page(context: Any) -> Any:
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def test_charts_axes_buckets_and_refusals(context: Any, gateway: GatewayProcess) -> None:
    chat(gateway, KEY, "plain-model", n=3)
    with pytest.raises(openai.AuthenticationError):  # refused by the gateway: 401, not in the ledger
        chat(gateway, "egw-not-a-key-0123456789", "plain-model")
    page = new_page(context)
    login(page)
    open_page(page, "usage")
    page.select_option("#range", "1h")
    page.wait_for_function("() => document.querySelector('#range-info')?.dataset.step === '60'")
    page.wait_for_selector("#chart-cost[data-drawn=true]")
    # the time axis spans the hour in minutes (not one dot at 0 with millisecond ticks)
    points = int(page.get_attribute("#chart-cost", "data-points") or 0)
    assert 60 <= points <= 62
    labels = page.eval_on_selector_all("#chart-cost .x-tick", "ns => ns.map(n => n.textContent)")
    assert len(labels) >= 5 and all(re.fullmatch(r"\d\d:\d\d", t) for t in labels), labels
    # money axes start at zero and read as money; no negative value anywhere on an axis
    for chart in ("chart-cost", "chart-errors", "chart-tokens", "chart-cost-provider"):
        ticks = page.eval_on_selector_all(f"#{chart} .y-tick", "ns => ns.map(n => Number(n.dataset.value))")
        assert ticks and min(ticks) == 0, (chart, ticks)
    cost_ticks = page.eval_on_selector_all("#chart-cost .y-tick", "ns => ns.map(n => n.textContent)")
    assert all(GOOD_MONEY.match(t) for t in cost_ticks), cost_ticks
    assert page.locator("#chart-cost rect").count() >= 1  # the cost is drawn, not an empty frame
    # the refusal is an error: in the total and on the error-rate chart
    assert int(page.get_attribute("#total-errors", "data-rejected") or 0) >= 1
    assert page.locator("#chart-errors rect").count() >= 1
    assert "401" in page.inner_text("#rejections")
    shot(page, "usage-1h")


def test_keys_copy_last_use_and_spend(context: Any, gateway: GatewayProcess) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=gateway.url)
    page = new_page(context)
    login(page)
    open_page(page, "keys")
    page.fill("#create-key [name=name]", "console-key")
    page.fill("#create-key [name=tenant]", "console-tenant")
    page.click("#create-key button[type=submit]")
    secret = page.inner_text("#new-key-secret")
    page.click("#copy-key")
    page.wait_for_selector("#copy-key[data-copied=true]")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    row = page.locator("tr[data-key=console-key]")
    assert "never" in row.locator("td.last-used").inner_text()
    deadline = time.monotonic() + 5
    while True:  # the key reaches the serving snapshot within the live refresh interval
        try:
            chat(gateway, secret, "plain-model", n=2)
            break
        except openai.AuthenticationError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    open_page(page, "tenants")
    open_page(page, "keys")
    assert row.locator("td.last-used").inner_text() == "just now"
    spent = next(a for a in admin(gateway, "/admin/usage/keys")["data"] if a["key"] == "console-key")
    assert spent["requests"] == 2 and spent["cost_micro_usd"] > 0
    shown = row.locator("td.spend").inner_text()
    assert GOOD_MONEY.match(shown) and shown != "$0", shown
    shot(page, "keys-copied")


def test_requests_page_through_the_ledger(context: Any, gateway: GatewayProcess) -> None:
    chat(gateway, KEY, "paging-model", n=55)
    page = new_page(context)
    login(page)
    open_page(page, "requests")
    page.fill("#requests-key", "test")
    page.click("form.toolbar button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#requests-table tbody tr').length === 50")
    first = page.locator("#requests-table tbody tr").first.get_attribute("data-request")
    assert page.is_disabled("#requests-prev") and page.is_enabled("#requests-next")
    page.click("#requests-next")
    page.wait_for_selector("#requests-pager[data-page='2']")
    second = page.eval_on_selector_all("#requests-table tbody tr", "rs => rs.map(r => r.dataset.request)")
    assert second and first not in second
    assert page.inner_text("#requests-info").startswith("Records 51\u2013")
    page.click("#requests-prev")
    page.wait_for_selector("#requests-pager[data-page='1']")
    assert page.locator("#requests-table tbody tr").first.get_attribute("data-request") == first


def test_models_estimate_savings_adoption_and_a_pasted_key(
    context: Any, gateway: GatewayProcess, fake: ThreadedFakeProvider
) -> None:
    chat(gateway, KEY, "plain-model", n=2)
    page = new_page(context)
    login(page)
    # Models counts what /v1/models lists (the openai SDK reads the same list)
    open_page(page, "models")
    listed = sdk(gateway).models.list().data
    assert int(page.get_attribute("#served-count", "data-value") or -1) == len(listed) > 0
    assert page.locator("#served-table tbody tr").count() == len(listed)

    # the estimate page shows what POST /admin/estimate answers for the same request
    open_page(page, "estimate")
    page.fill("#estimate-form [name=model]", "plain-model")
    page.fill("#estimate-form [name=max_tokens]", "100")
    page.fill("#estimate-form [name=prompt]", "How much is this?")
    page.click("#estimate-form button[type=submit]")
    page.wait_for_selector("#estimate-result")
    body = {
        "model": "plain-model",
        "messages": [{"role": "user", "content": "How much is this?"}],
        "max_tokens": 100,
    }
    api = admin(gateway, "/admin/estimate", json.dumps(body, separators=(",", ":")).encode())
    assert int(page.get_attribute("#estimate-worst", "data-value") or -1) == api["worst_case_micro_usd"]
    assert int(page.get_attribute("#estimate-expected", "data-value") or -1) == api["expected_micro_usd"]

    open_page(page, "savings")
    page.wait_for_selector("#savings-providers tr[data-provider=local]")
    open_page(page, "adoption")
    local = page.locator("#adoption-table tr[data-provider=local]")
    assert int(local.locator("td.tenants").inner_text()) >= 1

    # a provider added with its key pasted: sealed in the vault, shown as "vault", never echoed
    pasted = "sk-pasted-in-the-console-ui-0123456789"
    open_page(page, "providers")
    page.fill("#add-provider [name=name]", "pasted")
    page.select_option("#add-provider [name=plugin]", "openai_compatible")
    page.fill("#add-provider [name=base_url]", fake.url)
    page.fill("#add-provider [name=api_key]", pasted)
    page.fill("#add-provider [name=t_total]", "120")
    page.click("#add-provider button[type=submit]")
    row = page.locator("tr[data-provider=pasted]")
    row.wait_for()
    assert row.locator("td.key").inner_text() == "vault"
    assert pasted not in page.content()
    described = admin(gateway, "/admin/providers/pasted")
    assert described["api_key"] == "vault" and described["timeouts"]["total"] == 120
    # the edit form shows the provider's settings and changes any of them (the sealed key stays)
    row.locator("button.edit").click()
    page.wait_for_selector("#edit-provider form[data-provider=pasted]")
    assert page.input_value("#edit-provider [name=t_total]") == "120"
    page.fill("#edit-provider [name=b_failures]", "7")
    page.select_option("#edit-provider [name=byok]", "never")
    page.click("#edit-provider button[type=submit]")
    page.wait_for_selector(".toast >> text=Saved pasted.")
    described = admin(gateway, "/admin/providers/pasted")
    assert described["breaker"]["failures"] == 7 and described["byok"] == "never"
    assert described["api_key"] == "vault" and described["timeouts"]["total"] == 120
    shot(page, "providers-pasted-key")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_every_page_at_desktop_and_phone_width(context: Any, gateway: GatewayProcess, width: str) -> None:
    chat(gateway, KEY, "plain-model", n=2)
    size = WIDTHS[width]
    page = new_page(context)
    page.set_viewport_size(size)
    page.goto("/ui/login")
    page.wait_for_selector("#token")
    shot(page, f"screen-{width}-login")
    login(page)
    for name in OPERATOR_PAGES:
        open_page(page, name)
        overflow = page.evaluate("() => document.documentElement.scrollWidth")
        assert overflow <= size["width"], f"{name} scrolls sideways at {size['width']} px: {overflow}"
        wrong = [m for m in money_texts(page) if not GOOD_MONEY.match(m)]
        assert wrong == [], f"{name}: money not in the one format: {wrong}"
        assert "µ" not in page.inner_text("#main"), name
        shot(page, f"screen-{width}-{name}")
    logout(page)
    login(page, KEY)
    for name in TENANT_PAGES:
        open_page(page, name)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= size["width"], name
        wrong = [m for m in money_texts(page) if not GOOD_MONEY.match(m)]
        assert wrong == [], f"tenant {name}: {wrong}"
        shot(page, f"screen-{width}-tenant-{name}")
