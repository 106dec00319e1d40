"""Alerts: a log line and, where configured, a webhook POST (JSON, retried with backoff).

The store decides *whether* a budget alert fires (once per scope, period and threshold). Who delivers it:

- memory store: the request whose settlement crossed the threshold (``Alerter.budget``);
- Redis store: its settlement script also appends the crossing to the tenant's alert feed (a stream with
  a consumer group), and ``follow`` in every replica consumes it: each crossing is handed to exactly one
  replica, which logs it, delivers it, then acknowledges it. So a crossing whose settlement reply was lost
  (or whose replica died before delivering) is still delivered, and by one replica only. A replica dying
  between the POST and the acknowledgement makes another one deliver it again after ``RECLAIM_IDLE``;
  the body's ``id`` (scope, period, threshold) lets a receiver drop that rare duplicate.

Operator alerts (``alerts:`` in the config, :meth:`Alerter.operator`) are the events that belong to no
tenant: ``provider_down`` (a provider's breaker opened), ``sync_failed`` (a model sync failed),
``ledger_lag`` (the ledger writer is behind, :func:`watch_ledger`), and ``budget`` (a copy of every
tenant's budget alert). Each is logged by the replica that saw it; those listed in ``alerts.on`` go to
``alerts.webhook``. Several replicas seeing one event (each one's breaker opening) deliver it once: before
delivering, a replica claims the event's key in the store for ``REPEAT_AFTER`` seconds (a SET NX with a
TTL in Redis, in-process for the memory store), and only the replica that claimed it posts. So the same
condition is posted at most once per ``REPEAT_AFTER``. When the store cannot be reached the replica posts
anyway (a rare duplicate rather than a lost alert). With ``alerts.secret`` each body is signed:
``X-Efflux-Signature: sha256=<hex HMAC-SHA256 of the body>``.

Deliveries run in background tasks so a slow webhook never delays a request; they are awaited on
shutdown. The body never carries a secret (its fields are listed in the README).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import orjson

from proxy.config import OperatorAlertsConfig
from proxy.store.base import AlertFeed, Crossing, FedAlert, Store, StoreUnavailable

log = logging.getLogger("efflux.alerts")

RETRY_DELAYS = (0.5, 2.0, 8.0)
POST_TIMEOUT = 5.0
POLL = 0.5  # seconds between reads of the alert feed
RECLAIM_EVERY = 20  # polls between looks for crossings a dead replica took and never acknowledged
REPEAT_AFTER = 300.0  # seconds: an operator event with the same key is posted at most once in this window
BUDGET_CLAIM = 86400.0 * 7  # a budget alert's id names its period: its operator copy is claimed this long
LEDGER_POLL = 5.0  # seconds between looks at the ledger writer's lag
SIGNATURE = "X-Efflux-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def budget_alert(crossing: Crossing, at: float | None = None) -> dict[str, object]:
    scope = crossing.scope
    return {
        "type": "budget",
        "id": f"budget/{scope.tenant}/{scope.kind}/{scope.name}/{crossing.period}/{crossing.threshold:g}",
        "scope": scope.kind,
        "name": scope.name,
        "tenant": scope.tenant,
        "threshold": crossing.threshold,
        "period": crossing.period,
        "spent_micro_usd": crossing.spent_micro_usd,
        "budget_micro_usd": crossing.budget_micro_usd,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
    }


class Alerter:
    def __init__(
        self,
        http: aiohttp.ClientSession | None,
        webhooks: dict[str, str],
        operator: OperatorAlertsConfig | None = None,
        store: Store | None = None,
    ) -> None:
        self.http = http
        self.webhooks = webhooks  # tenant -> URL
        self.operator_config = operator or OperatorAlertsConfig()  # swapped on reload
        self.store = store  # where replicas claim operator events (None: every event is this process's)
        self.tasks: set[asyncio.Task[bool]] = set()
        self.sent = 0
        self.shared = False  # True: budget alerts come from the store's feed (``follow``), not settlements

    def operator(self, event: str, key: str, alert: dict[str, object]) -> None:
        """Log an event that belongs to no tenant and, if ``alerts.on`` lists it, post it to the operator's
        webhook once across replicas (``key``: the same condition seen by every replica, e.g.
        ``provider_down/openai/gpt-4o``)."""
        log.warning("alert", extra={"fields": {"msg": "alert", "alert": alert}})
        config = self.operator_config
        if config.webhook is None or self.http is None or event not in config.on:
            return
        self._spawn(self._to_operator(event, key, alert, REPEAT_AFTER))

    def raise_alert(self, alert: dict[str, object], tenant: str | None) -> None:
        """Log and deliver in the background."""
        self._spawn(self.send(alert, tenant))

    def _spawn(self, job: Coroutine[Any, Any, bool]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _to_operator(
        self, event: str, key: str, alert: dict[str, object], window: float | None
    ) -> bool:
        """Claim the event (``window``: for how long; None: no claim needed), then post it."""
        url = self.operator_config.webhook
        if url is None:
            return True
        if window is not None and not await self._claim(
            key, window
        ):  # another replica has it (or had it within the window)
            log.info(
                "operator alert claimed elsewhere",
                extra={"fields": {"msg": "operator alert claimed elsewhere", "key": key}},
            )
            return True
        body = {"alert": event, **alert, "id": alert.get("id") or f"{key}/{int(time.time())}"}
        delivered = await self._deliver(url, body, self.operator_config.secret)
        if delivered:
            log.info("operator alert posted", extra={"fields": {"msg": "operator alert posted", "key": key}})
        return delivered

    async def _claim(self, key: str, window: float) -> bool:
        if self.store is None:
            return True
        try:
            # A lock with an owner no one else has is a SET NX with a TTL: the first claim wins.
            return await self.store.try_lock(f"alert:{key}", secrets.token_hex(8), window)
        except StoreUnavailable:
            log.warning(
                "alert claim failed (store unreachable): delivering anyway", extra={"fields": {"key": key}}
            )
            return True

    async def send(self, alert: dict[str, object], tenant: str | None) -> bool:
        """Log, then POST to the tenant's webhook (if any) with retries; False if every attempt failed."""
        log.warning("alert", extra={"fields": {"msg": "alert", "alert": alert}})
        if alert.get("type") == "budget" and "budget" in self.operator_config.on:
            # One process (memory store): each crossing comes here once, and no claim is kept for it.
            window = BUDGET_CLAIM if self.shared else None
            self._spawn(self._to_operator("budget", str(alert["id"]), alert, window))
        url = self.webhooks.get(tenant or "")
        if not url or self.http is None:
            return True
        return await self._deliver(url, alert)

    def budget(self, crossings: list[Crossing]) -> None:
        if self.shared:
            return  # the feed hands each crossing to exactly one replica
        for crossing in crossings:
            self.raise_alert(budget_alert(crossing), crossing.scope.tenant)

    async def _deliver(self, url: str, alert: dict[str, object], secret: str | None = None) -> bool:
        assert self.http is not None
        body = orjson.dumps(alert)
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SIGNATURE] = sign(secret, body)
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            if delay:
                await asyncio.sleep(delay)
            try:
                async with self.http.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT),
                ) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return True
                    status = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            log.warning(
                "alert webhook failed",
                extra={"fields": {"msg": "alert webhook failed", "attempt": attempt + 1, "status": status}},
            )
        log.error("alert webhook gave up", extra={"fields": {"msg": "alert webhook gave up", "alert": alert}})
        return False

    async def close(self) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=10)


