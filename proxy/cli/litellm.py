"""``efflux-gateway import litellm FILE [--keys KEYS.json]``: a LiteLLM proxy config, translated.

Prints a gateway config (YAML) on stdout and, on stderr, one line per thing it could not carry over. What
maps (docs/migrating.md has the table):

    model_list[].model_name                      -> a route under models:
    model_list[].litellm_params.model            -> a target: the prefix picks the plugin, the rest the model
    litellm_params.api_base / api_key            -> a provider (one per plugin, base URL and key)
    litellm_params.weight / rpm                  -> the target's weight
    litellm_params.input/output_cost_per_token   -> pricing.models (USD per 1M tokens)
    router_settings.routing_strategy             -> each route's strategy
    router_settings.fallbacks (or litellm_...)   -> the fallback routes' targets, at a lower priority
    litellm_settings.request_timeout             -> each provider's timeouts.total
    general_settings.master_key                  -> server.admin_token (as ${VAR}, never the value)
    litellm_settings.max_budget/budget_duration  -> the default tenant's budget
    --keys: LiteLLM's /key/list (full objects)   -> keys: models, limits, budget, tenant (from team_id)

Secrets never reach the output: ``os.environ/VAR`` becomes ``${VAR}``, and a literal key becomes a
``${VAR}`` to fill in (named on stderr). LiteLLM stores its virtual keys hashed, so imported keys get new
secrets from the environment (``${KEY_<NAME>}``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import yaml

from proxy.config import ConfigError, parse_yaml

MAX_BYTES = 4 * 1024 * 1024
# LiteLLM's provider prefix -> our plugin. Any other prefix with an api_base is an OpenAI-compatible server.
PLUGINS = {"openai": "openai", "anthropic": "anthropic", "openrouter": "openrouter", "aihubmix": "aihubmix"}
COMPATIBLE = {"hosted_vllm", "vllm", "ollama", "ollama_chat", "lm_studio", "openai_like", "custom_openai"}
STRATEGIES = {
    "simple-shuffle": "weighted",
    "least-busy": "least_busy",
    "latency-based-routing": "lowest_latency",
}
PERIODS = {"1d": "daily", "24h": "daily", "7d": "weekly", "1w": "weekly", "30d": "monthly", "1mo": "monthly"}


@dataclass
class Translation:
    config: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _env_name(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_") or "KEY"


def _secret(value: object, fallback_var: str, what: str, notes: list[str]) -> str | None:
    """``os.environ/VAR`` -> ``${VAR}``; a literal -> ``${fallback_var}`` and a note (never the value)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.startswith("os.environ/"):
        return "${" + value.removeprefix("os.environ/") + "}"
    notes.append(f"{what}: a literal secret was not copied; set {fallback_var} in .env")
    return "${" + fallback_var + "}"


def _plugin_and_model(model: str, api_base: object) -> tuple[str | None, str]:
    prefix, _, rest = model.partition("/")
    if rest and prefix in PLUGINS:
        return PLUGINS[prefix], rest
    if rest and prefix in COMPATIBLE and api_base:
        return "openai_compatible", rest
    if rest:
        return None, model  # azure, bedrock, vertex_ai ...: another wire format
    if not rest:  # LiteLLM infers the provider from well-known names
        if re.match(r"(gpt-|o[134]\b|o[134]-|chatgpt|text-embedding|dall-e|whisper|tts-)", model):
            return ("openai_compatible" if api_base else "openai"), model
        if model.startswith("claude"):
            return "anthropic", model
        if api_base:
            return "openai_compatible", model
    return None, model


