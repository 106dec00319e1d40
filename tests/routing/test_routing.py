"""The routing table: which route a model name hits, the upstream model each target gets, target order."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from proxy.config import RouteConfig
from proxy.routing.table import Route, RoutingTable, Target, build_route, model_allowed, order_targets


def route(name: str, *targets: dict[str, Any]) -> Route:
    return build_route(name, RouteConfig.model_validate({"targets": list(targets)}))


def table(*routes: Route) -> RoutingTable:
    return RoutingTable(routes)


def hit(t: RoutingTable, model: str, *extras: dict[str, Route]) -> str:
    """The YAML name of the route a model hits, and its first target's provider."""
    found = t.find(model, *extras)
    assert found is not None, model
    return f"{found.name} -> {found.targets[0].provider}"


def upstreams(t: RoutingTable, model: str) -> list[tuple[str, str]]:
    resolution = t.resolve(model, rng=random.Random(0))
    assert resolution is not None
    return [(c.provider, c.model) for c in resolution.choices]


# --- which route ------------------------------------------------------------------------------------------


def test_exact_name_beats_a_wildcard_listed_first() -> None:
    t = table(route("*", {"provider": "catchall"}), route("gpt-4o", {"provider": "openai"}))
    assert upstreams(t, "gpt-4o") == [("openai", "gpt-4o")]
    assert upstreams(t, "gpt-4o-mini") == [("catchall", "gpt-4o-mini")]


def test_most_specific_wildcard_first_whatever_the_order() -> None:
    t = table(
        route("*", {"provider": "any"}),
        route("gpt-*", {"provider": "gpts"}),
        route("gpt-4o*", {"provider": "fouro"}),
        route("openrouter/*", {"provider": "openrouter"}),
        route("openrouter/anthropic/*", {"provider": "anthropic-via-or", "model": "pinned"}),
    )
    assert hit(t, "gpt-4o-mini") == "gpt-4o* -> fouro"
    assert hit(t, "gpt-3.5") == "gpt-* -> gpts"
    assert hit(t, "claude") == "* -> any"
    assert hit(t, "openrouter/openai/gpt-4o") == "openrouter/* -> openrouter"
    assert hit(t, "openrouter/anthropic/claude") == "openrouter/anthropic/* -> anthropic-via-or"


def test_no_route_is_none() -> None:
    t = table(route("gpt-4o", {"provider": "openai"}), route("openrouter/*", {"provider": "openrouter"}))
    assert t.find("claude") is None
    assert t.resolve("claude") is None
    assert t.resolve("openrouter") is None  # the pattern needs the slash


def test_patterns_are_case_sensitive() -> None:
    t = table(route("gpt-*", {"provider": "openai"}))
    assert t.find("GPT-4o") is None


def test_extra_routes_come_after_exact_and_before_wildcards() -> None:
    # Resolution order: exact YAML name, then the routing overlay, then synced models, then wildcards
    t = table(route("gpt-4o", {"provider": "yaml"}), route("*", {"provider": "wild"}))
    overlay = {
        "gpt-4o": route("gpt-4o", {"provider": "overlay"}),
        "both": route("both", {"provider": "overlay"}),
    }
    synced = {"synced": route("synced", {"provider": "sync"}), "both": route("both", {"provider": "sync"})}
    assert hit(t, "gpt-4o", overlay, synced) == "gpt-4o -> yaml"
    assert hit(t, "both", overlay, synced) == "both -> overlay"
    assert hit(t, "synced", overlay, synced) == "synced -> sync"
    assert hit(t, "other", overlay, synced) == "* -> wild"
    assert hit(t, "both") == "* -> wild"


def test_build_route_marks_patterns() -> None:
    assert not route("gpt-4o", {"provider": "p"}).pattern
    assert route("gpt-*", {"provider": "p"}).pattern
    assert route("gpt-4?", {"provider": "p"}).pattern
    assert route("gpt-[45]", {"provider": "p"}).pattern


# --- upstream model ---------------------------------------------------------------------------------------


def test_prefix_wildcard_strips_the_prefix() -> None:
    t = table(route("openrouter/*", {"provider": "openrouter"}))
    assert upstreams(t, "openrouter/openai/gpt-4o") == [("openrouter", "openai/gpt-4o")]
    assert upstreams(t, "openrouter/anthropic/claude-sonnet-4.5") == [
        ("openrouter", "anthropic/claude-sonnet-4.5")
    ]


def test_other_wildcards_send_the_requested_name() -> None:
    t = table(route("gpt-*", {"provider": "openai"}), route("*", {"provider": "local"}))
    assert upstreams(t, "gpt-4o") == [("openai", "gpt-4o")]
    assert upstreams(t, "llama3") == [("local", "llama3")]


