"""The deployment files (Dockerfile, docker-compose.yml, deploy/k8s/) read as the gateway reads them: each
embedded config validates, the probes hit routes the app really has, the ports agree with the config, and
the image's config refuses to serve unsafely. Nothing is built or started (no Docker, no cluster)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.app import create_app
from proxy.cli.exposure import DEMO_KEY, exposure_problems, is_loopback
from proxy.config import Settings, load_settings, parse_settings
from proxy.config.loading import interpolate, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# What an operator fills into the Secrets: any non-empty values.
FILLED = {
    "EFFLUX_ADMIN_TOKEN": "a" * 40,
    "EFFLUX_KEY_SECRET": "k" * 40,
    "EFFLUX_VIRTUAL_KEY": "egw-" + "v" * 40,
    "REDIS_URL": "redis://redis:6379/0",
    "OPENAI_API_KEY": "sk-test",
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def all_k8s() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in documents(path)]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in all_k8s() if doc["kind"] == kind]


def config_of(configmap: dict[str, Any], env: dict[str, str]) -> Settings:
    data = interpolate(parse_yaml(configmap["data"]["gateway.yaml"], "<configmap>"), env)
    return parse_settings(data, base_dir=str(ROOT / "config"))


def routes(settings: Settings) -> set[str]:
    app = create_app(settings)
    return {resource.canonical for resource in app.router.resources()}


def pod_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def gateway_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in pod_containers(deployment) if str(c["image"]).startswith("efflux-gateway")]


def mounted_configmap(deployment: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap mounted at the image's config path (/app/config/gateway.yaml)."""
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/app/config/gateway.yaml")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    name = volume["configMap"]["name"]
    return next(doc for doc in by_kind("ConfigMap") if doc["metadata"]["name"] == name)


def probe_target(probe: dict[str, Any], container: dict[str, Any]) -> tuple[int, str]:
    """(port, path) a probe requests: an httpGet (a named port resolved), or an exec that fetches a URL."""
    if "httpGet" in probe:
        port = probe["httpGet"]["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
        return int(port), probe["httpGet"]["path"]
    command = " ".join(probe["exec"]["command"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[A-Za-z/]*)", command)
    assert match, command
    return int(match.group(1)), match.group(2)


def test_the_manifests_are_the_kinds_the_guide_names() -> None:
    kinds = sorted(doc["kind"] for doc in all_k8s())
    assert kinds == sorted(
        ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "Secret", "Secret", "Service"]
    )


@pytest.mark.parametrize("deployment", by_kind("Deployment"), ids=lambda d: d["metadata"]["name"])
def test_probes_hit_real_routes_on_the_configured_port(deployment: dict[str, Any]) -> None:
    for container in gateway_containers(deployment):
        settings = config_of(mounted_configmap(deployment, container), FILLED)
        known = routes(settings)
        kinds = {"livenessProbe", "readinessProbe"}
        assert kinds <= set(container), f"{container['name']} lacks a probe"
        for kind in (*kinds, "startupProbe"):
            if kind not in container:
                continue
            port, path = probe_target(container[kind], container)
            assert port == settings.server.port, (kind, port)
            assert path in known, (kind, path)
        assert container["readinessProbe"] != container["livenessProbe"]  # readiness: /readyz, not alive
        for port in container.get("ports", []):
            assert port["containerPort"] == settings.server.port


def test_the_shared_deployment_listens_on_the_pod_network_safely() -> None:
    deployment = next(d for d in by_kind("Deployment") if d["metadata"]["name"] == "efflux-gateway")
    (container,) = gateway_containers(deployment)
    configmap = mounted_configmap(deployment, container)
    settings = config_of(configmap, FILLED)
    assert not is_loopback(settings.server.host)
    assert exposure_problems(settings, settings.server.host) == []
    # The Secret as shipped (empty): the gateway refuses to start and says why.
    (secret,) = [s for s in by_kind("Secret") if s["metadata"]["name"] == "efflux-gateway"]
    shipped = {k: v for k, v in secret["stringData"].items()}
    assert any("admin_token" in p for p in exposure_problems(config_of(configmap, shipped), "0.0.0.0"))
    assert {ref["secretRef"]["name"] for ref in container["envFrom"]} == {"efflux-gateway"}
    # the drain fits in the grace period
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert settings.server.shutdown_delay + settings.server.drain_timeout < grace
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_sidecar_stays_on_the_pods_loopback() -> None:
    deployment = next(d for d in by_kind("Deployment") if d["metadata"]["name"] != "efflux-gateway")
    (gateway,) = gateway_containers(deployment)
    assert gateway.get("restartPolicy") == "Always"  # a native sidecar
    settings = config_of(mounted_configmap(deployment, gateway), FILLED)
    assert is_loopback(settings.server.host)
    app = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c is not gateway)
    env = {e["name"]: e for e in app["env"]}
    assert env["OPENAI_BASE_URL"]["value"] == f"http://127.0.0.1:{settings.server.port}/v1"
    # the app's API key is the gateway's virtual key, not a provider key
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "EFFLUX_VIRTUAL_KEY"


