"""Alerts: a log line and, where configured, a webhook POST (JSON, retried with backoff).

The store decides *whether* an alert fires (exactly once per scope, period and threshold, across
replicas); this module only delivers it. Deliveries run in background tasks so a slow webhook never
delays a request; they are awaited on shutdown. The body never carries a secret.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson

from proxy.store.base import Crossing

log = logging.getLogger("efflux.alerts")

RETRY_DELAYS = (0.5, 2.0, 8.0)


def budget_alert(crossing: Crossing) -> dict[str, object]:
    return {
        "type": "budget",
        "scope": crossing.scope.kind,
        "name": crossing.scope.name,
        "tenant": crossing.scope.tenant,
        "threshold": crossing.threshold,
        "period": crossing.period,
        "spent_micro_usd": crossing.spent_micro_usd,
        "budget_micro_usd": crossing.budget_micro_usd,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


class Alerter:
    def __init__(self, http: aiohttp.ClientSession | None, webhooks: dict[str, str]) -> None:
        self.http = http
        self.webhooks = webhooks  # tenant -> URL
        self.tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def raise_alert(self, alert: dict[str, object], tenant: str | None) -> None:
        log.warning("alert", extra={"fields": {"msg": "alert", "alert": alert}})
        url = self.webhooks.get(tenant or "")
        if url and self.http is not None:
            task = asyncio.get_running_loop().create_task(self._deliver(url, alert))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def budget(self, crossings: list[Crossing]) -> None:
        for crossing in crossings:
            self.raise_alert(budget_alert(crossing), crossing.scope.tenant)

    async def _deliver(self, url: str, alert: dict[str, object]) -> None:
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
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return
                    status = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            log.warning(
                "alert webhook failed",
                extra={"fields": {"msg": "alert webhook failed", "attempt": attempt + 1, "status": status}},
            )

    async def close(self) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=10)