def test_exact_route_without_model_sends_the_requested_name() -> None:
    t = table(route("gpt-4o-mini", {"provider": "openai"}))
    assert upstreams(t, "gpt-4o-mini") == [("openai", "gpt-4o-mini")]


def test_explicit_target_model_wins() -> None:
    t = table(
        route("openrouter/*", {"provider": "openrouter", "model": "openai/gpt-4o-mini"}),
        route("claude-sonnet", {"provider": "anthropic", "model": "claude-sonnet-4-5"}),
    )
    assert upstreams(t, "openrouter/anything") == [("openrouter", "openai/gpt-4o-mini")]
    assert upstreams(t, "claude-sonnet") == [("anthropic", "claude-sonnet-4-5")]


# --- target order -----------------------------------------------------------------------------------------


def test_list_order_is_the_default_priority() -> None:
    r = route("m", {"provider": "a"}, {"provider": "b"}, {"provider": "c"})
    assert [t.priority for t in r.targets] == [0, 1, 2]
    for seed in range(20):
        assert [t.provider for t in order_targets(r.targets, random.Random(seed))] == ["a", "b", "c"]


def test_lower_priority_first_whatever_the_list_order() -> None:
    t = table(
        route(
            "m",
            {"provider": "last", "priority": 9},
            {"provider": "first", "priority": -1},
            {"provider": "middle", "priority": 3, "model": "x"},
        )
    )
    for seed in range(20):
        resolution = t.resolve("m", rng=random.Random(seed))
        assert resolution is not None
        assert [(c.provider, c.model) for c in resolution.choices] == [
            ("first", "m"),
            ("middle", "x"),
            ("last", "m"),
        ]


def test_weighted_balance_within_a_priority() -> None:
    targets = (
        Target("heavy", None, 0, 3.0),
        Target("light", None, 0, 1.0),
        Target("fallback", None, 1, 100.0),  # a higher priority number is never first, whatever its weight
    )
    rng = random.Random(1234)
    trials = 20_000
    firsts = Counter(order_targets(targets, rng)[0].provider for _ in range(trials))
    assert firsts["fallback"] == 0
    # weight 3 : 1 -> heavy first 75 % of the time; the tolerance is ~8 standard deviations
    assert abs(firsts["heavy"] / trials - 0.75) < 0.025
    assert firsts["heavy"] + firsts["light"] == trials


def test_equal_weights_balance_evenly_and_every_target_stays_in_the_list() -> None:
    targets = tuple(Target(name, None, 0, 1.0) for name in "abcd")
    rng = random.Random(7)
    trials = 20_000
    firsts: Counter[str] = Counter()
    for _ in range(trials):
        ordered = order_targets(targets, rng)
        assert sorted(t.provider for t in ordered) == ["a", "b", "c", "d"]  # the rest are fallbacks
        firsts[ordered[0].provider] += 1
    for name in "abcd":
        assert abs(firsts[name] / trials - 0.25) < 0.02


def test_weights_from_yaml_reach_the_order() -> None:
    t = table(route("m", {"provider": "a", "priority": 0, "weight": 9}, {"provider": "b", "priority": 0}))
    rng = random.Random(99)
    trials = 5_000
    firsts = Counter(t.resolve("m", rng=rng).choices[0].provider for _ in range(trials))  # type: ignore[union-attr]
    assert abs(firsts["a"] / trials - 0.9) < 0.03


def test_the_same_seed_gives_the_same_order() -> None:
    targets = tuple(Target(name, None, 0, 1.0) for name in "abcdefgh")
    first = [t.provider for t in order_targets(targets, random.Random(5))]
    again = [t.provider for t in order_targets(targets, random.Random(5))]
    assert first == again


# --- key model globs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "model", "allowed"),
    [
        (["*"], "anything/at-all", True),
        (["gpt-4o-mini"], "gpt-4o-mini", True),
        (["gpt-4o-mini"], "gpt-4o", False),
        (["gpt-4o-mini"], "gpt-4o-mini-2024-07-18", False),
        (["openrouter/*"], "openrouter/openai/gpt-4o", True),
        (["openrouter/*"], "openrouter", False),
        (["gpt-4o-mini", "openrouter/*"], "openrouter/x", True),
        (["claude-?-haiku"], "claude-3-haiku", True),
        (["gpt-[45]*"], "gpt-3.5-turbo", False),
        (["GPT-*"], "gpt-4o", False),
        ([], "gpt-4o", False),
    ],
)
def test_key_model_globs(patterns: list[str], model: str, allowed: bool) -> None:
    assert model_allowed(patterns, model) is allowed