def _per_million(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return round(float(value) * 1_000_000, 6)
    return None


def translate(data: object, keys: object = None) -> Translation:
    out = Translation()
    notes = out.notes
    if not isinstance(data, dict):
        raise ConfigError("the LiteLLM config must be a mapping (model_list, router_settings, ...)")
    model_list = data.get("model_list") or []
    if not isinstance(model_list, list):
        raise ConfigError("model_list: must be a list")
    router = data.get("router_settings") or {}
    settings = data.get("litellm_settings") or {}
    general = data.get("general_settings") or {}
    router = router if isinstance(router, dict) else {}
    settings = settings if isinstance(settings, dict) else {}
    general = general if isinstance(general, dict) else {}

    providers: dict[str, dict[str, object]] = {}
    identity: dict[tuple[str, object, object], str] = {}
    routes: dict[str, list[dict[str, object]]] = {}
    prices: dict[str, dict[str, float]] = {}
    timeout = settings.get("request_timeout") or router.get("timeout")

    for i, entry in enumerate(model_list):
        where = f"model_list[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
            notes.append(f"{where}: no model_name; skipped")
            continue
        params = entry.get("litellm_params") or {}
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            notes.append(f"{where}: no litellm_params.model; skipped")
            continue
        api_base, api_key = params.get("api_base"), params.get("api_key")
        plugin, upstream = _plugin_and_model(params["model"], api_base)
        if plugin is None:
            notes.append(f"{where}: {params['model']!r}: no plugin here for this provider; skipped")
            continue
        ident = (plugin, api_base, api_key)
        name = identity.get(ident)
        if name is None:
            name = _provider_name(plugin, api_base, providers)
            identity[ident] = name
            provider: dict[str, object] = {"plugin": plugin}
            if api_base:
                provider["base_url"] = str(api_base)
            key = _secret(api_key, f"{_env_name(name)}_API_KEY", f"{where}.litellm_params.api_key", notes)
            if key is None and plugin != "openai_compatible":
                key = "${" + f"{_env_name(plugin)}_API_KEY" + "}"
            if key is not None:  # like the example config: a provider without its key is not used
                key = key.removesuffix("}") + ":-}"
            if key is not None:
                provider["api_key"] = key
            if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
                provider["timeouts"] = {"total": float(timeout)}
            providers[name] = provider
        target: dict[str, object] = {"provider": name, "model": upstream}
        weight = params.get("weight", params.get("rpm"))
        if isinstance(weight, int | float) and not isinstance(weight, bool) and weight > 0:
            target["weight"] = float(weight)
        routes.setdefault(entry["model_name"], []).append(target)
        price = {
            k: v
            for k, v in (
                ("input", _per_million(params.get("input_cost_per_token"))),
                ("output", _per_million(params.get("output_cost_per_token"))),
            )
            if v is not None
        }
        if "input" in price:
            prices[upstream] = price

    strategy = STRATEGIES.get(str(router.get("routing_strategy", "simple-shuffle")))
    if strategy is None:
        notes.append(
            f"router_settings.routing_strategy: {router.get('routing_strategy')!r} not mapped (weighted)"
        )
    models: dict[str, object] = {}
    fallbacks = _fallbacks(router.get("fallbacks") or settings.get("fallbacks"), notes)
    for route_name, targets in routes.items():
        chain = [route_name, *fallbacks.get(route_name, [])]
        if len(chain) > 1:
            all_targets = [
                {**t, "priority": level} for level, name in enumerate(chain) for t in routes.get(name, [])
            ]
            missing = [name for name in chain[1:] if name not in routes]
            for name in missing:
                notes.append(f"fallbacks: {route_name} -> {name}: no such model_name; left out")
        else:
            all_targets = targets
        route: dict[str, object] = {"targets": all_targets}
        if strategy and strategy != "weighted" and len(targets) > 1:
            route["strategy"] = strategy
        models[route_name] = route
    unpriced = sorted({str(t["model"]) for r in routes.values() for t in r} - set(prices))
    if unpriced:
        notes.append(
            "no price for " + ", ".join(unpriced) + ": add them to pricing.models (USD per 1M tokens) "
            "or use a price file (pricing.file, e.g. config/pricing.yaml); unpriced models are refused"
        )

    config = out.config
    server: dict[str, object] = {"host": "127.0.0.1", "port": 8080}
    master = _secret(general.get("master_key"), "EFFLUX_ADMIN_TOKEN", "general_settings.master_key", notes)
    server["admin_token"] = master or "${EFFLUX_ADMIN_TOKEN:-}"
    config["server"] = server
    if general.get("database_url"):
        notes.append("general_settings.database_url: LiteLLM's spend history stays in its database")
    config["providers"] = providers
    config["models"] = models
    if prices:
        config["pricing"] = {"models": prices}
    budget = _budget(settings.get("max_budget"), settings.get("budget_duration"), "litellm_settings", notes)
    if budget:
        config["tenants"] = {"default": {"budget": budget}}
        notes.append(
            "litellm_settings.max_budget: the proxy-wide budget became the budget of tenant 'default'"
        )
    if keys is not None:
        config["keys"] = _keys(keys, notes)
    return out


def _provider_name(plugin: str, api_base: object, taken: dict[str, dict[str, object]]) -> str:
    """The plugin's name, or for a server of one's own its host's first label (``http://vllm:8000`` ->
    ``vllm``); a number is added when taken."""
    base = plugin
    if plugin == "openai_compatible" and isinstance(api_base, str):
        host = re.sub(r"^[a-z]+://", "", api_base).split("/")[0].split(":")[0].split(".")[0]
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", host) or plugin
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _fallbacks(value: object, notes: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if value is None:
        return found
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            notes.append(f"fallbacks: {item!r} not understood; skipped")
            continue
        for name, chain in item.items():
            if isinstance(chain, list):
                found[str(name)] = [str(c) for c in chain]
    return found


def _budget(usd: object, duration: object, where: str, notes: list[str]) -> dict[str, object] | None:
    if not isinstance(usd, int | float) or isinstance(usd, bool) or usd < 0:
        return None
    if duration is None:
        return {"usd": float(usd), "period": "total"}
    period = PERIODS.get(str(duration))
    if period is None:
        notes.append(f"{where}: budget_duration {duration!r} has no calendar period here; monthly used")
        period = "monthly"
    return {"usd": float(usd), "period": period}


def _keys(data: object, notes: list[str]) -> list[dict[str, object]]:
    """Keys from LiteLLM's ``/key/list?return_full_object=true`` (a list, or ``{"keys": [...]}``)."""
    items = data.get("keys") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigError('--keys: expected a JSON list of keys, or {"keys": [...]}')
    out: list[dict[str, object]] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        alias = item.get("key_alias") or item.get("key_name") or f"key-{i + 1}"
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(alias)).strip("-") or f"key-{i + 1}"
        while name in names:
            name += "-2"
        names.add(name)
        key: dict[str, object] = {"name": name, "key": "${KEY_" + _env_name(name) + "}"}
        if item.get("team_id"):
            key["tenant"] = str(item["team_id"])
        models = item.get("models")
        if isinstance(models, list) and models and "all-proxy-models" not in models:
            key["models"] = [str(m) for m in models]
        limits = {
            k: int(v)
            for k, v in (("rpm", item.get("rpm_limit")), ("tpm", item.get("tpm_limit")))
            if isinstance(v, int) and not isinstance(v, bool) and v > 0
        }
        if limits:
            key["limits"] = limits
        budget = _budget(item.get("max_budget"), item.get("budget_duration"), f"keys[{i}] ({name})", notes)
        if budget:
            key["budget"] = budget
        out.append(key)
    if out:
        notes.append(
            f"keys: LiteLLM stores keys hashed, so the imported keys ({len(out)}) need new secrets: set "
            "KEY_<NAME> for each in .env (e.g. egw- and 32 random characters) and hand them out"
        )
    return out


def _read(path: str, what: str) -> str:
    try:
        with Path(path).open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def import_litellm(path: str, keys_path: str | None) -> int:
    try:
        data = parse_yaml(_read(path, "the LiteLLM config"), path)
        keys: object = None
        if keys_path:
            try:
                keys = orjson.loads(_read(keys_path, "the keys"))
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{keys_path}: not JSON ({exc})") from None
        result = translate(data, keys)
    except ConfigError as exc:
        print(f"import litellm: {exc}", file=sys.stderr)
        return 2
    print(f"# Translated from {Path(path).name} by `efflux-gateway import litellm`: review before use.")
    print("# Secrets are ${VAR}s: put them in .env beside this file. Reference: docs/configuration.md")
    sys.stdout.write(yaml.safe_dump(result.config, sort_keys=False, allow_unicode=True, width=110))
    for note in result.notes:
        print(f"import litellm: {note}", file=sys.stderr)
    return 0
