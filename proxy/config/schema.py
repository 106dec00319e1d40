"""The YAML file's schema: one frozen pydantic model per section, unknown keys refused.

Durations are strings (``"500ms"``, ``"5s"``, ``"1h"``) or numbers of seconds. Secrets are referenced
(``${OPENAI_API_KEY}``), never required inline.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, IPvAnyNetwork, model_validator

from proxy.config.periods import Period
from proxy.upstream.sse import DEFAULT_MAX_EVENT_BYTES

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '500ms', '5s', '1h'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
        raise ValueError(f"invalid duration {value!r} (use e.g. '500ms', '5s', '1h' or seconds)")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
# Bounded by 2**53: counts must survive JSON (orjson refuses larger ints, JavaScript rounds them).
PositiveInt = Annotated[int, Field(gt=0, le=2**53)]
NonNegative = Annotated[float, Field(ge=0)]


class _Section(BaseModel):
    # No inf/NaN anywhere: a money or duration field that is not a finite number is a mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


class RetryBudgetConfig(_Section):
    """Bounds fallback attempts in a failure storm (proxy/routing/retry.py): each client request earns
    ``ratio`` of a retry, each retry spends one, and ``min_per_second`` keeps a trickle going at low
    traffic."""

    ratio: NonNegative = 0.2
    min_per_second: NonNegative = 1.0
    burst: NonNegative = 50.0  # most retries saved up: covers the requests in flight when a target dies


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_body_bytes: PositiveInt = 8 * 1024 * 1024
    # One provider SSE event (its lines up to the blank one) may hold this much; a larger one ends the
    # stream with an error (502 before the first byte) and closes the provider's connection.
    max_sse_event_bytes: PositiveInt = DEFAULT_MAX_EVENT_BYTES
    admin_token: str | None = None
    # The environment variables a provider added or changed through the admin API may name (``${VAR}``),
    # as glob patterns (``OPENAI_*_KEY``); none by default, so an admin token cannot read the environment.
    runtime_env_allowlist: list[str] = []
    # Networks of the reverse proxies in front (e.g. a TLS terminator): only a peer inside one of them is
    # believed about X-Forwarded-Proto / X-Forwarded-Host (the dashboard's origin check and cookie).
    trusted_proxies: list[IPvAnyNetwork] = []
    access_log: bool = True
    # Reliability (README "Reliability"): overload cap, slow clients, graceful shutdown, retry budget.
    max_concurrency: Annotated[int, Field(ge=0, le=2**53)] = (
        1024  # data-plane requests per process; 0: no cap
    )
    body_timeout: Duration = 30.0  # the whole request body must arrive within this
    write_timeout: Duration = 60.0  # a stream the client takes nothing from for this long is closed
    shutdown_delay: Duration = 0.0  # SIGTERM: readiness off this long before the listener closes
    drain_timeout: Duration = 30.0  # SIGTERM: how long in-flight requests get to finish
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()
    watch_config: bool = False  # reload when the config file changes (checked every second)
    # Client connections (proxy/edge/connections.py): a request head must arrive whole within
    # header_timeout of its first byte; a keep-alive connection idle for keepalive_timeout is closed; at
    # most max_connections are open (the least recently active idle one closed to make room for a new one).
    header_timeout: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 10.0
    keepalive_timeout: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 75.0
    max_connections: PositiveInt = 10000


class StoreConfig(_Section):
    backend: Literal["memory", "redis"] = "memory"
    url: str | None = None
    cluster: bool = False
    timeout: Duration = 0.1
    on_outage: Literal["fail_closed", "fail_open"] = "fail_closed"
    prefix: str = "egw"
    # Settlements Redis could not take go to <journal>-<pid>-<random>.jsonl (relative to the working
    # directory: the config's folder may be read-only), replayed once Redis is back (proxy/store/journal.py).
    journal: str = "efflux-journal"
    # The ledger kept in the store: the memory store's most recent records (its RSS grows with them), and
    # each tenant's Redis ledger stream (MAXLEN ~). With ledger.backend: postgres these are a buffer.
    memory_ledger_records: PositiveInt = 100_000
    ledger_stream_records: PositiveInt = 1_000_000

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StoreConfig:
        if self.backend == "redis" and not self.url:
            raise ValueError("backend redis needs a url (redis://host:port/db)")
        return self


class SecretsConfig(_Section):
    master_keys: list[str] = []
    # HMAC secret for virtual-key digests (32+ bytes); random per process if unset, which only suits the
    # memory store: keys created through the API must digest the same on every replica and restart.
    key_secret: str | None = None


class FeaturesConfig(_Section):
    aggregators: bool = True


class Timeouts(_Section):
    connect: Duration = 5.0
    first_byte: Duration = 60.0
    idle: Duration = 60.0
    total: Duration = 600.0


class BreakerConfig(_Section):
    failures: PositiveInt = 5
    cooldown: Duration = 30.0


class SyncConfig(_Section):
    every: Duration | None = None  # None: only on demand (CLI, admin API)
    grace: Duration = 86400.0  # how long a model the provider stopped listing stays routable
    timeout: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 30.0


class UpstreamConfig(_Section):
    """Bounds on what a provider may send back (proxy/upstream), each exceeded with a clean error and the
    connection closed. ``max_response_bytes`` is the default of the providers' own setting."""

    max_response_bytes: PositiveInt = 64 * 1024 * 1024  # a non-stream body, decoded
    max_head_bytes: PositiveInt = 64 * 1024  # status line and headers, 1xx answers included
    max_informational: Annotated[int, Field(ge=0, le=1000)] = 10  # 1xx answers before the real one
    max_decompression_ratio: PositiveInt = 100  # decoded bytes per byte on the wire (past 1 MiB)


