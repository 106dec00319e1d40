"""The YAML file's schema: one frozen pydantic model per section, unknown keys refused.

Durations are strings (``"500ms"``, ``"5s"``, ``"1h"``) or numbers of seconds. Secrets are referenced
(``${OPENAI_API_KEY}``), never required inline.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable
from typing import Annotated, ClassVar, Literal

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
    # use_attribute_docstrings: the string under each field is its description, which the configuration
    # reference (proxy/config/reference.py, docs/configuration.md) prints.
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=False, allow_inf_nan=False, use_attribute_docstrings=True
    )


class RetryBudgetConfig(_Section):
    """Bounds fallback attempts in a failure storm (proxy/routing/retry.py): each client request earns
    ``ratio`` of a retry, each retry spends one, and ``min_per_second`` keeps a trickle going at low
    traffic."""

    ratio: NonNegative = 0.2
    """Retries earned per client request: 0.2 lets at most one request in five be retried on another
    target when every target fails."""
    min_per_second: NonNegative = 1.0
    """Retries always allowed per second, whatever the traffic (so a quiet gateway still falls back)."""
    burst: NonNegative = 50.0
    """The most retries saved up: covers the requests in flight when a target dies."""


class ServerConfig(_Section):
    """The listener, the admin token, and the bounds on client connections and requests."""

    host: str = "127.0.0.1"
    """Address to listen on. On an address other than loopback, `serve` refuses to start while a key uses
    the demo secret or no `admin_token` is set (`--allow-unsafe-bind` overrides)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """TCP port to listen on (0: any free port, printed at start)."""
    max_body_bytes: PositiveInt = 8 * 1024 * 1024
    """Largest request body accepted; a larger one gets 413 before it is read whole."""
    max_sse_event_bytes: PositiveInt = DEFAULT_MAX_EVENT_BYTES
    """Largest provider SSE event (its lines up to the blank one); a larger one ends the stream with an
    error (502 before the first byte) and closes the provider's connection."""
    admin_token: str | None = None
    """Bearer token of the admin API (`/admin`) and the operator console (`/ui/`); unset or empty: both
    are off (a virtual key still opens its own dashboard view)."""
    runtime_env_allowlist: list[str] = []
    """Environment variables a provider added or changed through the admin API may name (`${VAR}`), as
    glob patterns (`OPENAI_*_KEY`); none by default, so an admin token cannot read the environment."""
    trusted_proxies: list[IPvAnyNetwork] = []
    """Networks of the reverse proxies in front (e.g. a TLS terminator): only a peer inside one of them is
    believed about `X-Forwarded-Proto` / `X-Forwarded-Host` (the dashboard's origin check and cookie)."""
    access_log: bool = True
    """One JSON line per request on stderr."""
    max_concurrency: Annotated[int, Field(ge=0, le=2**53)] = 1024
    """Data-plane requests in flight per process; past it new ones get 503 `overloaded` with
    `Retry-After: 1` at once (0: no cap). Health, metrics and admin are not capped."""
    body_timeout: Duration = 30.0
    """The whole request body must arrive within this, or the request gets 408."""
    write_timeout: Duration = 60.0
    """A client that takes nothing from a response (a stream) for this long is disconnected (0: off)."""
    shutdown_delay: Duration = 0.0
    """On SIGTERM, how long `/readyz` answers 503 before the listener closes (for load balancers)."""
    drain_timeout: Duration = 30.0
    """On SIGTERM, how long requests in flight (streams included) get to finish before they are
    cancelled (and still metered)."""
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()
    """Bounds fallback attempts in a failure storm (see its settings)."""
    watch_config: bool = False
    """Reload when the config file changes (checked every second); SIGHUP and `POST /admin/reload`
    reload in any case."""
    header_timeout: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 10.0
    """A request head must arrive whole within this of its first byte, or the connection is closed."""
    keepalive_timeout: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 75.0
    """An idle keep-alive client connection is closed after this."""
    max_connections: PositiveInt = 10000
    """Open client connections per process (at most half the open-files limit); past it, the least
    recently active idle one is closed to make room."""
    max_upload_bytes: PositiveInt = 26 * 1024 * 1024
    """Largest multipart upload (`/v1/audio/transcriptions`, `/v1/audio/translations`): streamed to the
    provider as it arrives, never held whole, so it may be larger than `max_body_bytes`; 413 beyond.
    `body_timeout` bounds each wait for more of an upload rather than the whole."""


