"""Keeps the serving snapshot current: config reloads, and shared documents written by any replica.

The snapshot a request uses is the config snapshot (YAML) with *layers* on top, each built from one kind
of store document (virtual keys created through the API, tenants, provider keys, the routing overlay,
synced catalogues). A layer is a pure function ``(snapshot, docs) -> snapshot``. Every ``interval`` the
watcher reads each kind's version (one cheap store call per kind); when one moved, it re-reads that
kind's documents, rebuilds the snapshot from the base and swaps it whole. A write on any replica is thus
served by every replica within about ``interval`` (a revoked key stops working everywhere within 1 s).

Requests hold the snapshot they started with, so a swap never changes a request in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from proxy.state.snapshot import Snapshot
from proxy.store.base import Store, StoreUnavailable

log = logging.getLogger("efflux.live")

Layer = Callable[[Snapshot, dict[str, bytes]], Snapshot]


class Serving(Protocol):
    """What Live needs of the running gateway (:class:`proxy.gateway.Gateway`): the store to read the
    documents from, and the snapshot it swaps."""

    store: Store
    snapshot: Snapshot


class Live:
    def __init__(self, gateway: Serving, base: Snapshot, interval: float = 0.25) -> None:
        self.gateway = gateway
        self.base = base
        self.interval = interval
        self.layers: dict[str, Layer] = {}  # kind -> layer, applied in registration order
        self.docs: dict[str, dict[str, bytes]] = {}
        self.versions: dict[str, int] = {}
        self._store_down = False

    def add_layer(self, kind: str, layer: Layer) -> None:
        self.layers[kind] = layer

    def rebase(self, base: Snapshot) -> None:
        """A reloaded config: the same layers over the new base, swapped in at once."""
        self.base = base
        self._publish()

    async def refresh(self) -> bool:
        """Re-read the kinds whose version moved; returns whether the snapshot changed."""
        changed = False
        store = self.gateway.store
        for kind in self.layers:
            version = await store.doc_version(kind)
            if version != self.versions.get(kind):
                self.docs[kind] = await store.list_docs(kind)
                self.versions[kind] = version
                changed = True
        if changed:
            self._publish()
        return changed

    def _publish(self) -> None:
        snapshot = self.base
        for kind, layer in self.layers.items():
            snapshot = layer(snapshot, self.docs.get(kind, {}))
        self.gateway.snapshot = snapshot

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
                if self._store_down:
                    log.info("store reachable again: shared state refreshed")
                self._store_down = False
            except StoreUnavailable:
                if not self._store_down:
                    log.warning("store unreachable: serving the last known shared state")
                self._store_down = True
            except Exception:
                log.exception("refreshing shared state failed")
            await asyncio.sleep(self.interval)
