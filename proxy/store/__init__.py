"""Shared state behind one interface (see :mod:`proxy.store.base`)."""

from proxy.store.base import Store, StoreUnavailable

__all__ = ["Store", "StoreUnavailable"]
