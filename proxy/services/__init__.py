"""Control-plane logic shared by the admin API, ``/me``, the dashboard and the CLI.

A service takes the running gateway (or the store and a snapshot, for the CLI) and plain values, returns
plain data, and raises the gateway's errors (:mod:`proxy.errors`); it never sees an HTTP request. The
front ends parse, call a service, answer.

    keys, tenants, provider_keys, rewrap   virtual keys, tenants, tenants' own provider keys, vault rewrap
    providers, routes, catalogue, sync     providers at run time, the routing overlay, catalogue search
    analytics, estimate, budgets, overview ledger reports, cost estimates, spend against budget, dashboard
    reload                                 hot reload of the config file
"""

from __future__ import annotations

from proxy.gateway import Gateway


async def refresh(gw: Gateway) -> None:
    """After a write: this replica serves it at once; the others follow on their next poll."""
    if gw.live is not None:
        await gw.live.refresh()
