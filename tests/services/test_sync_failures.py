"""A sync whose upstream fails (HTTP 500, an HTML page, a body cut off, no answer in time) keeps the
last good catalogue, answers the error envelope, raises a ``sync`` alert and is counted in the status
and in the metrics."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from services.conftest import sync_config
from support import ADMIN, AUTH, FIXTURES

from proxy.testing.fake_provider import Behaviour, FakeProvider

CATALOGUE = (FIXTURES / "aihubmix/api-v1-models.json").read_bytes()

FAILURES = {
    "http-500": Behaviour.json(500, {"error": {"message": "internal error", "type": "server_error"}}),
    "html-200": Behaviour(200, b"<!DOCTYPE html><html><body>Just a moment...</body></html>", "text/html"),
    "html-502": Behaviour(502, b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    "truncated-json": Behaviour(200, CATALOGUE[: len(CATALOGUE) // 2]),
    "connection-cut": Behaviour(
        200, b"", "application/json", chunks=[CATALOGUE[:300], CATALOGUE[300:]], fault="reset", reset_after=1
    ),
    "no-answer-in-time": Behaviour(200, CATALOGUE, delay=2.0),  # sync.timeout is 1 s
    "empty-list": Behaviour.json(200, {"data": [], "message": "", "success": True}),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_failed_sync_keeps_catalogue_and_alerts(
    failure: str, ahm: FakeProvider, orr: FakeProvider, make_synced: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_synced(sync_config(ahm, orr))
    resp = await client.post("/admin/providers/aihubmix/sync", headers=ADMIN)
    assert resp.status == 200
    before = await (await client.get("/admin/models?provider=aihubmix", headers=ADMIN)).json()

    ahm.gets["/api/v1/models"] = FAILURES[failure]
    with caplog.at_level(logging.WARNING, logger="efflux.alerts"):
        resp = await client.post("/admin/providers/aihubmix/sync", headers=ADMIN)
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "sync_failed" and "last good catalogue is kept" in error["message"]
    alerts = [r for r in caplog.records if r.name == "efflux.alerts"]
    assert alerts and alerts[-1].fields["alert"]["type"] == "sync"  # type: ignore[attr-defined]
    assert alerts[-1].fields["alert"]["name"] == "aihubmix"  # type: ignore[attr-defined]

    after = await (await client.get("/admin/models?provider=aihubmix", headers=ADMIN)).json()
    assert after == before  # the last good catalogue, every model still listed and priced
    resp = await client.post(
        "/v1/chat/completions",
        headers=AUTH,
        json={"model": "aihubmix/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status == 200

    detail = await (await client.get("/admin/providers/aihubmix", headers=ADMIN)).json()
    status = detail["sync_status"]
    assert (status["runs"], status["failures"], status["success_rate"]) == (2, 1, 0.5)
    assert status["last_error"] and status["last_success"] < status["last_run"] + 1e-9
    metrics = await (await client.get("/metrics")).text()
    assert 'efflux_sync_runs_total{provider="aihubmix",result="failure"} 1.0' in metrics
    assert 'efflux_alerts_total{type="sync"} 1.0' in metrics


async def test_unknown_provider_and_busy(ahm: FakeProvider, orr: FakeProvider, make_synced: Any) -> None:
    client = await make_synced(sync_config(ahm, orr))
    resp = await client.post("/admin/providers/nope/sync", headers=ADMIN)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    ahm.gets["/api/v1/models"] = Behaviour(200, CATALOGUE, delay=0.5)
    import asyncio

    slow = asyncio.ensure_future(client.post("/admin/providers/aihubmix/sync", headers=ADMIN))
    await asyncio.sleep(0.1)
    resp = await client.post("/admin/providers/aihubmix/sync", headers=ADMIN)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "sync_in_progress"
    assert (await slow).status == 200
    resp = await client.post("/admin/providers/aihubmix/sync", headers=ADMIN)  # the lock was released
    assert resp.status == 200
