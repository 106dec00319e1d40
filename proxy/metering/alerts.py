"""Alerts: a log line and, where configured, a webhook POST (JSON, retried with backoff).

The store decides *whether* a budget alert fires (once per scope, period and threshold). Who delivers it:

- memory store: the request whose settlement crossed the threshold (``Alerter.budget``);
- Redis store: its settlement script also appends the crossing to the tenant's alert feed (a stream with
  a consumer group), and ``follow`` in every replica consumes it: each crossing is handed to exactly one
  replica, which logs it, delivers it, then acknowledges it. So a crossing whose settlement reply was lost
  (or whose replica died before delivering) is still delivered, and by one replica only. A replica dying
  between the POST and the acknowledgement makes another one deliver it again after ``RECLAIM_IDLE``;
  the body's ``id`` (scope, period, threshold) lets a receiver drop that rare duplicate.

Deliveries run in background tasks so a slow webhook never delays a request; they are awaited on
shutdown. The body never carries a secret (its fields are listed in the README).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import aiohttp
import orjson

from proxy.store.base import AlertFeed, Crossing, FedAlert, StoreUnavailable

log = logging.getLogger("efflux.alerts")

RETRY_DELAYS = (0.5, 2.0, 8.0)
POST_TIMEOUT = 5.0
POLL = 0.5  # seconds between reads of the alert feed
RECLAIM_EVERY = 20  # polls between looks for crossings a dead replica took and never acknowledged


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
    def __init__(self, http: aiohttp.ClientSession | None, webhooks: dict[str, str]) -> None:
        self.http = http
        self.webhooks = webhooks  # tenant -> URL
        self.tasks: set[asyncio.Task[bool]] = set()
        self.sent = 0
        self.shared = False  # True: budget alerts come from the store's feed (``follow``), not settlements

    def raise_alert(self, alert: dict[str, object], tenant: str | None) -> None:
        """Log and deliver in the background."""
        task = asyncio.get_running_loop().create_task(self.send(alert, tenant))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send(self, alert: dict[str, object], tenant: str | None) -> bool:
        """Log, then POST to the tenant's webhook (if any) with retries; False if every attempt failed."""
        log.warning("alert", extra={"fields": {"msg": "alert", "alert": alert}})
        url = self.webhooks.get(tenant or "")
        if not url or self.http is None:
            return True
        return await self._deliver(url, alert)

    def budget(self, crossings: list[Crossing]) -> None:
        if self.shared:
            return  # the feed hands each crossing to exactly one replica
        for crossing in crossings:
            self.raise_alert(budget_alert(crossing), crossing.scope.tenant)

    async def _deliver(self, url: str, alert: dict[str, object]) -> bool:
        assert self.http is not None
        body = orjson.dumps(alert)
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            if delay:
                await asyncio.sleep(delay)
            try:
                async with self.http.post(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json"},
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
        await asyncio.sleep(poll)


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
