"""The safe start: a gateway that others can reach must not run with the example's open doors.

On an address other than loopback, ``serve`` refuses to start while a YAML key still uses the built-in demo
secret (anyone who read the example config could spend the provider keys behind it) or while no admin
token is set (the admin API and the operator console would be off, yet a half-configured gateway is often
one whose operator has not looked). ``--allow-unsafe-bind`` starts anyway, for those who put their own
authentication in front.
"""

from __future__ import annotations

import ipaddress

from proxy.config import Settings

DEMO_KEY = "egw-demo-key-change-me"  # the example config's key (config/gateway.example.yaml)
OVERRIDE = "--allow-unsafe-bind"


def is_loopback(host: str) -> bool:
    """Whether only this machine can connect to ``host``. A name other than ``localhost`` counts as
    reachable: what it resolves to may change."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "" and "0.0.0.0"-like names: every interface


def exposure_problems(settings: Settings, host: str) -> list[str]:
    """What must change before listening on ``host``; empty when it is safe (or loopback)."""
    if is_loopback(host):
        return []
    problems = [
        f"keys[{i}] ({key.name}): uses the built-in demo key {DEMO_KEY!r}; set a secret of your own "
        "(the example config reads EFFLUX_DEMO_KEY) or remove the key"
        for i, key in enumerate(settings.keys)
        if key.key == DEMO_KEY
    ]
    if not settings.server.admin_token:
        problems.append(
            "server.admin_token: not set; set one (the shipped configs read EFFLUX_ADMIN_TOKEN; make "
            "one with 'efflux-gateway init' or 'openssl rand -hex 32')"
        )
    return problems