class StoreConfig(_Section):
    """Where counters, budgets, keys and the ledger live: in the process, or in Redis (for replicas)."""

    backend: Literal["memory", "redis"] = "memory"
    """`memory`: one process, nothing survives a restart; `redis`: shared by replicas and workers."""
    url: str | None = None
    """Redis URL (`redis://host:port/db`, `rediss://` for TLS); required with `backend: redis`."""
    cluster: bool = False
    """The URL names a Redis Cluster node (every key one request touches carries the tenant's hash
    tag)."""
    timeout: Duration = 0.1
    """How long one store call may take before it counts as an outage."""
    on_outage: Literal["fail_closed", "fail_open"] = "fail_closed"
    """When Redis does not answer: `fail_closed` refuses requests (503 `metering_unavailable`);
    `fail_open` admits them without a reservation. Either way a settlement Redis cannot take is
    journalled and replayed later."""
    prefix: str = "egw"
    """Prefix of every Redis key (several gateways may share one Redis under different prefixes)."""
    journal: str = "efflux-journal"
    """Settlements Redis could not take go to `<journal>-<pid>-<random>.jsonl` (relative to the working
    directory: the config's folder may be read-only), replayed once Redis is back."""
    memory_ledger_records: PositiveInt = 100_000
    """The memory store keeps this many most recent usage records (its memory grows with them; with
    `ledger.backend: postgres` they are only a buffer)."""
    ledger_stream_records: PositiveInt = 1_000_000
    """Each tenant's Redis ledger stream keeps about this many records (MAXLEN ~)."""

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StoreConfig:
        if self.backend == "redis" and not self.url:
            raise ValueError("backend redis needs a url (redis://host:port/db)")
        return self


class SecretsConfig(_Section):
    """Secrets of the gateway itself (always referenced as `${VAR}`, never written in the file)."""

    master_keys: list[str] = []
    """Master keys of the provider-key vault (urlsafe base64 of 32 bytes, from `efflux-gateway vault
    genkey`); the first one seals, all of them open. None: the vault refuses to store keys."""
    key_secret: str | None = None
    """HMAC secret (32+ bytes) for virtual-key digests. Unset: random per process, which only suits the
    memory store: keys created through the API must digest the same on every replica and restart."""


class FeaturesConfig(_Section):
    """Switches for whole features."""

    aggregators: bool = True
    """`false` takes every aggregator provider (OpenRouter, AiHubMix...) out of service; direct routes
    still serve."""


class Timeouts(_Section):
    """How long each phase of a provider call may take; a timed-out attempt falls back to the next
    target."""

    connect: Duration = 5.0
    """TCP and TLS connection to the provider."""
    first_byte: Duration = 60.0
    """From the request sent to the answer's first byte (for a stream: its first event)."""
    idle: Duration = 60.0
    """Longest silence between two reads of the answer."""
    total: Duration = 600.0
    """The whole provider call, stream included."""


class BreakerConfig(_Section):
    """A provider's circuit breaker: after `failures` in a row it is skipped for `cooldown`."""

    failures: PositiveInt = 5
    """Consecutive failed calls that open the breaker."""
    cooldown: Duration = 30.0
    """How long an open breaker skips the provider before one trial request."""