def test_the_service_targets_the_gateway_port() -> None:
    (service,) = by_kind("Service")
    deployment = next(d for d in by_kind("Deployment") if d["metadata"]["name"] == "efflux-gateway")
    (container,) = gateway_containers(deployment)
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in named


# --- the image and compose -----------------------------------------------------------------------------


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_the_image_runs_as_a_numeric_non_root_user_on_the_safe_config() -> None:
    text = dockerfile()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    copied = re.findall(r"^COPY\s+(?!--from)(\S+)\s+(\S+)", text, re.M)
    assert ("config/gateway.container.yaml", "config/gateway.yaml") in copied
    assert not any("gateway.example.yaml" in src for src, _ in copied)  # no demo key, no demo route
    assert "EFFLUX_CONFIG=/app/config/gateway.yaml" in text
    assert "[test]" not in text


def test_the_image_config_is_safe_and_refuses_to_start_without_an_admin_token() -> None:
    path = ROOT / "config" / "gateway.container.yaml"
    bare = load_settings(path, env={})
    assert not is_loopback(bare.server.host)
    assert [p.split(":")[0] for p in exposure_problems(bare, bare.server.host)] == ["server.admin_token"]
    assert bare.keys == [] and DEMO_KEY not in path.read_text()
    assert all(target.provider != "local" for route in bare.models.values() for target in route.targets)
    filled = load_settings(path, env={"EFFLUX_ADMIN_TOKEN": "a" * 40})
    assert exposure_problems(filled, filled.server.host) == []
    with_redis = load_settings(path, env={"EFFLUX_STORE": "redis", "REDIS_URL": "redis://redis:6379/0"})
    assert with_redis.store.backend == "redis"


def test_compose_wires_the_gateway_to_redis_and_postgres() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"gateway", "redis", "postgres"}
    gateway = services["gateway"]
    env = gateway["environment"]
    assert env["EFFLUX_STORE"] == "redis" and env["REDIS_URL"].startswith("redis://redis:")
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["EFFLUX_ADMIN_TOKEN"].startswith("${EFFLUX_ADMIN_TOKEN:?")  # compose refuses without it
    assert set(gateway["depends_on"]) == {"redis", "postgres"}
    published = [str(p) for p in gateway["ports"]]
    assert published == ["127.0.0.1:8080:8080"]
    settings = load_settings(
        ROOT / "config" / "gateway.container.yaml",
        env={k: v for k, v in env.items() if "${" not in str(v)} | {"EFFLUX_ADMIN_TOKEN": "a" * 40},
    )
    assert settings.server.port == int(published[0].rsplit(":", 1)[1])
    assert settings.store.backend == "redis"