class ProviderTLSConfig(_Section):
    """A provider's own TLS: ``ca_file`` (PEM) is trusted in addition to the system's CA store, or instead
    of it with ``system_ca: false``; ``cert_file`` (with ``key_file``, or one PEM holding both) is the
    client certificate. Relative paths resolve against the config file's folder."""

    ca_file: str | None = None
    system_ca: bool = True
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> ProviderTLSConfig:
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file")
        if not self.system_ca and not self.ca_file:
            raise ValueError("system_ca: false needs a ca_file to trust")
        return self


class ProviderConfig(_Section):
    plugin: str
    api_key: str | None = None
    base_url: str | None = None
    headers: dict[str, str] = {}
    enabled: bool = True
    # Tenants' own keys (BYOK, proxy.tenancy.vault): "optional" uses a tenant's key when it has one, else the
    # shared api_key; "required" serves only tenants with their own key; "never" ignores tenant keys.
    byok: Literal["optional", "required", "never"] = "optional"
    timeouts: Timeouts = Timeouts()
    breaker: BreakerConfig = BreakerConfig()
    sync: SyncConfig | None = None
    # Egress (proxy/upstream): an HTTP proxy that wins over HTTPS_PROXY / HTTP_PROXY / NO_PROXY
    # (http://[user:pass@]host:port), the provider's own TLS, and its cap on a non-stream body
    # (default: upstream.max_response_bytes).
    proxy: str | None = None
    tls: ProviderTLSConfig | None = None
    max_response_bytes: PositiveInt | None = None

    @model_validator(mode="after")
    def _check_base_url(self) -> ProviderConfig:
        if self.base_url and not re.match(r"^https?://[^/\s]+", self.base_url):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.proxy and not re.match(r"^http://[^/\s]+(/)?$", self.proxy):
            raise ValueError("proxy must be an http://[user:pass@]host:port URL")
        return self


class TargetConfig(_Section):
    provider: str
    model: str | None = None
    priority: Annotated[int, Field(ge=-(2**31), le=2**31)] | None = None
    weight: Annotated[float, Field(gt=0)] = 1.0


class TimeoutOverride(_Section):
    """A route's own timeouts: each one set replaces the provider's for this route's requests."""

    connect: Duration | None = None
    first_byte: Duration | None = None
    idle: Duration | None = None
    total: Duration | None = None

    def apply(self, base: Timeouts) -> Timeouts:
        """``base`` with each timeout set here replaced. Called per request and candidate, so the result is
        cached by value (both models are frozen, hence hashable): a copy is built once per pair."""
        return _overridden(self, base)


@functools.lru_cache(maxsize=256)
def _overridden(override: TimeoutOverride, base: Timeouts) -> Timeouts:
    changes = {k: v for k, v in override.model_dump().items() if v is not None}
    return base.model_copy(update=changes) if changes else base


class RouteConfig(_Section):
    targets: Annotated[list[TargetConfig], Field(min_length=1)]
    # How targets of one priority share traffic: by weight, fewest requests in flight, or lowest latency.
    strategy: Literal["weighted", "least_busy", "lowest_latency"] = "weighted"
    timeouts: TimeoutOverride | None = None


