"""The one YAML file: its schema, ``${VAR}`` interpolation and load-time validation.

    schema.py    the sections (frozen pydantic models, unknown keys refused) and ``Settings``
    periods.py   budget periods and the window of time each covers
    loading.py   safe YAML without duplicate keys, ``${VAR}`` interpolation, ``load_settings``
    errors.py    ``ConfigError`` and the one-line-per-problem format naming the YAML path
    dotenv.py    the ``.env`` file beside the config (what ``efflux-gateway init`` writes)
    reference.py the configuration reference (docs/configuration.md), generated from the schema

Everything is importable from here: ``from proxy.config import Settings, load_settings``.
"""

from __future__ import annotations

from proxy.config.errors import ConfigError, format_error, yaml_path
from proxy.config.loading import interpolate, load_settings, parse_settings, parse_yaml
from proxy.config.periods import Period
from proxy.config.schema import (
    AlertsConfig,
    BreakerConfig,
    BudgetConfig,
    Duration,
    FeaturesConfig,
    KeyConfig,
    LimitsConfig,
    MeteringConfig,
    NonNegative,
    OperatorAlertsConfig,
    PositiveInt,
    PriceConfig,
    PricingConfig,
    ProviderConfig,
    ReserveConfig,
    RetryBudgetConfig,
    RouteConfig,
    SecretsConfig,
    ServerConfig,
    Settings,
    StoreConfig,
    SyncConfig,
    TargetConfig,
    TenantConfig,
    TimeoutOverride,
    Timeouts,
    parse_duration,
)

__all__ = [
    "AlertsConfig",
    "BreakerConfig",
    "BudgetConfig",
    "ConfigError",
    "Duration",
    "FeaturesConfig",
    "KeyConfig",
    "LimitsConfig",
    "MeteringConfig",
    "NonNegative",
    "OperatorAlertsConfig",
    "Period",
    "PositiveInt",
    "PriceConfig",
    "PricingConfig",
    "ProviderConfig",
    "ReserveConfig",
    "RetryBudgetConfig",
    "RouteConfig",
    "SecretsConfig",
    "ServerConfig",
    "Settings",
    "StoreConfig",
    "SyncConfig",
    "TargetConfig",
    "TenantConfig",
    "TimeoutOverride",
    "Timeouts",
    "format_error",
    "interpolate",
    "load_settings",
    "parse_duration",
    "parse_settings",
    "parse_yaml",
    "yaml_path",
]