async def watch_ledger(alerter: Alerter, lag: Callable[[], float | None], poll: float | None = None) -> None:
    """Until cancelled: raise ``ledger_lag`` when the ledger writer's lag (seconds, as ``lag`` reports it;
    None: no writer) passes ``alerts.ledger_lag_threshold``. Once per episode on this replica (again only
    after the lag came back under the threshold), and once across replicas (the claim)."""
    raised = False
    while True:
        seconds = lag()
        threshold = alerter.operator_config.ledger_lag_threshold
        if seconds is not None and seconds > threshold:
            if not raised:
                raised = True
                alerter.operator(
                    "ledger_lag",
                    "ledger_lag",
                    {
                        "type": "ledger",
                        "lag_seconds": round(seconds, 1),
                        "threshold_seconds": threshold,
                        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                )
        else:
            raised = False
        await asyncio.sleep(LEDGER_POLL if poll is None else poll)


async def follow(feed: AlertFeed, alerter: Alerter, poll: float = POLL) -> None:
    """Consume the store's alert feed until cancelled: deliver each crossing, then acknowledge it."""
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    polls = 0
    while True:
        try:
            alerts = await feed.read_alerts(consumer, reclaim=polls % RECLAIM_EVERY == 0)
        except StoreUnavailable:
            alerts = []
        polls += 1
        for alert in alerts:
            task = asyncio.get_running_loop().create_task(_deliver_and_ack(feed, alerter, alert))
            alerter.tasks.add(task)
            task.add_done_callback(alerter.tasks.discard)
        await asyncio.sleep(LEDGER_POLL if poll is None else poll)


async def _deliver_and_ack(feed: AlertFeed, alerter: Alerter, alert: FedAlert) -> bool:
    # Acknowledged even when the webhook gave up: retrying forever would only repeat the same failure,
    # and the log line above records it.
    delivered = await alerter.send(budget_alert(alert.crossing, alert.at), alert.crossing.scope.tenant)
    for delay in (0.0, 0.5, 2.0, 5.0):
        await asyncio.sleep(delay)
        try:
            await feed.ack_alert(alert)
            break
        except StoreUnavailable:
            continue  # unacknowledged, it would be delivered again by whoever reclaims it
    return delivered