class PriceConfig(_Section):
    input: NonNegative
    output: NonNegative = 0.0
    cached_input: NonNegative | None = None
    cache_write: NonNegative | None = None
    context_length: PositiveInt | None = None
    # Tokens admission reserves per image part on this model (metering.reserve.image_tokens otherwise).
    image_tokens: PositiveInt | None = None


class PricingConfig(_Section):
    file: str | None = None
    default: PriceConfig | None = None
    models: dict[str, PriceConfig] = {}


class LimitsConfig(_Section):
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None


class BudgetConfig(_Section):
    usd: Annotated[float, Field(ge=0, le=1e12)]  # bounded: micro-USD must stay an exact integer
    period: Period = Period.MONTHLY


class KeyConfig(_Section):
    name: Annotated[str, Field(min_length=1)]
    key: Annotated[str, Field(min_length=8)]
    tenant: str = "default"
    models: list[str] = ["*"]
    limits: LimitsConfig = LimitsConfig()
    budget: BudgetConfig | None = None


class AlertsConfig(_Section):
    at: list[Annotated[float, Field(gt=0, le=10)]] = [0.5, 0.8, 1.0]
    webhook: str | None = None


class TenantConfig(_Section):
    budget: BudgetConfig | None = None
    limits: LimitsConfig = LimitsConfig()
    alerts: AlertsConfig = AlertsConfig()


class ReserveConfig(_Section):
    """What admission reserves for a prompt's media parts (their bytes say nothing of their cost)."""

    image_tokens: PositiveInt = 2500  # per image_url part: the most a provider bills for one image
    audio_bytes_per_token: PositiveInt = 32  # input_audio parts, by their base64 size
    file_bytes_per_token: PositiveInt = 1  # file parts with file_data, by its size (by id: whole context)


class MeteringConfig(_Section):
    default_max_tokens: PositiveInt = 4096  # worst-case output when a request sets no max_tokens
    reserve: ReserveConfig = ReserveConfig()
    on_client_disconnect: Literal["drain", "cancel"] = "drain"
    drain_timeout: Duration = 10.0  # how long to keep reading upstream for usage after a disconnect


class LedgerConfig(_Section):
    """The durable ledger (proxy/ledger): every usage record copied into PostgreSQL by a background writer."""

    backend: Literal["postgres"] = "postgres"
    url: str
    retention: Duration = 400 * 86400.0  # records older than this are dropped (whole months at a time)
    migrate_on_start: bool = False  # apply the package's migrations when the gateway starts
    # The memory store's records wait here while PostgreSQL is away (<journal>.jsonl), up to journal_bytes;
    # past it, new records stay only in the memory store's own ledger and an error is logged.
    journal: str = "efflux-ledger-journal"
    journal_bytes: PositiveInt = 256 * 1024 * 1024


class Settings(_Section):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    secrets: SecretsConfig = SecretsConfig()
    features: FeaturesConfig = FeaturesConfig()
    providers: dict[str, ProviderConfig] = {}
    models: dict[str, RouteConfig] = {}
    pricing: PricingConfig = PricingConfig()
    keys: list[KeyConfig] = []
    tenants: dict[str, TenantConfig] = {}
    metering: MeteringConfig = MeteringConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    ledger: LedgerConfig | None = None
    # Where the file was read from; relative paths inside it (pricing.file) resolve against it.
    base_dir: str = Field(default=".", exclude=True)

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        problems: list[str] = []
        for name, route in self.models.items():
            for i, target in enumerate(route.targets):
                if target.provider not in self.providers:
                    problems.append(
                        f"models.{name}.targets[{i}].provider: unknown provider {target.provider!r}"
                        + _suggest(target.provider, self.providers)
                    )
        seen_names: set[str] = set()
        seen_keys: set[str] = set()
        for i, key in enumerate(self.keys):
            if key.name in seen_names:
                problems.append(f"keys[{i}].name: duplicate key name {key.name!r}")
            if key.key in seen_keys:
                problems.append(f"keys[{i}].key: the same secret is used by two keys")
            seen_names.add(key.name)
            seen_keys.add(key.key)
        if problems:
            raise CrossReferenceError(problems)
        return self


class CrossReferenceError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _suggest(word: str, choices: Mapping[str, object]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