class SyncConfig(_Section):
    """Model catalogue sync: the provider's `/models` list becomes routable `<provider>/<model>` names."""

    every: Duration | None = None
    """How often to sync; unset: only on demand (`efflux-gateway sync`, the admin API)."""
    grace: Duration = 86400.0
    """How long a model the provider stopped listing stays routable."""
    timeout: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 30.0
    """The most one sync may take."""


class UpstreamConfig(_Section):
    """Bounds on what a provider may send back (proxy/upstream), each exceeded with a clean error and the
    connection closed. ``max_response_bytes`` is the default of the providers' own setting."""

    max_response_bytes: PositiveInt = 64 * 1024 * 1024
    """Largest non-stream answer body, decoded."""
    max_head_bytes: PositiveInt = 64 * 1024
    """Largest status line and headers, 1xx answers included."""
    max_informational: Annotated[int, Field(ge=0, le=1000)] = 10
    """Most 1xx answers before the real one."""
    max_decompression_ratio: PositiveInt = 100
    """Most decoded bytes per byte on the wire (checked past the first 1 MiB): a bound on zip bombs."""


class ProviderTLSConfig(_Section):
    """A provider's own TLS: ``ca_file`` (PEM) is trusted in addition to the system's CA store, or instead
    of it with ``system_ca: false``; ``cert_file`` (with ``key_file``, or one PEM holding both) is the
    client certificate. Relative paths resolve against the config file's folder."""

    ca_file: str | None = None
    """A PEM file of CA certificates to trust (a private CA)."""
    system_ca: bool = True
    """Also trust the system's CA store; `false` needs a `ca_file`."""
    cert_file: str | None = None
    """Client certificate (PEM), for providers that require mutual TLS."""
    key_file: str | None = None
    """The client certificate's private key (PEM), when not in `cert_file`."""

    @model_validator(mode="after")
    def _coherent(self) -> ProviderTLSConfig:
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file")
        if not self.system_ca and not self.ca_file:
            raise ValueError("system_ca: false needs a ca_file to trust")
        return self


class ProviderConfig(_Section):
    """One upstream: which plugin speaks to it, where, with which key."""

    plugin: str
    """The provider plugin: `openai`, `anthropic`, `openrouter`, `aihubmix`, `openai_compatible`, ..."""
    api_key: str | None = None
    """The provider's API key, as `${VAR}`; empty or unset: the provider is not used (unless tenants
    bring their own key)."""
    base_url: str | None = None
    """The provider's API root (`https://...`); default: the plugin's own (required for
    `openai_compatible`)."""
    headers: dict[str, str] = {}
    """Extra headers sent with every call (an empty value is not sent)."""
    enabled: bool = True
    """`false` takes the provider out of service without removing its routes."""
    byok: Literal["optional", "required", "never"] = "optional"
    """Tenants' own keys (bring your own key, kept in the vault): `optional` uses a tenant's key when it
    has one, else the shared `api_key`; `required` serves only tenants with their own key; `never`
    ignores tenant keys."""
    timeouts: Timeouts = Timeouts()
    """How long each phase of a call may take (see its settings)."""
    breaker: BreakerConfig = BreakerConfig()
    """The provider's circuit breaker (see its settings)."""
    sync: SyncConfig | None = None
    """Sync the provider's model catalogue (unset: no sync)."""
    proxy: str | None = None
    """Egress HTTP proxy for this provider (`http://[user:pass@]host:port`); wins over `HTTPS_PROXY` /
    `HTTP_PROXY` / `NO_PROXY`. Unset: the environment decides."""
    tls: ProviderTLSConfig | None = None
    """The provider's own TLS: a private CA, a client certificate (unset: the system's CA store)."""
    max_response_bytes: PositiveInt | None = None
    """Largest non-stream answer from this provider; unset: `upstream.max_response_bytes`."""
    pricing_unknown: Literal["refuse", "allow"] | None = None
    """What a model no price source knows does on this provider: `refuse` (400) or `allow` (served,
    recorded unpriced); unset: `pricing.unknown`."""
    # Settings of one plugin each (the plugin declares which it takes; any other is refused at load).
    api_version: str | None = None
    """`azure`: the API version (a dated one uses the deployments path; unset or `v1`: the v1 path)."""
    entra_token: str | None = None
    """`azure`: an Entra ID bearer token, as `${VAR}`, instead of `api_key`."""
    region: str | None = None
    """`bedrock`: the AWS region (unset: the environment's)."""
    aws_access_key_id: str | None = None
    """`bedrock`: the AWS access key id, as `${VAR}` (unset: botocore's credential chain)."""
    aws_secret_access_key: str | None = None
    """`bedrock`: the AWS secret access key, as `${VAR}`."""
    aws_session_token: str | None = None
    """`bedrock`: an AWS session token for temporary credentials, as `${VAR}`."""

    PLUGIN_SETTINGS: ClassVar[tuple[str, ...]] = (
        "api_version",
        "entra_token",
        "region",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    )

    def plugin_options(self) -> dict[str, str]:
        """The plugin settings that are set (an empty ``${VAR:-}`` counts as not set)."""
        return {name: value for name in self.PLUGIN_SETTINGS if (value := getattr(self, name))}

    @model_validator(mode="after")
    def _check_base_url(self) -> ProviderConfig:
        if self.base_url and not re.match(r"^https?://[^/\s]+", self.base_url):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if self.proxy and not re.match(r"^http://[^/\s]+(/)?$", self.proxy):
            raise ValueError("proxy must be an http://[user:pass@]host:port URL")
        return self


