"""Circuit breakers: one per upstream target (provider + upstream model) and credential, shared by every
replica.

    closed --(``failures`` consecutive server faults)--> open --(``cooldown``)--> half-open
    half-open: one probe request (one across all replicas: a store lock); success -> closed, fault -> open

The hot path never waits on the store: ``admit`` reads local state, and the store is touched only on a
transition (a background write of the target's state document) and when a cooldown ends (the probe lock,
once per cooldown per replica). A background task polls the ``breakers`` document kind's version (one
cheap call every ``interval``) and takes in what other replicas decided, so a target that one replica
found dead is skipped by all of them within about ``interval``.

A target that answered ``Retry-After: N`` is skipped for N seconds (local to the replica that saw it:
the provider's rate limit is often per client connection, and the next answer will say it again).

Breakers and cool-downs are per credential (:mod:`proxy.tenancy.credentials`): the provider's shared key
(credential ``""``) has the target's breaker, which every tenant without a key of its own shares; a
tenant's own key has a breaker of its own, so that a key the provider refuses (429), cannot take (a
malformed key) or fails on (5xx) parks that key for that tenant only. A tenant key's breaker stays on
the replica that saw the failures (no store document, no probe lock, no provider alert, no
``efflux_breaker_state`` series: tenants' keys come and go, and nothing about them may grow without
bound), and is forgotten once it closes or has been idle ``FORGET_AFTER`` seconds;
``GET /admin/breakers`` lists it with its credential.

Time is the ``clock`` given (the wall clock by default, since replicas compare the instants they publish),
so that tests step a fake clock through cooldowns instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from proxy.config import BreakerConfig
from proxy.metering.alerts import Alerter
from proxy.observe.metrics import Metrics
from proxy.routing.table import Choice
from proxy.store.base import Store, StoreUnavailable

log = logging.getLogger("efflux.breaker")

KIND = "breakers"  # store document kind: one document per target, written on transitions
MAX_RETRY_AFTER = 300.0  # a provider's Retry-After beyond this is capped (a typo must not park a target)
FORGET_AFTER = 300.0  # a breaker with nothing newer than this is dropped (see forget_idle)


class State(enum.IntEnum):  # the values are the /metrics gauge's
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass(slots=True)
class Breaker:
    target: Choice
    credential: str = ""  # "": the provider's shared key; else the id of a tenant's own key
    state: State = State.CLOSED
    failures: int = 0  # consecutive server faults while closed
    open_until: float = 0.0  # wall clock (replicas compare it), when the cooldown ends
    retry_after_until: float = 0.0  # wall clock: the provider asked us to wait until then
    changed_at: float = 0.0  # wall clock of the last transition; a shared state older than this is stale
    opened: int = 0  # times opened, for the admin view
    seen: float = 0.0  # wall clock of the last fault reported (a tenant key's breaker is forgotten after)

    @property
    def name(self) -> str:
        name = f"{self.target.provider}/{self.target.model}"
        return f"{name}@{self.credential}" if self.credential else name

    def view(self) -> dict[str, object]:
        return {
            "target": self.name,
            "provider": self.target.provider,
            "model": self.target.model,
            "credential": self.credential or None,
            "state": self.state.name.lower(),
            "failures": self.failures,
            "open_until": self.open_until if self.state is not State.CLOSED else None,
            "retry_after_until": self.retry_after_until or None,
            "opened": self.opened,
        }


def _idle_since(b: Breaker) -> float:
    return max(b.seen, b.open_until, b.retry_after_until)


class Breakers:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        alerts: Alerter,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.alerts = alerts
        self.interval = interval
        self._clock = clock
        self.replica = secrets.token_hex(6)  # lock owner and document author
        self.breakers: dict[Choice, Breaker] = {}  # the shared keys'
        self.own: dict[tuple[Choice, str], Breaker] = {}  # tenants' own keys', by (target, credential)
        self._version = -1
        self._forgot = 0.0  # wall clock of the last forget_idle
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, target: Choice, credential: str = "") -> Breaker:
        breaker = self._find(target, credential)
        if breaker is None:
            breaker = Breaker(target, credential)
            if credential:
                self.own[(target, credential)] = breaker
            else:
                self.breakers[target] = breaker
        return breaker

    def _find(self, target: Choice, credential: str) -> Breaker | None:
        return self.own.get((target, credential)) if credential else self.breakers.get(target)

    def all(self) -> list[Breaker]:
        return [*self.breakers.values(), *self.own.values()]

    def wait(self, target: Choice, credential: str = "") -> float:
        """Seconds until this target may be tried again (0: now, or a probe is due)."""
        b = self._find(target, credential)
        if b is None:
            return 0.0
        now = self._clock()
        until = b.retry_after_until if b.state is State.CLOSED else max(b.open_until, b.retry_after_until)
        return max(0.0, until - now)

    async def admit(self, target: Choice, config: BreakerConfig, credential: str = "") -> bool:
        """Whether a request may go to ``target`` with ``credential`` now. True in half-open means: this
        request is the probe (report its outcome with ``success``/``failure``, or ``abandon`` it)."""
        b = self._find(target, credential)
        if b is None:
            return True
        now = self._clock()
        if now < b.retry_after_until:
            return False
        if b.state is State.CLOSED:
            return True
        if b.state is State.HALF_OPEN or now < b.open_until:
            return False  # cooling down, or a probe is already out
        self._transition(b, State.HALF_OPEN, now)  # before any await: only one request becomes the probe
        if b.credential:  # a tenant's own key: this replica's own probe
            return True
        try:
            # ttl: the probe's lock outlives a hung probe by little, so a lost replica does not park it
            won = await self.store.try_lock(f"breaker-probe:{b.name}", self.replica, config.cooldown or 1.0)
        except StoreUnavailable:
            won = True  # without the store each replica probes for itself: still one probe per replica
        if not won:  # another replica probes; look again after a short while (or when it publishes)
            self._transition(b, State.OPEN, now)
            b.open_until = now + min(1.0, config.cooldown)
            return False
        return True

    def success(self, target: Choice, credential: str = "") -> None:
        if credential:  # a tenant key that works again: nothing left to remember
            self.own.pop((target, credential), None)
            return
        b = self.breakers.get(target)
        if b is None:
            return
        b.failures = 0
        if b.state is not State.CLOSED:
            self._transition(b, State.CLOSED, self._clock())
            log.info("breaker closed", extra={"fields": {"msg": "breaker closed", "target": b.name}})
            self._publish(b)

    def failure(self, target: Choice, config: BreakerConfig, credential: str = "") -> None:
        b = self.get(target, credential)
        now = b.seen = self._clock()
        if b.state is State.OPEN:
            return  # requests sent before it opened are still failing: that changes nothing
        b.failures += 1
        if b.state is State.HALF_OPEN or b.failures >= config.failures:
            self._open(b, config, now)

    def abandon(self, target: Choice, credential: str = "") -> None:
        """A probe that was admitted but never reported (cancelled, or never sent): probe again soon."""
        b = self._find(target, credential)
        if b is not None and b.state is State.HALF_OPEN:
            self._transition(b, State.OPEN, self._clock())
            b.open_until = b.changed_at

    def retry_after(self, target: Choice, seconds: float, credential: str = "") -> None:
        b = self.get(target, credential)
        now = b.seen = self._clock()
        b.retry_after_until = max(b.retry_after_until, now + min(seconds, MAX_RETRY_AFTER))

    def forget_idle(self) -> None:
        """Drop the breakers that have nothing left to say (no fault, cooldown or wait within
        ``FORGET_AFTER``): a tenant key's unless half open, a shared key's once closed (with its gauge
        series). The next request goes through, as with a closed breaker. So neither the breakers nor
        the gauge's series grow with the model names clients invent behind a wildcard route."""
        now = self._clock()
        for key, b in list(self.own.items()):
            if b.state is not State.HALF_OPEN and _idle_since(b) + FORGET_AFTER < now:
                del self.own[key]
        for target, b in list(self.breakers.items()):
            if b.state is State.CLOSED and max(_idle_since(b), b.changed_at) + FORGET_AFTER < now:
                del self.breakers[target]
                if b.opened or b.changed_at:
                    with contextlib.suppress(KeyError):
                        self.metrics.breaker_state.remove(target.provider, target.model)
        self._forgot = now

    def _open(self, b: Breaker, config: BreakerConfig, now: float) -> None:
        probe_failed = b.state is State.HALF_OPEN
        self._transition(b, State.OPEN, now)
        b.open_until = now + config.cooldown
        b.opened += 1
        self._publish(b)
        if b.credential:  # a tenant's own key: not the provider's outage, no operator alert
            log.info(
                "breaker opened for a tenant's own key",
                extra={"fields": {"msg": "breaker open", "target": b.name, "failures": b.failures}},
            )
        elif not probe_failed:  # one alert per outage, not one per failed probe
            self.metrics.alerts.labels("provider").inc()
            self.alerts.operator(
                "provider_down",
                f"provider_down/{b.target.provider}/{b.target.model}",  # every replica's name for it
                {
                    "type": "provider",
                    "event": "breaker_open",
                    "provider": b.target.provider,
                    "model": b.target.model,
                    "failures": b.failures,
                    "cooldown_s": config.cooldown,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                },
            )

    def _transition(self, b: Breaker, state: State, now: float) -> None:
        b.state, b.changed_at = state, now
        if state is State.CLOSED:
            b.failures = 0
        if not b.credential:
            self.metrics.breaker_state.labels(b.target.provider, b.target.model).set(int(state))

    # -- sharing through the store ----------------------------------------------------------------
    def _publish(self, b: Breaker) -> None:
        if b.credential:
            return  # a tenant key's breaker stays on this replica (see the module's docstring)
        doc = {
            "state": "closed" if b.state is State.CLOSED else "open",
            "open_until": b.open_until,
            "at": b.changed_at,
            "by": self.replica,
            "provider": b.target.provider,
            "model": b.target.model,
        }
        task = asyncio.get_running_loop().create_task(self._put(b.name, orjson.dumps(doc)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put(self, name: str, doc: bytes) -> None:
        try:
            await self.store.put_doc(KIND, name, doc)
        except StoreUnavailable:
            log.warning("breaker state not shared (store unreachable)", extra={"fields": {"target": name}})

    async def refresh(self) -> None:
        """Take in the transitions other replicas published since the last look."""
        version = await self.store.doc_version(KIND)
        if version == self._version:
            return
        docs = await self.store.list_docs(KIND)
        self._version = version
        for raw in docs.values():
            doc = orjson.loads(raw)
            if doc.get("by") == self.replica:
                continue
            target = Choice(str(doc["provider"]), str(doc["model"]))
            if doc["state"] == "closed" and target not in self.breakers:
                continue  # nothing here to close (and no breaker made for it)
            b = self.get(target)
            at = float(doc["at"])
            if at <= b.changed_at:
                continue  # we know something newer
            open_until = float(doc["open_until"])
            if doc["state"] == "open" and b.state is State.CLOSED and open_until > self._clock():
                self._transition(b, State.OPEN, at)
                b.open_until = open_until
            elif doc["state"] == "closed" and b.state is not State.CLOSED:
                self._transition(b, State.CLOSED, at)

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except StoreUnavailable:
                pass  # keep the local view; the next poll tries again
            except Exception:
                log.exception("refreshing breaker states failed")
            if (self.own or self.breakers) and self._clock() - self._forgot > FORGET_AFTER / 10:
                self.forget_idle()
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 2.0)
