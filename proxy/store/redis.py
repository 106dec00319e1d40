"""The Redis store: limits, budgets, alerts and the ledger shared by every replica and worker.

Same contract as :mod:`.memory` (both pass ``tests/store/test_contract.py``). Admission and settlement are one
Lua script each (``admit.lua``, ``settle.lua`` beside this module), so a check and its charge can never be
split by another replica, and both are idempotent by request id. What those scripts are sent and what
their replies mean is :mod:`.redis_scripts`; this module does the I/O (reading the ledger:
:mod:`.redis_ledger`).

Key layout (``egw`` is the prefix; ``{T}`` the tenant, escaped and hash-tagged, so every key one request
touches lives in one Redis Cluster slot and each script is legal on Cluster; ``<s>`` is ``kind:name``):

=============================  ======  =======================================  ==========================
key                            type    holds                                    TTL
=============================  ======  =======================================  ==========================
``egw:{T}:req:<request id>``   hash    admission decision, reserved periods,    ``idempotency_ttl`` (1 d):
                                       ``s`` once settled                       the replay window
``egw:{T}:win:<s>``            zset    request id -> admit time (RPM log)       window + 1 s
``egw:{T}:tok:<s>``            hash    ``r:<id>`` -> tokens, ``sum`` (TPM)      window + 1 s
``egw:{T}:bud:<s>:<period>``   hash    ``spent``, ``reserved``,                 period end + 7 d
                                       ``r:<id>`` -> reserved cost
``egw:{T}:exp:<s>:<period>``   zset    request id -> reservation deadline       period end + 7 d
``egw:{T}:alr:<s>:<period>``   hash    threshold -> 1 once its alert was sent   period end + 7 d
``egw:{T}:alerts``             stream  the alert feed: one entry per crossing,  ``FEED_TTL`` (40 d) after
                                       consumer group ``notifier``,             its last crossing,
                                       ``MAXLEN ~ 1000``                        refreshed by each
``egw:{T}:ledger``             stream  usage records, ``MAXLEN ~ max_records``  none: it is the ledger,
                                       (store.ledger_stream_records); consumer  bounded by length
                                       group ``postgres`` with ledger: postgres
``egw:tenants``                set     tenants that have a ledger stream        none: one member per
                                                                                tenant, tiny
``egw:doc:<kind>``             hash    ``v`` = version, ``d:<id>`` -> document  none: shared config state
``egw:lock:<name>``            string  the holder                               the lock's ``ttl``
=============================  ======  =======================================  ==========================

Keys of the ``total`` period have no TTL: a lifetime budget has no end, and forgetting it would reopen it.
Every other TTL is relative to the caller's clock at the time of the write (``Admission.now``, or
``started_at`` at settlement), so replicas must keep their clocks in sync (NTP), as for any sliding window.

Reservations carry a deadline (``reservation_ttl``): if a replica dies between admission and settlement, a
later admission in that scope releases the stale reservation instead of holding budget for the whole
period. A settlement after the deadline still charges the actual cost; it releases nothing twice.

Alert feed: the settlement script appends each crossing to the tenant's feed; every replica reads the
feeds of all tenants (``egw:tenants``) through the one consumer group, so each crossing goes to one
replica, which acknowledges it once delivered (``proxy.metering.alerts.follow``). An entry left unacknowledged
for ``RECLAIM_IDLE`` (its reader died) is taken over by another reader.

The ledger is one stream per tenant, written by the settlement script itself (a global stream would live in
another slot, so Cluster would refuse it in the same script). Cross-tenant reads list the tenants from
``egw:tenants``, which a replica adds the tenant to *before* its first settlement (and again every minute,
in case Redis lost it), so a stream with records is never missing from the set.

Every Redis error and timeout surfaces as :class:`StoreUnavailable`, each verb bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from proxy.store.base import (
    Admission,
    AlertFeed,
    Crossing,
    Decision,
    FedAlert,
    Scope,
    Settlement,
    Spend,
    StoreUnavailable,
    Verdict,
)
from proxy.store.pipeline import PipelinedConnection
from proxy.store.records import RecordPage, RecordQuery
from proxy.store.redis_ledger import LedgerGroup, read_ledger
from proxy.store.redis_scripts import (
    FEED_GROUP,
    admit_call,
    crossings,
    decision,
    escape,
    fed_alerts,
    ms,
    scope_part,
    settle_call,
    tenant_base,
    tenant_of,
)

T = TypeVar("T")

TENANT_REFRESH = 60.0  # seconds between re-adding a known tenant to the tenant set
FEED_BATCH = 100  # entries one read takes from one tenant's feed
FEED_TIMEOUT = 2.0  # a background read of every feed may take longer than a request's verbs
RECLAIM_IDLE = 60.0  # longer than a delivery with all its retries (proxy.metering.alerts)
_HERE = Path(__file__).parent


class RedisStore:
    """A :class:`~proxy.store.base.Store` on Redis (``cluster=True``: Redis Cluster, any node as ``url``).

    No I/O happens in the constructor; connections open on first use. ``connect()`` checks reachability.
    """

    # A settlement is one script call: cancelled while it waits, the script may or may not have run.
    settle_is_shielded = False

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.1,
        cluster: bool = False,
        prefix: str = "egw",
        max_records: int = 1_000_000,
        reservation_ttl: float = 3600.0,
        idempotency_ttl: float = 86400.0,
        max_connections: int = 1000,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the store prefix must not contain braces (they would move the hash tag)")
        self._timeout = timeout
        self._cluster = cluster
        self._prefix = prefix
        self._max_records = max_records
        self._reservation_ttl = reservation_ttl
        self._record_ms = ms(idempotency_ttl)
        # The store answers within ``timeout`` or gives up: a retry would only push the answer past it, and
        # the caller's outage policy is the retry.
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
            "max_connections": max_connections,
        }
        self._client: Redis | RedisCluster = (
            RedisCluster.from_url(url, **options) if cluster else Redis.from_url(url, **options)
        )
        self._admit_script = self._client.register_script((_HERE / "admit.lua").read_text())
        self._settle_script = self._client.register_script((_HERE / "settle.lua").read_text())
        self._docs_script = self._client.register_script((_HERE / "docs.lua").read_text())
        self._lock_script = self._client.register_script((_HERE / "lock.lua").read_text())
        # The per-request scripts go over one pipelined connection when Redis is a single plain node
        # (proxy.store.pipeline); Cluster and TLS stay on redis-py.
        self._pipe = (
            PipelinedConnection(url, timeout) if not cluster and PipelinedConnection.supports(url) else None
        )
        self._tenants_seen: dict[str, float] = {}

    @property
    def prefix(self) -> str:
        return self._prefix

    # -- the Store verbs --------------------------------------------------------------------------------

    async def admit(self, admission: Admission) -> Decision:
        scopes = admission.scopes
        if not scopes:
            return Decision(Verdict.ADMITTED)
        if admission.tokens < 0 or admission.cost_micro_usd < 0:
            raise ValueError("admission tokens and cost must not be negative")
        base = self._base(tenant_of(scopes, scopes[0].tenant))
        keys, args = admit_call(base, admission, self._reservation_ttl, self._record_ms)
        reply = await self._run(self._eval(self._admit_script, keys, args))
        return decision(reply, admission)

    async def settle(self, settlement: Settlement) -> list[Crossing]:
        keys, args = self._settle_call(settlement)
        reply = await self._run(self._settle_with_tenant(settlement.record.tenant, keys, args))
        return crossings(reply, settlement)

    async def records(self, query: RecordQuery) -> RecordPage:
        """Records in settlement order (across tenants: by Redis's settle time, then tenant name).

        One call reads at most ``SCAN_BUDGET`` entries: a page may then hold fewer than ``limit`` records
        and still carry a ``next_cursor``. ``next_cursor`` is None once nothing is left to read.
        """
        if query.tenant is not None:
            tenants = [query.tenant]
        else:
            members = await self._run(self._client.smembers(f"{self._prefix}:tenants"))
            tenants = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        streams = {tenant: f"{self._base(tenant)}:ledger" for tenant in tenants}
        return await read_ledger(self._client, self._run, streams, query)

    async def spend(self, scope: Scope, now: float) -> Spend:
        period = scope.period.window(now)[0]
        key = f"{self._base(scope.tenant)}:bud:{scope_part(scope)}:{period}"
        spent, reserved = await self._run(self._client.hmget(key, ["spent", "reserved"]))
        return Spend(int(spent or 0), int(reserved or 0), period)

    # -- documents and locks (one key each, so Cluster-legal without a hash tag) -------------------------

    async def get_doc(self, kind: str, id: str) -> bytes | None:
        value = await self._run(self._client.hget(self._doc_key(kind), f"d:{id}"))
        return value.encode() if isinstance(value, str) else value  # str only with decode_responses

    async def put_doc(self, kind: str, id: str, value: bytes) -> int:
        return int(await self._run(self._docs_script([self._doc_key(kind)], ["put", id, value])))

    async def delete_doc(self, kind: str, id: str) -> bool:
        return bool(await self._run(self._docs_script([self._doc_key(kind)], ["delete", id])))

    async def list_docs(self, kind: str) -> dict[str, bytes]:
        fields: dict[Any, Any] = await self._run(self._client.hgetall(self._doc_key(kind)))
        return {k.decode()[2:]: v for k, v in fields.items() if k.startswith(b"d:")}

    async def doc_version(self, kind: str) -> int:
        return int(await self._run(self._client.hget(self._doc_key(kind), "v")) or 0)

    async def try_lock(self, name: str, owner: str, ttl: float) -> bool:
        key = f"{self._prefix}:lock:{escape(name)}"
        return bool(await self._run(self._lock_script([key], [owner, ms(ttl)])))

    # -- kept responses: one key each, expiring in Redis ------------------------------------------------

    async def put_response(self, id: str, value: bytes, ttl: float) -> None:
        await self._run(self._client.set(self._response_key(id), value, px=int(ms(ttl))))

    async def get_response(self, id: str) -> bytes | None:
        value = await self._run(self._client.get(self._response_key(id)))
        return value.encode() if isinstance(value, str) else value

    async def delete_response(self, id: str) -> bool:
        return bool(await self._run(self._client.delete(self._response_key(id))))

    def _response_key(self, id: str) -> str:
        return f"{self._prefix}:resp:{escape(id)}"

    # -- the alert feed (proxy.store.base.AlertFeed) ----------------------------------------------------

    @property
    def alert_feed(self) -> AlertFeed | None:
        return self

    def background(self) -> dict[str, Coroutine[Any, Any, None]]:
        return {}

    async def read_alerts(self, consumer: str, *, reclaim: bool = False) -> list[FedAlert]:
        members = await self._run(self._client.smembers(f"{self._prefix}:tenants"), FEED_TIMEOUT)
        tenants = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        found: list[FedAlert] = []
        for first in range(0, len(tenants), 500):
            batch = tenants[first : first + 500]
            pipe = self._client.pipeline(transaction=False)
            for tenant in batch:
                key = f"{self._base(tenant)}:alerts"
                pipe.xreadgroup(FEED_GROUP, consumer, {key: ">"}, count=FEED_BATCH)
                if reclaim:
                    idle = int(RECLAIM_IDLE * 1000)
                    pipe.xautoclaim(key, FEED_GROUP, consumer, idle, "0-0", count=FEED_BATCH)
            replies = await self._run(pipe.execute(raise_on_error=False), FEED_TIMEOUT)
            step = 2 if reclaim else 1
            for index, tenant in enumerate(batch):
                for reply in replies[index * step : index * step + step]:
                    found += fed_alerts(tenant, reply)
        return found

    async def ack_alert(self, alert: FedAlert) -> None:
        key = f"{self._base(alert.crossing.scope.tenant)}:alerts"
        await self._run(self._client.xack(key, FEED_GROUP, alert.id), FEED_TIMEOUT)

    def ledger_group(self) -> LedgerGroup:
        """The tenants' ledger streams read through a consumer group (the PostgreSQL ledger's writer)."""
        return LedgerGroup(
            self._client,
            lambda op: self._run(op, FEED_TIMEOUT),
            f"{self._prefix}:tenants",
            lambda tenant: f"{self._base(tenant)}:ledger",
        )

    async def connect(self) -> None:
        """Optional: fail fast at startup. Raises :class:`StoreUnavailable`."""
        await self.ping()

    async def ping(self) -> None:
        await self._run(self._client.ping())

    async def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
        try:
            await self._client.aclose()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc!r}") from exc

    # -- internals -------------------------------------------------------------------------------------

    async def _run(self, op: Awaitable[T], bound: float | None = None) -> T:
        """The one boundary where Redis failures become :class:`StoreUnavailable`, within ``timeout``.

        The socket timeouts bound each read; this deadline bounds the whole verb (a connect plus a read,
        or the cluster client's rediscovery), which is what a waiting request feels.
        """
        try:
            async with asyncio.timeout(bound or self._timeout):
                if self._cluster:
                    # Discover the cluster before the command: commands racing a first (or, after an
                    # error, a renewed) discovery get their connections closed under them (redis-py 8.1).
                    await self._client.initialize()
                return await op
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc!r}") from exc

    async def _settle_with_tenant(self, tenant: str, keys: list[str], args: list[str | bytes]) -> Any:
        # Registered before the stream is written, so a cross-tenant read never misses a stream with
        # records; re-added now and then in case Redis lost the set (a restart without persistence).
        seen = self._tenants_seen.get(tenant)
        if seen is None or time.monotonic() - seen > TENANT_REFRESH:
            await self._client.sadd(f"{self._prefix}:tenants", tenant)
            self._tenants_seen[tenant] = time.monotonic()
        return await self._eval(self._settle_script, keys, args)

    async def _eval(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        if self._pipe is not None:
            return await self._pipe.evalsha(script.script, script.sha, keys, args)
        return await script(keys, args)

    def _settle_call(self, settlement: Settlement) -> tuple[list[str], list[str | bytes]]:
        """Keys and arguments of the settlement script (tests replay them to lose a reply on purpose)."""
        record = settlement.record
        base = self._base(tenant_of(settlement.scopes, record.tenant))
        return settle_call(base, settlement, self._max_records, self._record_ms)

    def _doc_key(self, kind: str) -> str:
        return f"{self._prefix}:doc:{escape(kind)}"

    def _base(self, tenant: str) -> str:
        return tenant_base(self._prefix, tenant)
