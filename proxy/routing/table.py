"""The routing table: which targets serve a requested model name.

Resolution order: an exact name from YAML, then the routing overlay and synced models
(added by later layers through ``extra``), then wildcard patterns, most specific first. A target without a
``model`` sends the requested name on; under a ``prefix/*`` pattern it sends the rest of the name after
the prefix (``openrouter/openai/gpt-4o`` -> ``openai/gpt-4o``).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import NamedTuple

from proxy.config import RouteConfig


@dataclass(frozen=True, slots=True)
class Target:
    provider: str
    model: str | None  # None: derived from the requested name
    priority: int
    weight: float
    deployment: str | None = None  # Azure's deployment name, when it differs from the model's


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the YAML key: an exact model name or a glob pattern
    targets: tuple[Target, ...]
    pattern: bool = False
    config: RouteConfig | None = None  # strategy and timeout overrides (None: the defaults)
    deployments: bool = False  # some target names a deployment (see deployment_of)


class Choice(NamedTuple):
    """One concrete upstream to try: a target with its upstream model name worked out. A named tuple:
    dispatch, breakers and balancer key dicts by it several times per request, and a tuple hashes in C."""

    provider: str
    model: str


# Not frozen, though never changed: one per request (see proxy.store.records.UsageRecord).
@dataclass(slots=True)
class Resolution:
    model: str  # what the client asked for
    route: Route
    choices: tuple[Choice, ...]  # in priority order; shuffled by weight within a priority


def build_route(name: str, config: RouteConfig) -> Route:
    targets = tuple(
        Target(t.provider, t.model, t.priority if t.priority is not None else i, t.weight, t.deployment)
        for i, t in enumerate(config.targets)
    )
    deployments = any(t.deployment for t in targets)
    return Route(name, targets, pattern=any(c in name for c in "*?["), config=config, deployments=deployments)


class RoutingTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.exact: dict[str, Route] = {}
        patterns: list[Route] = []
        for route in routes:
            if route.pattern:
                patterns.append(route)
            else:
                self.exact[route.name] = route
        # Most specific pattern first: the longest literal part before the first wildcard character.
        self.patterns = sorted(patterns, key=lambda r: -len(_literal_prefix(r.name)))

    def find(self, model: str, *extras: Mapping[str, Route]) -> Route | None:
        """Exact YAML names, then each of ``extras`` in order (the overlay, synced models), then patterns."""
        route = self.exact.get(model)
        for extra in extras:
            if route is not None:
                break
            route = extra.get(model)
        if route is None:
            route = next((r for r in self.patterns if fnmatchcase(model, r.name)), None)
        return route

    def resolve(
        self, model: str, *extras: Mapping[str, Route], rng: random.Random | None = None
    ) -> Resolution | None:
        route = self.find(model, *extras)
        if route is None:
            return None
        if len(route.targets) == 1:  # the usual case: nothing to order (and no random draw)
            target = route.targets[0]
            choices: tuple[Choice, ...] = (Choice(target.provider, upstream_model(route, target, model)),)
        else:
            ordered = order_targets(route.targets, rng)
            choices = tuple(Choice(t.provider, upstream_model(route, t, model)) for t in ordered)
        return Resolution(model, route, choices)


def upstream_model(route: Route, target: Target, requested: str) -> str:
    if target.model:
        return target.model
    if route.pattern and route.name.endswith("/*") and "*" not in route.name[:-1]:
        prefix = route.name[:-1]
        if requested.startswith(prefix):
            return requested[len(prefix) :]
    return requested


def deployment_of(route: Route, choice: Choice, requested: str) -> str | None:
    """The ``deployment`` of the target behind ``choice``, if it names one. A choice is a provider and a
    model: two targets of one provider and model are one choice (the first one's deployment)."""
    if not route.deployments:
        return None
    for t in route.targets:
        if t.provider == choice.provider and upstream_model(route, t, requested) == choice.model:
            return t.deployment
    return None


def order_targets(targets: Iterable[Target], rng: random.Random | None = None) -> list[Target]:
    """Lower priority first; within one priority a weighted random order (Efraimidis-Spirakis keys)."""
    draw = (rng or _RNG).random
    return sorted(targets, key=lambda t: (t.priority, -(draw() ** (1.0 / t.weight))))


_RNG = random.Random()


def model_allowed(patterns: Collection[str], model: str) -> bool:
    if "*" in patterns:  # the usual case, without a pattern match
        return True
    return any(fnmatchcase(model, p) for p in patterns)


def _literal_prefix(pattern: str) -> str:
    for i, c in enumerate(pattern):
        if c in "*?[":
            return pattern[:i]
    return pattern
