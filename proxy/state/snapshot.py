"""A snapshot: everything one request needs from the config, built once and never changed.

A reload builds a new snapshot and swaps it in whole; a request holds the snapshot it started with until
it is metered, so a route, price or key never changes under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from proxy.config import ConfigError, Period, ProviderConfig, Settings, TenantConfig
from proxy.metering.pricing import Price, PriceTable, load_price_table, usd_to_micro
from proxy.plugin import Provider, ProviderSettings, ProviderType
from proxy.plugin.registry import PluginNotFound, load_plugin
from proxy.routing.table import Resolution, Route, RoutingTable, build_route
from proxy.store.base import Scope
from proxy.tenancy.keys import KeyRing, build_keyring, process_secret
from proxy.upstream.egress import Egress
from proxy.upstream.proxy import parse_proxy
from proxy.upstream.tls import TLSSetupError, provider_context


@dataclass(frozen=True, slots=True)
class Snapshot:
    settings: Settings
    providers: dict[str, Provider]
    routing: RoutingTable
    prices: PriceTable
    keys: KeyRing
    tenant_scopes: dict[str, Scope]
    version: int = 0
    # Layers built from store documents (proxy.state.live): routes added through the admin API, models found
    # by catalogue sync (with their prices), tenants' own provider keys, decrypted, by (tenant, provider).
    overlay: Mapping[str, Route] = field(default_factory=dict)
    synced: Mapping[str, Route] = field(default_factory=dict)
    synced_prices: Mapping[str, Price] = field(default_factory=dict)
    # Synced names a sync found removed upstream -> when they stop being routable (unix seconds).
    retiring: Mapping[str, float] = field(default_factory=dict)
    tenant_provider_keys: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # How the client reaches each YAML provider (proxy, TLS context, bounds), built with the snapshot: the
    # TLS files are read here, at load, never by a request.
    egress: Mapping[str, Egress] = field(default_factory=dict)
    # The id of each of those keys, by (tenant, provider): what breakers and cool-downs are keyed by
    # (proxy.tenancy.credentials), never the secret itself.
    tenant_credentials: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def resolve(self, model: str) -> Resolution | None:
        """Resolution order: exact YAML name, the overlay, synced models, then wildcards."""
        return self.routing.resolve(model, self.overlay, self.synced)

    def price(self, provider: str, model: str) -> Price | None:
        return self.prices.lookup(provider, model, self.synced_prices)

    def api_key(self, tenant: str, provider: str) -> str | None:
        """The tenant's own key for this provider when it has one (BYOK), else the shared key."""
        policy = self._byok(provider)
        own = self.tenant_provider_keys.get((tenant, provider)) if policy != "never" else None
        if own is not None or policy == "required":
            return own
        instance = self.providers.get(provider)
        return instance.settings.api_key if instance is not None else None

    def credential(self, tenant: str, provider: str) -> str:
        """Whose key :meth:`api_key` sends: "" for the shared key, else the id of the tenant's own key.
        Breakers and ``Retry-After`` cool-downs are kept per credential, so that a tenant's own key failing
        parks that key for that tenant only."""
        if not self.tenant_credentials:  # the usual case: nobody brought a key
            return ""
        if self._byok(provider) == "never":
            return ""
        return self.tenant_credentials.get((tenant, provider), "")

    def _byok(self, provider: str) -> str:
        config = self.settings.providers.get(provider)
        return config.byok if config is not None else "optional"

    def serving(self, provider: str, tenant: str | None = None) -> bool:
        """Whether a provider takes traffic (for this tenant): enabled, with a key if it needs one (the
        tenant's own or the shared one), and not an aggregator while aggregators are off."""
        config = self.settings.providers.get(provider)
        instance = self.providers.get(provider)
        if config is None or instance is None or not config.enabled:
            return False
        policy = config.byok
        own = tenant is not None and policy != "never" and (tenant, provider) in self.tenant_provider_keys
        if policy == "required" and not own:
            return False
        if instance.requires_key and not (own or (policy != "required" and instance.settings.api_key)):
            return False
        return self.settings.features.aggregators or instance.provider_type is not ProviderType.AGGREGATOR

    def tenant_scope(self, tenant: str) -> Scope | None:
        return self.tenant_scopes.get(tenant)


