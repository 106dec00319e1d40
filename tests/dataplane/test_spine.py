"""The spine's ``resolve``: the candidates a request may be sent to, with the timeouts dispatch uses."""

from __future__ import annotations

from typing import Any

import pytest
from support import KEY, base_config

from proxy.config import Timeouts, parse_settings
from proxy.dataplane.spine import resolve
from proxy.plugin import Endpoint
from proxy.state.snapshot import Snapshot, build_snapshot

PROVIDER = {"connect": 1.0, "first_byte": 2.0, "idle": 3.0, "total": 4.0}


def snapshot(route_timeouts: dict[str, Any] | None) -> Snapshot:
    cfg = base_config("http://127.0.0.1:9/v1")
    for name in ("local", "backup"):
        cfg["providers"][name]["timeouts"] = dict(PROVIDER)
    if route_timeouts is not None:
        cfg["models"]["two-step"]["timeouts"] = route_timeouts
    return build_snapshot(parse_settings(cfg))


def candidate_timeouts(snap: Snapshot) -> list[Timeouts]:
    key = snap.keys.lookup(KEY)
    assert key is not None
    _, candidates = resolve(snap, key, "two-step", Endpoint.CHAT)
    return [c.timeouts for c in candidates]


def test_without_route_timeouts_the_providers_apply() -> None:
    assert candidate_timeouts(snapshot(None)) == [Timeouts(**PROVIDER)] * 2


@pytest.mark.parametrize("name", ["connect", "first_byte", "idle", "total"])
def test_a_route_timeout_replaces_the_providers(name: str) -> None:
    expected = Timeouts(**{**PROVIDER, name: 0.25})
    assert candidate_timeouts(snapshot({name: "250ms"})) == [expected] * 2
