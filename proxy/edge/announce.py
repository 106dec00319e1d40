"""The lines a person reads when the gateway starts: where it listens, the dashboard, how to log in.

Printed to stderr once the listener is bound (not before: a script waiting for the line may connect at
once), as plain text beside the JSON log lines. The admin token is never printed, only its last four
characters, so that an operator with several tokens knows which one this is.
"""

from __future__ import annotations

import sys
from typing import TextIO

SHOWN_TAIL = 4  # characters of the admin token shown; a token shorter than 4x that is shown as "…" only


def browsable_host(host: str) -> str:
    """A host a browser on this machine can open: the wildcard addresses become loopback."""
    if host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def login_hint(admin_token: str | None) -> str:
    if not admin_token:
        return (
            "no admin token is configured, so the operator console and /admin are off (set "
            "server.admin_token, e.g. admin_token: ${EFFLUX_ADMIN_TOKEN}); a virtual key opens its own view"
        )
    tail = admin_token[-SHOWN_TAIL:] if len(admin_token) >= 4 * SHOWN_TAIL else ""
    return f"log in with the admin token (server.admin_token, ending in …{tail}) or a virtual key"


def announce(host: str, ports: list[int], admin_token: str | None, out: TextIO | None = None) -> None:
    stream = out or sys.stderr
    url = f"http://{browsable_host(host)}:{ports[0]}"
    where = ", ".join(f"{host or '*'}:{port}" for port in ports)
    stream.write(
        f"efflux-gateway: listening on {where}\n"
        f"efflux-gateway: dashboard {url}/ui/ : {login_hint(admin_token)}\n"
    )
    stream.flush()
