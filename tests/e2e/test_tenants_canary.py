"""Canary sweep: every secret is a unique canary; after a run that exercises the API (provider 4xx/5xx
errors included, DEBUG logging), no canary nor any 8-character piece of one appears in the gateway's
logs, metrics, error bodies, health output or a dump of its private Redis."""

from __future__ import annotations

import base64
import os
import secrets
import urllib.request

import pytest
from e2e.test_tenants_redis import CHAT, bearer, call
from support import base_config

from proxy.testing.fake_provider import Behaviour, ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess, free_port
from proxy.testing.redis_server import RedisServer

pytestmark = pytest.mark.redis
PIECE = 8


def canary(label: str) -> str:
    return f"{label}-{secrets.token_hex(12)}"


def pieces(secret: str) -> set[bytes]:
    raw = secret.encode()
    return {raw[i : i + PIECE] for i in range(len(raw) - PIECE + 1)}


def leaks(blob: bytes, canaries: dict[str, str]) -> list[str]:
    return [name for name, secret in canaries.items() if any(p in blob for p in pieces(secret))]


def redis_dump(server: RedisServer) -> bytes:
    client = server.client()
    out = bytearray()
    try:
        for key in client.keys("*"):
            out += key
            kind = client.type(key)
            dumped = client.dump(key)
            out += dumped if isinstance(dumped, bytes) else b""
            if kind == b"string":
                out += client.get(key) or b""
            elif kind == b"hash":
                for k, v in client.hgetall(key).items():
                    out += k + v
            elif kind == b"stream":
                for _, fields in client.xrange(key):
                    for k, v in fields.items():
                        out += k + v
            elif kind == b"zset":
                out += b"".join(m for m, _ in client.zrange(key, 0, -1, withscores=True))
            elif kind == b"set":
                out += b"".join(client.smembers(key))
    finally:
        client.close()
    return bytes(out)


def test_no_secret_leaks_anywhere(private_redis: RedisServer) -> None:
    fake = ThreadedFakeProvider().start_in_thread()
    master = base64.urlsafe_b64encode(os.urandom(32)).decode()
    canaries = {
        "shared provider key": canary("sk-shared"),
        "tenant provider key": canary("sk-tenant"),
        "yaml virtual key": canary("egw-yaml"),
        "master key": master,
        "admin token": canary("admin"),
        "key secret": canary("hmac-secret"),
    }
    config = base_config(fake.url)
    config["server"]["admin_token"] = canaries["admin token"]
    config["store"] = {"backend": "redis", "url": private_redis.url, "timeout": "1s"}
    config["secrets"] = {"master_keys": [master], "key_secret": canaries["key secret"]}
    config["providers"]["local"]["api_key"] = canaries["shared provider key"]
    config["providers"]["dead"] = {
        "plugin": "openai_compatible",
        "base_url": f"http://127.0.0.1:{free_port()}/v1",
        "api_key": canaries["shared provider key"],
    }
    config["models"]["dead-model"] = {"targets": [{"provider": "dead"}]}
    config["keys"] = [{"name": "yaml", "tenant": "acme", "key": canaries["yaml virtual key"]}]
    admin = bearer(canaries["admin token"])
    bodies = bytearray()
    try:
        with GatewayProcess(config, env={"EFFLUX_LOG_LEVEL": "DEBUG"}) as gw:
            # A tenant key through the API, then a key created through the API.
            status, body = call(
                gw.url + "/admin/tenants/acme/provider-keys/local",
                "PUT",
                {"api_key": canaries["tenant provider key"], "validate": True},
                admin,
            )
            assert status == 200, body
            bodies += repr(body).encode()
            status, created = call(gw.url + "/admin/keys", "POST", {"name": "api", "tenant": "acme"}, admin)
            assert status == 201
            canaries["api virtual key"] = created["key"]
            user = bearer(created["key"])
            # Traffic: success, provider 4xx echoing the key, 5xx, a dead provider, a bad key, bad bodies.
            fake.script(
                "m",
                Behaviour.json(
                    200,
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "choices": [],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                    },
                ),
            )
            fake.script(
                "echo",
                Behaviour.json(
                    401,
                    {"error": {"message": "Incorrect API key provided: " + canaries["tenant provider key"]}},
                ),
            )
            fake.script(
                "boom",
                Behaviour.json(500, {"error": {"message": "internal " + canaries["shared provider key"]}}),
            )
            for model in ("m", "echo", "boom", "dead-model"):
                for who in (user, bearer(canaries["yaml virtual key"])):
                    status, body = call(
                        gw.url + "/v1/chat/completions", "POST", {**CHAT, "model": model}, who
                    )
                    bodies += repr(body).encode()
            for who in (bearer(canaries["yaml virtual key"][:-1]), bearer(canaries["admin token"])):
                bodies += repr(call(gw.url + "/v1/chat/completions", "POST", CHAT, who)).encode()
            for path, method, body in (
                ("/admin/keys", "POST", {"name": canaries["yaml virtual key"] + "/"}),
                ("/admin/tenants/acme/provider-keys/local/validate", "POST", None),
                ("/admin/tenants/acme/provider-keys/local", "GET", None),
                (
                    "/admin/tenants/acme/provider-keys/dead",
                    "PUT",
                    {"api_key": canaries["shared provider key"], "validate": True},
                ),
                ("/admin/usage?group_by=key", "GET", None),
                ("/admin/usage/records", "GET", None),
                ("/admin/compare?model=m", "GET", None),
                ("/admin/keys", "GET", None),
                ("/admin/tenants/acme", "GET", None),
            ):
                bodies += repr(call(gw.url + path, method, body, admin)).encode()
            for path in ("/me", "/me/usage", "/me/provider-keys", "/me/provider-keys/local"):
                bodies += repr(call(gw.url + path, headers=user)).encode()
            bodies += repr(
                call(gw.url + "/admin/keys", headers=bearer(canaries["admin token"] + "x"))
            ).encode()
            assert call(gw.url + f"/admin/keys/{created['id']}", "DELETE", headers=admin)[0] == 200
            health = repr([call(gw.url + p) for p in ("/healthz", "/readyz")]).encode()
            with urllib.request.urlopen(gw.url + "/metrics", timeout=5) as resp:
                metrics = resp.read()
            dump = redis_dump(private_redis)
            gw.stop()
            log = gw.log().encode()
        assert b'"level": "debug"' in log or b'"level":"debug"' in log  # DEBUG was really on
        found = {
            "logs": leaks(log, canaries),
            "metrics": leaks(metrics, canaries),
            "error bodies": leaks(bytes(bodies), canaries),
            "health": leaks(health, canaries),
            "redis": leaks(dump, canaries),
        }
        print(f"swept {len(log)} log bytes, {len(dump)} redis bytes, {len(bodies)} body bytes")
        if found["error bodies"]:
            print(bytes(bodies).decode(errors="replace"))
        assert found == {k: [] for k in found}
    finally:
        fake.stop_thread()
