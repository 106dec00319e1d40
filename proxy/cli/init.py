"""``efflux-gateway init [DIR]``: a starter ``gateway.yaml`` and a ``.env`` with fresh secrets beside it.

The YAML holds no secret: it reads each from the environment (``${EFFLUX_ADMIN_TOKEN}``...), and
``load_settings`` takes the variables of the ``.env`` file beside the config (the process environment
wins). The ``.env`` is created readable by its owner only. Nothing is ever overwritten.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

from proxy.config.dotenv import ENV_FILE

CONFIG_FILE = "gateway.yaml"

STARTER = """\
# efflux-gateway config, written by `efflux-gateway init`. Secrets live in .env beside this file (read at
# start; a variable set in the environment wins). The full reference: docs/configuration.md.
# Validate: efflux-gateway check --config {config}

server:
  host: 127.0.0.1                   # loopback; on another address the gateway needs admin_token (it has one)
  port: 8080
  admin_token: ${{EFFLUX_ADMIN_TOKEN}}   # the admin API and the operator console (/ui/)

store:
  backend: memory                   # one process; for replicas: backend: redis, url: redis://host:6379/0

secrets:
  key_secret: ${{EFFLUX_KEY_SECRET}}     # digests of virtual keys created through the API
  master_keys: ["${{EFFLUX_MASTER_KEY}}"]  # seals provider keys pasted into the console (the vault)

providers:                          # a provider serves once its key is in the environment or .env
  openai:
    plugin: openai
    api_key: ${{OPENAI_API_KEY:-}}
  anthropic:
    plugin: anthropic
    api_key: ${{ANTHROPIC_API_KEY:-}}

models:                             # what clients may ask for, and where it goes
  gpt-4o-mini:
    targets: [{{provider: openai}}]
  claude-sonnet:
    targets: [{{provider: anthropic, model: claude-sonnet-4-5}}]

pricing:                            # USD per 1M tokens
  models:
    gpt-4o-mini: {{input: 0.15, output: 0.60, cached_input: 0.075}}
    claude-sonnet-4-5: {{input: 3.0, output: 15.0, cached_input: 0.30, cache_write: 3.75}}

keys:                               # clients send one as `Authorization: Bearer <key>`
  - name: first
    key: ${{EFFLUX_VIRTUAL_KEY}}
    models: ["*"]
    limits: {{rpm: 600}}
    budget: {{usd: 10, period: monthly}}
"""

ENV = """\
# Secrets for {config} (made by `efflux-gateway init`). Keep this file private; never commit it.
# The dashboard: log in with EFFLUX_ADMIN_TOKEN. Clients: Authorization: Bearer $EFFLUX_VIRTUAL_KEY.
EFFLUX_ADMIN_TOKEN={admin}
EFFLUX_KEY_SECRET={key_secret}
EFFLUX_MASTER_KEY={master}
EFFLUX_VIRTUAL_KEY={virtual}
# Provider keys (or set them in the environment):
# OPENAI_API_KEY=sk-...
# ANTHROPIC_API_KEY=sk-ant-...
"""


def fresh_secrets() -> dict[str, str]:
    return {
        "admin": "egw-admin-" + secrets.token_urlsafe(32),
        "key_secret": secrets.token_urlsafe(48),
        "master": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),  # as `vault genkey`
        "virtual": "egw-" + secrets.token_urlsafe(32),
    }


def _create(path: Path, text: str, mode: int) -> None:
    """Write a new file; O_EXCL: an existing one (even created since the check) is never replaced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def init_command(directory: str) -> int:
    folder = Path(directory)
    config, env = folder / CONFIG_FILE, folder / ENV_FILE
    existing = [str(path) for path in (config, env) if path.exists()]
    if existing:
        print(
            f"init: {' and '.join(existing)} already exist(s); nothing written "
            "(move it away, or give another folder: efflux-gateway init DIR)",
            file=sys.stderr,
        )
        return 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _create(env, ENV.format(config=config, **fresh_secrets()), 0o600)
        _create(config, STARTER.format(config=config), 0o644)
    except OSError as exc:
        print(f"init: cannot write into {folder}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {config} (the config) and {env} (fresh secrets, readable by you only)")
    print(f"add provider keys to {env} (OPENAI_API_KEY=..., ANTHROPIC_API_KEY=...), then:")
    print()
    print(f"    efflux-gateway serve --config {config}")
    print()
    print(f"dashboard: http://127.0.0.1:8080/ui/ (log in with EFFLUX_ADMIN_TOKEN from {env})")
    return 0