def build_snapshot(settings: Settings, *, key_secret: bytes | None = None, version: int = 0) -> Snapshot:
    """Turn validated settings into live objects; raises ConfigError naming the YAML path."""
    problems: list[str] = []
    providers: dict[str, Provider] = {}
    egress: dict[str, Egress] = {}
    for name, config in settings.providers.items():
        try:
            egress[name] = build_egress(name, config, settings)
        except ConfigError as exc:
            problems.append(str(exc))
        try:
            cls = load_plugin(config.plugin)
        except PluginNotFound as exc:
            problems.append(f"providers.{name}.plugin: {exc}")
            continue
        if not (config.base_url or cls.default_base_url):
            problems.append(f"providers.{name}.base_url: required for plugin {config.plugin!r}")
            continue
        try:
            providers[name] = provider_instance(name, config, cls)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
    for route_name, route in settings.models.items():
        for i, target in enumerate(route.targets):
            cls_of = providers.get(target.provider)
            if target.deployment and cls_of is not None and not cls_of.deployments:
                problems.append(
                    f"models.{route_name}.targets[{i}].deployment: provider {target.provider!r} "
                    f"(plugin {type(cls_of).plugin_name or 'custom'!r}) has no deployments"
                )
    prices: PriceTable | None = None
    try:
        prices = load_price_table(settings)
    except ConfigError as exc:
        problems.append(str(exc))
    if problems or prices is None:
        raise ConfigError("\n".join(problems))
    secret = key_secret or (settings.secrets.key_secret or "").encode() or process_secret()
    tenant_scopes = {name: tenant_scope(name, tenant) for name, tenant in settings.tenants.items()}
    return Snapshot(
        settings=settings,
        providers=providers,
        routing=RoutingTable(build_route(name, route) for name, route in settings.models.items()),
        prices=prices,
        keys=build_keyring(settings, secret),
        tenant_scopes=tenant_scopes,
        version=version,
        egress=egress,
    )


def provider_instance(name: str, config: ProviderConfig, cls: type[Provider]) -> Provider:
    """The plugin instance for one provider. Raises ConfigError naming the YAML path for a plugin setting
    the plugin does not take, or one it cannot work with (its constructor's ValueError)."""
    options = config.plugin_options()
    for key in options:
        if key not in cls.plugin_settings:
            raise ConfigError(f"providers.{name}.{key}: not a setting of plugin {config.plugin!r}")
    settings = ProviderSettings(
        name=name,
        base_url=config.base_url or cls.default_base_url,
        api_key=config.api_key or None,
        headers=dict(config.headers),
        options=options,
    )
    try:
        return cls(settings)
    except ValueError as exc:
        raise ConfigError(f"providers.{name}: {exc}") from None


def build_egress(name: str, config: ProviderConfig, settings: Settings) -> Egress:
    """A provider's egress: its proxy, its TLS context (files read now) and its bounds. Raises ConfigError
    naming the YAML path, the provider and the file."""
    limits = settings.upstream
    egress = Egress(
        provider=name,
        max_head_bytes=limits.max_head_bytes,
        max_response_bytes=config.max_response_bytes or limits.max_response_bytes,
        max_informational=limits.max_informational,
        max_decompression_ratio=limits.max_decompression_ratio,
    )
    if config.proxy:
        try:
            egress.proxy = parse_proxy(config.proxy)
        except ValueError as exc:
            raise ConfigError(f"providers.{name}.proxy: {exc}") from None
    tls = config.tls
    if tls is not None:
        base = Path(settings.base_dir)
        try:
            egress.ssl = provider_context(
                name,
                ca_file=str(base / tls.ca_file) if tls.ca_file else None,
                cert_file=str(base / tls.cert_file) if tls.cert_file else None,
                key_file=str(base / tls.key_file) if tls.key_file else None,
                system_ca=tls.system_ca,
            )
        except TLSSetupError as exc:
            raise ConfigError(f"providers.{name}.tls: {exc}") from None
    return egress


def tenant_scope(name: str, tenant: TenantConfig) -> Scope:
    """A tenant's limits and budget as a metering scope (YAML tenants here, API tenants in tenancy)."""
    return Scope(
        "tenant",
        name,
        name,
        tenant.limits.rpm,
        tenant.limits.tpm,
        usd_to_micro(tenant.budget.usd) if tenant.budget else None,
        tenant.budget.period if tenant.budget else Period.MONTHLY,
        tuple(tenant.alerts.at),
    )