class TargetConfig(_Section):
    """One place a route sends requests to."""

    provider: str
    """A name under `providers:`."""
    model: str | None = None
    """The model name sent to the provider; unset: the requested name (under `prefix/*`, the rest after
    the prefix)."""
    priority: Annotated[int, Field(ge=-(2**31), le=2**31)] | None = None
    """Lower goes first; targets of equal priority share traffic by `strategy`. Unset: list order."""
    weight: Annotated[float, Field(gt=0)] = 1.0
    """Share of traffic among targets of equal priority (with `strategy: weighted`)."""
    deployment: str | None = None
    """`azure`: the deployment the call goes to (`model` then only names the price); unset: the model
    name is the deployment's."""


class TimeoutOverride(_Section):
    """A route's own timeouts: each one set replaces the provider's for this route's requests."""

    connect: Duration | None = None
    """Replaces the provider's `timeouts.connect`."""
    first_byte: Duration | None = None
    """Replaces the provider's `timeouts.first_byte`."""
    idle: Duration | None = None
    """Replaces the provider's `timeouts.idle`."""
    total: Duration | None = None
    """Replaces the provider's `timeouts.total`."""

    def apply(self, base: Timeouts) -> Timeouts:
        """``base`` with each timeout set here replaced. Called per request and candidate, so the result is
        cached by value (both models are frozen, hence hashable): a copy is built once per pair."""
        return _overridden(self, base)


@functools.lru_cache(maxsize=256)
def _overridden(override: TimeoutOverride, base: Timeouts) -> Timeouts:
    changes = {k: v for k, v in override.model_dump().items() if v is not None}
    return base.model_copy(update=changes) if changes else base


class RouteConfig(_Section):
    """A model name (or glob, `openrouter/*`) clients may ask for, and where it goes."""

    targets: Annotated[list[TargetConfig], Field(min_length=1)]
    """Where requests go: list order is fallback order unless `priority` says otherwise."""
    strategy: Literal["weighted", "least_busy", "lowest_latency"] = "weighted"
    """How targets of one priority share traffic: by `weight`, fewest requests in flight, or lowest
    recent latency."""
    timeouts: TimeoutOverride | None = None
    """This route's own timeouts, each replacing the provider's (unset: the provider's)."""


# The unit price fields of PriceConfig -> the unit they price (the name a usage record gives it).
UNIT_PRICES = {
    "per_image": "image",
    "per_second": "second",
    "per_million_characters": "character",
    "per_search": "search",
}


