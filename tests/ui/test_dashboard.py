"""The dashboard in a real browser: the operator's whole loop (log in, add and sync a provider, find a
model, create a key, send traffic with the openai SDK, see totals and charts move, equal to the admin API),
the tenant view (only its own data), markup in names shown as text, and the security headers."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import openai
from support import ADMIN, KEY
from uisupport import FAKE_KEY_ENV, OTHER_KEY, XSS, XSS_KEY, login, logout, open_page, shot

from proxy.testing.fake_provider import ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess


def admin_get(gateway: GatewayProcess, path: str) -> Any:
    req = urllib.request.Request(gateway.url + path, headers=ADMIN)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def value(page: Any, selector: str) -> int:
    return int(page.get_attribute(selector, "data-value") or 0)


def chat(gateway: GatewayProcess, key: str, model: str, n: int = 1, stream: bool = False) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    for _ in range(n):
        messages: Any = [{"role": "user", "content": "hello from the dashboard test"}]
        if stream:
            for _chunk in client.chat.completions.create(model=model, messages=messages, stream=True):
                pass
        else:
            client.chat.completions.create(model=model, messages=messages)


def test_operator_loop(page: Any, gateway: GatewayProcess, fake: ThreadedFakeProvider) -> None:
    login(page)
    open_page(page, "usage")
    before = value(page, "#total-requests")
    shot(page, "usage-before")

    # add the fake aggregator and sync its catalogue
    open_page(page, "providers")
    page.fill("#add-provider [name=name]", "fakeagg")
    page.select_option("#add-provider [name=plugin]", "openrouter")
    page.fill("#add-provider [name=base_url]", fake.url)
    page.fill("#add-provider [name=api_key]", "${" + FAKE_KEY_ENV + "}")
    page.click("#add-provider button[type=submit]")
    row = page.locator("tr[data-provider=fakeagg]")
    row.wait_for()
    row.locator("button.sync").click()
    page.wait_for_selector(".toast >> text=Synced fakeagg")
    page.wait_for_function(
        "() => document.querySelector('tr[data-provider=fakeagg] td.models')?.textContent === '4'"
    )
    assert "ok: +4" in row.inner_text()
    shot(page, "providers")

    # find a model
    open_page(page, "models")
    page.fill("#model-search", "ui-model")
    page.wait_for_function("() => document.querySelectorAll('#models-table tbody tr').length === 2")
    table = page.inner_text("#models-table")
    assert "ui-model-a" in table and "ui-model-b" in table and "aggregator" in table
    assert "$1" in table and "$15" in table  # USD per 1M tokens, from per-token catalogue prices
    shot(page, "models")

    # create a key: the secret is shown once
    open_page(page, "keys")
    page.fill("#create-key [name=name]", "ui-key")
    page.fill("#create-key [name=tenant]", "ui-tenant")
    page.fill("#create-key [name=usd]", "5")
    page.click("#create-key button[type=submit]")
    secret = page.inner_text("#new-key-secret")
    assert secret.startswith("egw-")
    shot(page, "keys")

    # traffic with the openai SDK: the new key through the synced aggregator, a YAML key elsewhere
    deadline = time.monotonic() + 5
    while True:  # the key reaches the serving snapshot within the live refresh interval
        try:
            chat(gateway, secret, "fakeagg/ui-model-a")
            break
        except openai.AuthenticationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    chat(gateway, secret, "fakeagg/ui-model-b", n=2, stream=True)
    chat(gateway, KEY, "plain-model", n=3)

    open_page(page, "tenants")
    page.wait_for_selector("section[data-tenant=acme] .bar")
    shot(page, "tenants")

    page.evaluate("() => { location.hash = '#/providers'; }")
    open_page(page, "usage")
    page.wait_for_selector("#chart-tokens[data-drawn=true]")
    page.wait_for_selector("#chart-cost-provider[data-drawn=true]")
    page.wait_for_selector("#chart-latency[data-drawn=true]")
    assert value(page, "#total-requests") == before + 6
    assert "fakeagg" in page.inner_text("#usage-providers")
    shot(page, "usage-after")

    # the dashboard's numbers are the admin API's for the same range
    since = page.get_attribute("#range-info", "data-since")
    until = page.get_attribute("#range-info", "data-until")
    api = admin_get(gateway, f"/admin/usage?group_by=provider&since={since}&until={until}")
    totals = api["totals"]
    assert value(page, "#total-requests") == totals["requests"]
    assert value(page, "#total-cost") == totals["cost_micro_usd"]
    assert value(page, "#total-tokens") == totals["prompt_tokens"] + totals["completion_tokens"]
    assert value(page, "#total-errors") == totals["errors"]
    assert value(page, "#total-p95") == totals["latency_p95_ms"]
    rows = page.inner_text("#usage-providers tbody").splitlines()
    shown = {r.split("\t")[0]: r.split("\t")[1] for r in rows}
    assert shown == {g["group"]: f"{g['requests']:,}" for g in api["data"]}

    open_page(page, "compare")
    page.fill("#compare-model", "ui-model-a")
    page.click("#compare-form button[type=submit]")
    page.wait_for_selector("#compare-table")
    assert "fakeagg" in page.inner_text("#compare-table")
    shot(page, "compare")

    open_page(page, "requests")
    page.wait_for_selector("#requests-table")
    recent = page.inner_text("#requests-table")
    assert "ui-key" in recent and "completed" in recent
    shot(page, "requests")

    # revoke takes two clicks
    open_page(page, "keys")
    button = page.locator("button.revoke[data-key=ui-key]")
    button.click()
    button.click()
    page.wait_for_selector(".toast >> text=Revoked ui-key")


def test_tenant_sees_only_its_own(page: Any, gateway: GatewayProcess) -> None:
    chat(gateway, KEY, "tenant-model", n=2)
    chat(gateway, OTHER_KEY, "globex-secret-model", n=3)
    login(page, KEY)
    page.wait_for_selector("#main[data-page=me][data-ready=true]")
    assert [a.inner_text() for a in page.locator("#nav a").all()] == ["My key", "Estimate"]
    text = page.inner_text("body")
    assert "tenant acme" in text
    assert "globex" not in text and "other" not in page.inner_text("#main")
    mine = [r for r in admin_get(gateway, "/admin/usage/records?key=test&limit=1000")["data"]]
    assert value(page, "#total-requests") == len(mine)
    page.wait_for_selector("#chart-tokens[data-drawn=true]")

    # its own provider keys: add (validated against the provider), then delete
    page.fill("#my-key-form [name=provider]", "local")
    page.fill("#my-key-form [name=api_key]", "sk-tenant-own-key")
    page.click("#my-key-form button[type=submit]")
    page.wait_for_selector("#my-provider-keys >> text=local")
    shot(page, "tenant")
    page.click("#my-provider-keys button.danger")
    page.wait_for_selector("p#my-provider-keys.empty")

    # the session opens /me only: the admin API and another scope stay closed
    csrf = page.evaluate("() => fetch('/ui/api/session').then(r => r.json()).then(s => s.csrf)")
    headers = {"X-CSRF-Token": csrf, "Origin": gateway.url}
    assert page.request.get("/admin/keys", headers=headers).status == 401
    assert page.request.get("/me", headers=headers).status == 200
    assert page.request.get("/me", headers={**headers, "X-CSRF-Token": "forged"}).status == 401
    assert page.request.get("/me", headers={**headers, "Origin": "https://evil.example"}).status == 401
    overview = page.request.get("/ui/api/overview?tenant=globex&key=other", headers=headers).json()
    assert overview["filters"] == {"tenant": "acme", "key": "test"}


def test_markup_in_names_renders_as_text(page: Any, gateway: GatewayProcess) -> None:
    chat(gateway, XSS_KEY, "xss-model", n=1)
    login(page)
    for name in ("providers", "models", "tenants", "usage", "requests", "keys"):
        open_page(page, name)
        if name == "usage":
            page.wait_for_selector("#chart-cost-provider[data-drawn=true]")
        assert XSS in page.inner_text("#main"), name
        assert page.locator("#main img").count() == 0, name
        assert page.evaluate("() => window.__xss") is None, name
    shot(page, "xss")
    logout(page)
    login(page, XSS_KEY)
    assert XSS in page.inner_text("#main")
    assert page.evaluate("() => window.__xss") is None


def test_headers_and_cross_site_refusals(page: Any, gateway: GatewayProcess) -> None:
    response = page.goto("/ui/login")
    csp = response.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src", "object-src 'none'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    login(page)
    cookie = next(c for c in page.context.cookies() if c["name"] == "efflux_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("() => document.cookie") == ""
    assert "token" not in page.url and "egw-" not in page.url
    # a cross-site request with the cookie gets nothing: no CSRF token, or a foreign Origin
    assert page.request.get("/admin/keys").status == 401
    csrf = page.evaluate("() => fetch('/ui/api/session').then(r => r.json()).then(s => s.csrf)")
    foreign = {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    assert page.request.post("/admin/keys", headers=foreign, data={"name": "x"}).status == 401
    assert page.request.post("/ui/login", headers={"Origin": "https://evil.example"}, data={}).status == 403
    assert page.request.get("/ui/static/../../pyproject.toml").status == 404
