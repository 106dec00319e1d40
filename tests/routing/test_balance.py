"""Balancing strategies within a priority level, and the retry budget's arithmetic."""

from __future__ import annotations

from proxy.config import RouteConfig
from proxy.routing.balance import Balancer
from proxy.routing.retry import RetryBudget
from proxy.routing.table import Choice, build_route

A, B, C = Choice("a", "m"), Choice("b", "m"), Choice("c", "m")


def route(strategy: str) -> object:
    config = RouteConfig.model_validate(
        {
            "strategy": strategy,
            "targets": [
                {"provider": "a", "model": "m", "priority": 0},
                {"provider": "b", "model": "m", "priority": 0},
                {"provider": "c", "model": "m", "priority": 1},
            ],
        }
    )
    return build_route("r", config)


def test_least_busy_prefers_fewer_in_flight_within_a_priority() -> None:
    bal = Balancer()
    bal.start(A)
    bal.start(A)
    bal.start(C)
    assert bal.order([A, B, C], lambda c: c, route("least_busy"), "r") == [B, A, C]  # type: ignore[arg-type]
    bal.finish(A)
    bal.finish(A)
    assert bal.order([A, B, C], lambda c: c, route("least_busy"), "r") == [A, B, C]  # type: ignore[arg-type]


def test_lowest_latency_and_weighted() -> None:
    bal = Balancer()
    bal.observe(A, 0.5)
    bal.observe(B, 0.1)
    assert bal.order([A, B, C], lambda c: c, route("lowest_latency"), "r") == [B, A, C]  # type: ignore[arg-type]
    assert bal.order([A, B, C], lambda c: c, route("weighted"), "r") == [A, B, C]  # type: ignore[arg-type]


def test_retry_budget_allows_a_fifth_of_requests_plus_the_floor() -> None:
    now = [0.0]
    budget = RetryBudget(ratio=0.2, min_per_second=1.0, burst=2.0, clock=lambda: now[0])
    assert budget.withdraw() and budget.withdraw() and not budget.withdraw()
    retries = 0
    for _ in range(100):
        budget.deposit()
        retries += budget.withdraw()
    assert retries == 20
    now[0] += 1.0
    assert budget.withdraw(), "the floor refills one per second"