class PriceConfig(_Section):
    """A model's price in USD per 1M tokens, and for the endpoints metered in their own units (images,
    audio, speech, rerank) at most one unit price."""

    input: NonNegative
    """Prompt tokens."""
    output: NonNegative = 0.0
    """Completion tokens (reasoning included)."""
    cached_input: NonNegative | None = None
    """Prompt tokens read from the provider's cache; unset: `input`."""
    cache_write: NonNegative | None = None
    """Prompt tokens written to the provider's cache (Anthropic); unset: `input`."""
    context_length: PositiveInt | None = None
    """The model's context window in tokens: caps what admission reserves for one request."""
    image_tokens: PositiveInt | None = None
    """Tokens admission reserves per image part on this model (unset: `metering.reserve.image_tokens`)."""
    per_image: NonNegative | None = None
    """USD per image made (`/v1/images/generations`); at most one unit price per model."""
    per_second: NonNegative | None = None
    """USD per second of audio transcribed or translated (`/v1/audio/transcriptions`, `/translations`)."""
    per_million_characters: NonNegative | None = None
    """USD per 1M characters of speech input (`/v1/audio/speech`)."""
    per_search: NonNegative | None = None
    """USD per rerank search (`/v1/rerank`)."""

    @model_validator(mode="before")
    @classmethod
    def _unit_only(cls, data: object) -> object:
        """A model priced only per unit (``whisper-1: {per_second: 0.0001}``) needs no token price."""
        if isinstance(data, dict) and "input" not in data and any(n in data for n in UNIT_PRICES):
            return {**data, "input": 0.0}
        return data

    @model_validator(mode="after")
    def _one_unit(self) -> PriceConfig:
        units = [n for n in UNIT_PRICES if getattr(self, n) is not None]
        if len(units) > 1:
            raise ValueError(f"at most one unit price per model, got {', '.join(units)}")
        return self


class PricingConfig(_Section):
    """What each model costs: inline prices (which win), a price file, then synced catalogues and the
    genai-prices package, a default; and what a model none of them prices does."""

    file: str | None = None
    """A YAML price file (`models: {name: {input, output, ...}}`), relative to the config file."""
    default: PriceConfig | None = None
    """The price of a model no other source prices (the last source); unset: `unknown` decides."""
    models: dict[str, PriceConfig] = {}
    """Prices by upstream model name, or `<provider>/<model>` for one provider; they beat the file."""
    unknown: Literal["refuse", "allow"] = "refuse"
    """A model no price source knows (these prices, the file, synced catalogues, genai-prices, `default`):
    `refuse` answers 400; `allow` serves it at zero cost, recorded with `price_source: none` and
    `estimated: true`, counted in `efflux_unpriced_requests_total` and alerted once per model."""


class LimitsConfig(_Section):
    """Rate limits over a sliding minute (429 `rate_limit_exceeded` beyond)."""

    rpm: PositiveInt | None = None
    """Requests per minute (unset: no limit)."""
    tpm: PositiveInt | None = None
    """Tokens per minute, reserved at admission and settled to the actual usage (unset: no limit)."""


class BudgetConfig(_Section):
    """A spending cap in USD per period (429 `budget_exceeded` once reached)."""

    usd: Annotated[float, Field(ge=0, le=1e12)]  # bounded: micro-USD must stay an exact integer
    """The cap in USD."""
    period: Period = Period.MONTHLY
    """`daily`, `weekly`, `monthly` (calendar, UTC) or `total` (never resets)."""


class KeyConfig(_Section):
    """A virtual key clients send as `Authorization: Bearer <key>`."""

    name: Annotated[str, Field(min_length=1)]
    """Unique name (in logs, the ledger, the dashboard)."""
    key: Annotated[str, Field(min_length=8)]
    """The secret, as `${VAR}` (8 characters or more)."""
    tenant: str = "default"
    """The tenant it spends for (its budget and limits apply too)."""
    models: list[str] = ["*"]
    """Model globs it may call; others get 403 `model_not_allowed`."""
    limits: LimitsConfig = LimitsConfig()
    """The key's own rate limits."""
    budget: BudgetConfig | None = None
    """The key's own budget (unset: only the tenant's)."""


class AlertsConfig(_Section):
    """Budget alerts of a tenant."""

    at: list[Annotated[float, Field(gt=0, le=10)]] = [0.5, 0.8, 1.0]
    """Fractions of the budget at which an alert fires (once per period each)."""
    webhook: str | None = None
    """URL the alerts are POSTed to as JSON; unset: alerts are only logged."""


OperatorEvent = Literal["provider_down", "sync_failed", "ledger_lag", "budget", "unpriced_model"]


class OperatorAlertsConfig(_Section):
    """The operator's webhook: events that belong to no tenant, and copies of tenants' budget alerts."""

    webhook: str | None = None
    """URL operator events are POSTed to as JSON; unset: they are only logged."""
    on: list[OperatorEvent] = ["provider_down", "sync_failed", "ledger_lag", "budget", "unpriced_model"]
    """Which events go to the webhook (`budget`: a copy of every tenant's budget alert; `unpriced_model`:
    a model served without a price, `pricing.unknown: allow`)."""
    secret: str | None = None
    """Signs each body: header `X-Efflux-Signature: sha256=<hex HMAC-SHA256 of the body>`."""
    ledger_lag_threshold: Duration = 300.0
    """`ledger_lag` fires when the ledger writer is this far behind."""


class TelemetryConfig(_Section):
    """Tracing (the spans themselves are configured by the standard OTEL_* variables)."""

    capture_content: bool = False
    """True: prompts and non-streamed answers go on the request span (roles and text, clipped)."""


class TenantConfig(_Section):
    """A tenant: the budget and limits shared by all its keys."""

    budget: BudgetConfig | None = None
    """The tenant's budget (unset: none)."""
    limits: LimitsConfig = LimitsConfig()
    """Rate limits over all the tenant's keys."""
    alerts: AlertsConfig = AlertsConfig()
    """When to warn about the tenant's spending."""


class ReserveConfig(_Section):
    """What admission reserves for a prompt's media parts (their bytes say nothing of their cost)."""

    image_tokens: PositiveInt = 2500
    """Tokens per `image_url` part: the most a provider bills for one image."""
    audio_bytes_per_token: PositiveInt = 32
    """`input_audio` parts: one token per this many bytes of their base64."""
    file_bytes_per_token: PositiveInt = 1
    """`file` parts with `file_data`: one token per this many bytes (a file by id: the whole context)."""


class MeteringConfig(_Section):
    """How usage is reserved before a call and settled after it."""

    default_max_tokens: PositiveInt = 4096
    """Worst-case output reserved when a request sets no `max_tokens`."""
    reserve: ReserveConfig = ReserveConfig()
    """What admission reserves for media parts (see its settings)."""
    on_client_disconnect: Literal["drain", "cancel"] = "drain"
    """When a client goes away mid-answer: `drain` keeps reading the provider for the real usage;
    `cancel` stops at once and bills an estimate."""
    drain_timeout: Duration = 10.0
    """How long to keep reading upstream for usage after a disconnect."""


class ResponsesConfig(_Section):
    """The responses the gateway keeps: those it served through a chat model (`/v1/responses`)."""

    ttl: Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=3650 * 86400.0)] = 30 * 86400.0
    """How long a kept response lives (for `previous_response_id` and `GET /v1/responses/{id}`)."""


class LedgerConfig(_Section):
    """The durable ledger (proxy/ledger): every usage record copied into PostgreSQL by a background writer."""

    backend: Literal["postgres"] = "postgres"
    """The database the ledger is copied into (PostgreSQL, through asyncpg: the `postgres` extra)."""
    url: str
    """The database URL (`postgresql://user@host:5432/db`), usually `${DATABASE_URL}`."""
    retention: Duration = 400 * 86400.0
    """Records older than this are dropped (whole months at a time)."""
    migrate_on_start: bool = False
    """Apply the package's schema migrations when the gateway starts (else run `efflux-gateway migrate`)."""
    journal: str = "efflux-ledger-journal"
    """With the memory store, records wait in `<journal>.jsonl` while PostgreSQL is away."""
    journal_bytes: PositiveInt = 256 * 1024 * 1024
    """The journal's bound; past it, new records stay only in the memory store's own ledger (counted and
    logged)."""


class Settings(_Section):
    """The whole file."""

    server: ServerConfig = ServerConfig()
    """The listener, the admin token, client bounds."""
    store: StoreConfig = StoreConfig()
    """Where state lives (memory or Redis)."""
    secrets: SecretsConfig = SecretsConfig()
    """The vault's master keys and the key-digest secret."""
    features: FeaturesConfig = FeaturesConfig()
    """Switches for whole features."""
    providers: dict[str, ProviderConfig] = {}
    """The upstreams, by a name of your choice."""
    models: dict[str, RouteConfig] = {}
    """The routing table: model names (or globs) clients may ask for."""
    pricing: PricingConfig = PricingConfig()
    """Model prices."""
    keys: list[KeyConfig] = []
    """Virtual keys defined in the file (more can be created through the admin API)."""
    tenants: dict[str, TenantConfig] = {}
    """Tenants' budgets, limits and alerts, by tenant name."""
    metering: MeteringConfig = MeteringConfig()
    """Reservation and settlement of usage."""
    upstream: UpstreamConfig = UpstreamConfig()
    """Bounds on what any provider may send back."""
    alerts: OperatorAlertsConfig = OperatorAlertsConfig()
    """The operator's webhook for events that belong to no tenant."""
    telemetry: TelemetryConfig = TelemetryConfig()
    """Tracing options (OpenTelemetry, configured by the OTEL_* variables)."""
    responses: ResponsesConfig = ResponsesConfig()
    """The Responses API's kept responses."""
    ledger: LedgerConfig | None = None
    """The durable ledger in PostgreSQL (unset: the store's ledger only)."""
    # Where the file was read from; relative paths inside it (pricing.file) resolve against it.
    base_dir: str = Field(default=".", exclude=True)

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        problems = reference_problems(
            self.providers,
            (
                (name, i, t.provider)
                for name, route in self.models.items()
                for i, t in enumerate(route.targets)
            ),
            ((i, key.name, key.key) for i, key in enumerate(self.keys)),
        )
        if problems:
            raise CrossReferenceError(problems)
        return self


def reference_problems(
    providers: Collection[str],
    targets: Iterable[tuple[str, int, object]],
    keys: Iterable[tuple[int, object, object]],
) -> list[str]:
    """What the sections say about each other: every route target names a configured provider, key
    names and secrets are unique. Also run on a file that failed validation elsewhere (with what of it
    could be read), so that ``check`` reports a misspelt provider beside an unknown key."""
    problems: list[str] = []
    for name, i, provider in targets:
        if isinstance(provider, str) and provider not in providers:
            problems.append(
                f"models.{name}.targets[{i}].provider: unknown provider {provider!r}"
                + _suggest(provider, providers)
            )
    seen_names: set[str] = set()
    seen_keys: set[str] = set()
    for i, key_name, secret in keys:
        if isinstance(key_name, str):
            if key_name in seen_names:
                problems.append(f"keys[{i}].name: duplicate key name {key_name!r}")
            seen_names.add(key_name)
        if isinstance(secret, str):
            if secret in seen_keys:
                problems.append(f"keys[{i}].key: the same secret is used by two keys")
            seen_keys.add(secret)
    return problems


class CrossReferenceError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _suggest(word: str, choices: Collection[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
