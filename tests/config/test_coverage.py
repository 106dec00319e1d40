"""No decorative settings: every setting of the config schema has a test showing it changes behaviour.

The schema (``proxy.config.schema``) is walked for every setting path: ``server.write_timeout``,
``providers.*.timeouts.idle`` (``*``: any name of a mapping), ``keys[].limits.rpm`` (``[]``: any item of a
list). ``COVERAGE`` below maps each path to the tests that show it at work: tests that set it and fail when
its effect is removed, not tests that merely parse it. The tests here fail for
- a setting without an entry (a new setting needs a behaviour test and a line here);
- an entry naming no setting (a setting renamed or removed);
- an entry whose test does not exist (``pytest --collect-only`` on the files named; a node id without
  ``[...]`` stands for every parametrization of its test);
- a setting named in README's configuration reference (or anywhere in README as ``section.key``) that the
  schema does not have.

Adding a setting: one line ``<setting path> <node id under tests/>`` in ``COVERAGE`` per test that shows
it (a setting shown by several tests has several lines; where the pair is too long for one line, the
setting alone, then the node id on the next line, indented).
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from proxy.config import Settings

ROOT = Path(__file__).resolve().parents[2]

COVERAGE = """
server.host cli/test_serve.py::test_serve_listens_on_the_configured_host_and_port
server.port cli/test_serve.py::test_serve_listens_on_the_configured_host_and_port
server.max_body_bytes config/test_effects.py::test_server_max_body_bytes_refuses_a_larger_body
server.max_sse_event_bytes upstream/test_event_bound.py::test_before_the_first_event_the_client_gets_502
server.max_sse_event_bytes
    upstream/test_event_bound.py::test_after_the_first_event_the_stream_ends_with_an_error_event
server.admin_token admin/test_admin_keys.py::test_a_virtual_key_cannot_reach_admin_nor_make_keys
server.admin_token admin/test_admin_keys.py::test_create_use_list_update_revoke
server.access_log config/test_effects.py::test_server_access_log_switches_the_access_line
server.header_timeout edge/test_connections.py::test_a_head_sent_line_by_line_is_cut_after_the_header_timeout
server.header_timeout
    edge/test_client_connections.py::test_a_slow_head_is_cut_after_the_header_timeout_however_often_lines_arrive
server.keepalive_timeout
    edge/test_connections.py::test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout
server.max_connections
    edge/test_connections.py::test_past_the_cap_the_least_recently_active_idle_connection_makes_room
server.max_connections edge/test_connections.py::test_with_every_connection_busy_a_new_one_is_refused_at_once
server.trusted_proxies ui/test_proxied.py::test_behind_a_trusted_proxy_login_works_and_the_cookie_is_secure
server.trusted_proxies ui/test_proxied.py::test_forwarded_headers_from_an_untrusted_peer_are_ignored
server.runtime_env_allowlist admin/test_providers.py::test_only_allowed_environment_variables_can_be_named
server.max_concurrency resilience/test_overload.py::test_past_the_cap_a_fast_503
server.max_concurrency resilience/test_process.py::test_stalled_readers_are_closed_and_free_their_slots
server.body_timeout resilience/test_overload.py::test_a_trickled_body_times_out
server.write_timeout resilience/test_process.py::test_stalled_readers_are_closed_and_free_their_slots
server.shutdown_delay resilience/test_process.py::test_sigterm_finishes_50_streams_meters_them_and_exits_0
server.drain_timeout resilience/test_process.py::test_sigterm_cuts_streams_still_running_after_drain_timeout
server.retry_budget.ratio resilience/test_faults.py::test_each_retry_budget_setting[ratio]
server.retry_budget.ratio routing/test_balance.py::test_retry_budget_allows_a_fifth_of_requests_plus_the_floor
server.retry_budget.min_per_second resilience/test_faults.py::test_each_retry_budget_setting[min_per_second]
server.retry_budget.min_per_second
    routing/test_balance.py::test_retry_budget_allows_a_fifth_of_requests_plus_the_floor
server.retry_budget.burst resilience/test_faults.py::test_each_retry_budget_setting[burst]
server.retry_budget.burst resilience/test_faults.py::test_the_retry_budget_stops_fallbacks
server.watch_config services/test_reload.py::test_sighup_and_file_watch
server.max_upload_bytes
    dataplane/test_passthrough.py::test_server_max_upload_bytes_bounds_an_upload_not_the_body_limit
store.backend e2e/test_redis_workers.py::test_workers_are_refused_with_the_memory_store
store.backend e2e/test_tenants_redis.py::test_api_writes_survive_a_restart
store.url e2e/test_tenants_redis.py::test_api_writes_survive_a_restart
store.cluster e2e/test_redis_limits.py::test_budget_race[cluster]
store.timeout e2e/test_redis_outage_e2e.py::test_redis_killed_and_frozen_under_traffic
store.timeout store/test_redis_outage.py::test_a_frozen_redis_fails_fast_on_the_first_connection
store.on_outage e2e/test_redis_outage_e2e.py::test_redis_killed_and_frozen_under_traffic
store.prefix e2e/test_redis_limits.py::test_budget_race
store.journal store/test_journal.py::test_open_store_journals_where_store_journal_says
store.memory_ledger_records store/test_ledger_bounds.py::test_memory_ledger_records_bounds_the_memory_ledger
store.ledger_stream_records store/test_ledger_bounds.py::test_ledger_stream_records_trims_each_tenant_stream
secrets.master_keys admin/test_admin_tenants.py::test_without_master_keys_the_vault_refuses_writes
secrets.master_keys tenancy/test_vault.py::test_first_key_seals_all_keys_open_and_rewrap_moves_to_the_first
secrets.key_secret e2e/test_tenants_redis.py::test_api_writes_survive_a_restart
secrets.key_secret tenancy/test_vault.py::test_startup_refuses_missing_short_or_malformed_secrets
features.aggregators services/test_reload.py::test_aggregators_switch_off_and_back_by_reload
providers.*.plugin e2e/test_anthropic_sdk.py::test_non_stream_reply
providers.*.plugin plugins/test_openai_compatible.py::test_package_module_class
providers.*.api_key config/test_effects.py::test_providers_api_key_is_sent_upstream
providers.*.base_url resilience/test_faults.py::test_connect_timeout_fires_and_falls_back
providers.*.headers config/test_effects.py::test_providers_headers_are_sent_upstream
providers.*.enabled config/test_effects.py::test_a_disabled_provider_serves_nothing
providers.*.byok tenancy/test_isolation.py::test_byok_required_and_never
providers.*.timeouts.connect resilience/test_faults.py::test_connect_timeout_fires_and_falls_back
providers.*.timeouts.first_byte resilience/test_faults.py::test_each_provider_timeout_fires_alone[first_byte]
providers.*.timeouts.idle resilience/test_faults.py::test_each_provider_timeout_fires_alone[idle]
providers.*.timeouts.total resilience/test_faults.py::test_each_provider_timeout_fires_alone[total]
providers.*.breaker.failures resilience/test_faults.py::test_breaker_failures_is_how_many_faults_open_it
providers.*.breaker.failures resilience/test_breaker.py::test_consecutive_failures_open_and_a_probe_closes
providers.*.breaker.failures resilience/test_breaker.py::test_a_503_storm_opens_the_breaker_and_a_recovers
providers.*.breaker.cooldown resilience/test_breaker.py::test_consecutive_failures_open_and_a_probe_closes
providers.*.breaker.cooldown resilience/test_breaker.py::test_a_503_storm_opens_the_breaker_and_a_recovers
providers.*.sync.every services/test_replicas.py::test_a_schedule_runs_one_sync_per_period_across_replicas
providers.*.sync.grace services/test_sync.py::test_removed_model_stops_routing_after_grace
providers.*.sync.timeout services/test_sync_failures.py::test_failed_sync_keeps_catalogue_and_alerts
providers.*.proxy upstream/test_egress_e2e.py::test_a_stream_through_a_connect_proxy_to_a_private_ca_upstream
providers.*.tls.ca_file upstream/test_tls_settings.py::test_system_ca_false_trusts_the_private_ca_alone
providers.*.tls.ca_file
    upstream/test_egress_e2e.py::test_a_stream_through_a_connect_proxy_to_a_private_ca_upstream
providers.*.tls.system_ca upstream/test_tls_settings.py::test_system_ca_false_trusts_the_private_ca_alone
providers.*.tls.cert_file upstream/test_tls_settings.py::test_a_client_certificate_from_cert_file_and_key_file
providers.*.tls.key_file upstream/test_tls_settings.py::test_a_client_certificate_from_cert_file_and_key_file
providers.*.max_response_bytes
    upstream/test_bounds_settings.py::test_a_providers_own_max_response_bytes_wins_over_the_upstream_default
providers.*.pricing_unknown metering/test_unpriced.py::test_the_provider_setting_beats_the_global_one
providers.*.api_version e2e/test_cloud_providers_sdk.py::test_azure_json_through_the_deployment_path
providers.*.api_version plugins/test_azure.py::test_a_bad_api_version_is_a_config_error
providers.*.entra_token
    e2e/test_cloud_providers_sdk.py::test_azure_stream_through_the_v1_path_with_an_entra_token
providers.*.region e2e/test_cloud_providers_sdk.py::test_bedrock_json
providers.*.region plugins/test_bedrock.py::test_the_region_is_required
providers.*.aws_access_key_id e2e/test_cloud_providers_sdk.py::test_bedrock_json
providers.*.aws_secret_access_key e2e/test_cloud_providers_sdk.py::test_bedrock_json
providers.*.aws_session_token e2e/test_cloud_providers_sdk.py::test_bedrock_json
models.*.targets[].provider resilience/test_faults.py::test_server_fault_before_the_first_byte_falls_back
models.*.targets[].provider routing/test_routing.py::test_explicit_target_model_wins
models.*.targets[].model routing/test_routing.py::test_explicit_target_model_wins
models.*.targets[].priority routing/test_routing.py::test_lower_priority_first_whatever_the_list_order
models.*.targets[].weight routing/test_routing.py::test_weights_from_yaml_reach_the_order
models.*.targets[].deployment e2e/test_cloud_providers_sdk.py::test_azure_json_through_the_deployment_path
models.*.targets[].deployment plugins/test_azure.py::test_a_deployment_needs_a_provider_with_deployments
models.*.strategy routing/test_balance.py::test_least_busy_prefers_fewer_in_flight_within_a_priority
models.*.strategy routing/test_balance.py::test_lowest_latency_and_weighted
models.*.timeouts.connect dataplane/test_spine.py::test_a_route_timeout_replaces_the_providers[connect]
models.*.timeouts.first_byte dataplane/test_spine.py::test_a_route_timeout_replaces_the_providers[first_byte]
models.*.timeouts.first_byte resilience/test_faults.py::test_route_timeouts_override_the_providers
models.*.timeouts.idle dataplane/test_spine.py::test_a_route_timeout_replaces_the_providers[idle]
models.*.timeouts.idle resilience/test_faults.py::test_route_timeouts_override_the_providers_midstream[idle]
models.*.timeouts.total dataplane/test_spine.py::test_a_route_timeout_replaces_the_providers[total]
models.*.timeouts.total resilience/test_faults.py::test_route_timeouts_override_the_providers_midstream[total]
pricing.file metering/test_pricing.py::test_inline_prices_beat_the_file
pricing.file metering/test_pricing.py::test_a_missing_pricing_file
pricing.default.input metering/test_pricing.py::test_price_fields_from_yaml[default-input]
pricing.default.output metering/test_pricing.py::test_price_fields_from_yaml[default-output]
pricing.default.cached_input metering/test_pricing.py::test_price_fields_from_yaml[default-cached_input]
pricing.default.cache_write metering/test_pricing.py::test_price_fields_from_yaml[default-cache_write]
pricing.default.context_length metering/test_pricing.py::test_price_fields_from_yaml[default-context_length]
pricing.default.image_tokens
    metering/test_reservations.py::test_each_reserve_setting_from_the_config_moves_the_worst_case[pricing.default.image_tokens]
pricing.models.*.input metering/test_pricing.py::test_price_fields_from_yaml[models-input]
pricing.models.*.output metering/test_pricing.py::test_price_fields_from_yaml[models-output]
pricing.models.*.cached_input metering/test_pricing.py::test_price_fields_from_yaml[models-cached_input]
pricing.models.*.cache_write metering/test_pricing.py::test_price_fields_from_yaml[models-cache_write]
pricing.models.*.context_length metering/test_pricing.py::test_price_fields_from_yaml[models-context_length]
pricing.models.*.image_tokens
    metering/test_reservations.py::test_each_reserve_setting_from_the_config_moves_the_worst_case[pricing.models.vision.image_tokens]
pricing.unknown metering/test_unpriced.py::test_refuse_is_the_default_and_answers_400
pricing.unknown
    metering/test_unpriced.py::test_allow_serves_records_none_and_estimated_counts_and_alerts_once_per_model
pricing.unknown metering/test_unpriced.py::test_the_provider_setting_beats_the_global_one
pricing.default.per_image metering/test_units.py::test_unit_price_fields_from_yaml[default-per_image]
pricing.default.per_second metering/test_units.py::test_unit_price_fields_from_yaml[default-per_second]
pricing.default.per_million_characters
    metering/test_units.py::test_unit_price_fields_from_yaml[default-per_million_characters]
pricing.default.per_search metering/test_units.py::test_unit_price_fields_from_yaml[default-per_search]
pricing.models.*.per_image metering/test_units.py::test_unit_price_fields_from_yaml[models-per_image]
pricing.models.*.per_second metering/test_units.py::test_unit_price_fields_from_yaml[models-per_second]
pricing.models.*.per_million_characters
    metering/test_units.py::test_unit_price_fields_from_yaml[models-per_million_characters]
pricing.models.*.per_search metering/test_units.py::test_unit_price_fields_from_yaml[models-per_search]
keys[].name config/test_effects.py::test_keys_key_name_and_tenant
keys[].key config/test_effects.py::test_keys_key_name_and_tenant
keys[].tenant config/test_effects.py::test_keys_key_name_and_tenant
keys[].tenant tenancy/test_isolation.py::test_a_tenant_cannot_reach_another_tenants_data
keys[].models config/test_effects.py::test_keys_models_globs_limit_what_a_key_may_call
keys[].limits.rpm config/test_effects.py::test_limits_and_budgets_from_yaml_refuse_past_them[key-rpm]
keys[].limits.rpm e2e/test_redis_limits.py::test_rpm_across_processes
keys[].limits.tpm config/test_effects.py::test_limits_and_budgets_from_yaml_refuse_past_them[key-tpm]
keys[].budget.usd config/test_effects.py::test_limits_and_budgets_from_yaml_refuse_past_them[key-budget]
keys[].budget.usd e2e/test_redis_limits.py::test_budget_race
keys[].budget.period config/test_effects.py::test_budget_periods_from_yaml
tenants.*.budget.usd config/test_effects.py::test_limits_and_budgets_from_yaml_refuse_past_them[tenant-budget]
tenants.*.budget.period config/test_effects.py::test_budget_periods_from_yaml
tenants.*.limits.rpm config/test_effects.py::test_limits_and_budgets_from_yaml_refuse_past_them[tenant-rpm]
tenants.*.limits.tpm config/test_effects.py::test_limits_and_budgets_from_yaml_refuse_past_them[tenant-tpm]
tenants.*.alerts.at config/test_effects.py::test_tenant_alerts_at_and_webhook
tenants.*.alerts.webhook config/test_effects.py::test_tenant_alerts_at_and_webhook
tenants.*.alerts.webhook e2e/test_redis_limits.py::test_one_webhook_per_threshold
metering.default_max_tokens config/test_effects.py::test_metering_default_max_tokens_is_the_reserved_output
metering.on_client_disconnect resilience/test_disconnect.py::test_client_disconnects_are_metered_once
metering.drain_timeout config/test_effects.py::test_metering_drain_timeout_bounds_the_wait_for_usage
metering.reserve.image_tokens
    metering/test_reservations.py::test_each_reserve_setting_from_the_config_moves_the_worst_case[metering.reserve.image_tokens]
metering.reserve.audio_bytes_per_token
    metering/test_reservations.py::test_each_reserve_setting_from_the_config_moves_the_worst_case[metering.reserve.audio_bytes_per_token]
metering.reserve.file_bytes_per_token
    metering/test_reservations.py::test_each_reserve_setting_from_the_config_moves_the_worst_case[metering.reserve.file_bytes_per_token]
upstream.max_response_bytes
    upstream/test_bounds_settings.py::test_each_upstream_bound_from_the_config[max_response_bytes]
upstream.max_response_bytes
    upstream/test_bounds_settings.py::test_a_providers_own_max_response_bytes_wins_over_the_upstream_default
upstream.max_response_bytes
    upstream/test_bounds_gateway.py::test_a_json_answer_past_max_response_bytes_is_a_502_naming_the_provider
upstream.max_head_bytes
    upstream/test_bounds_settings.py::test_each_upstream_bound_from_the_config[max_head_bytes]
upstream.max_informational
    upstream/test_bounds_settings.py::test_each_upstream_bound_from_the_config[max_informational]
upstream.max_decompression_ratio
    upstream/test_bounds_settings.py::test_each_upstream_bound_from_the_config[max_decompression_ratio]
alerts.webhook metering/test_operator_alerts.py::test_a_provider_down_is_posted_once_and_signed
alerts.webhook metering/test_operator_alerts_replicas.py::test_three_replicas_post_each_operator_alert_once
alerts.on metering/test_operator_alerts.py::test_on_chooses_the_events_posted
alerts.on metering/test_operator_alerts.py::test_budget_copies_follow_on
alerts.secret metering/test_operator_alerts.py::test_without_a_secret_nothing_is_signed
alerts.secret metering/test_operator_alerts.py::test_a_provider_down_is_posted_once_and_signed
alerts.ledger_lag_threshold
    metering/test_operator_alerts.py::test_ledger_lag_past_the_threshold_is_posted_once_per_episode
telemetry.capture_content observe/test_tracing.py::test_capture_content_records_the_messages_clipped
responses.ttl responses/test_kept.py::test_responses_ttl_is_the_kept_responses_expiry_in_redis
ledger.backend ledger/test_gateway.py::test_reads_come_from_postgres
ledger.url ledger/test_gateway.py::test_reads_come_from_postgres
ledger.url ledger/test_ledger_replicas.py::test_three_replicas_copy_every_record_once_through_a_postgres_crash
ledger.retention ledger/test_settings.py::test_retention_drops_records_older_than_it
ledger.migrate_on_start
    ledger/test_settings.py::test_migrate_on_start_creates_the_schema_and_without_it_the_gateway_waits_for_it
ledger.journal
    ledger/test_ledger_journal.py::test_records_settled_while_postgres_is_down_are_journaled_then_stored
ledger.journal_bytes ledger/test_ledger_journal.py::test_past_journal_bytes_records_are_dropped_and_counted
"""


def coverage() -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    path = ""
    for line in COVERAGE.strip().splitlines():
        if line.startswith(" "):  # another test for the setting above (a line too long for one)
            nodes = line.split()
        else:
            path, *nodes = line.split()
            table.setdefault(path, [])
        table[path].extend(f"tests/{node}" for node in nodes)
    return table


# -- the schema's settings --------------------------------------------------------------------------------


def _section(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: object) -> object:
    """``X | None`` and ``Annotated[X, ...]`` are X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _inner(annotation: object) -> tuple[str, type[BaseModel]] | None:
    """For a section, a list of sections or a mapping of sections: the path step and the section."""
    annotation = _unwrap(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and _section(args[0]):
        return "[]", typing.cast(type[BaseModel], args[0])
    if origin is dict and _section(args[1]):
        return ".*", typing.cast(type[BaseModel], args[1])
    section = _section(annotation)
    return ("", section) if section else None


def settings_paths(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """Every setting's path; fields excluded from the YAML (``Settings.base_dir``) are not settings."""
    paths: list[str] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        inner = _inner(field.annotation)
        if inner is None:
            paths.append(prefix + name)
        else:
            step, section = inner
            paths.extend(settings_paths(section, f"{prefix}{name}{step}."))
    return paths


def normalise(dotted: str, model: type[BaseModel] = Settings) -> str | None:
    """A path as documents write it (``providers.<name>.timeouts``, ``models.X.targets[1].provider``,
    ``keys[]``) in the table's form, or None if the schema has no such setting or section."""
    out: list[str] = []
    steps = dotted.split(".")
    i = 0
    section: type[BaseModel] | None = model
    while i < len(steps):
        if section is None:
            return None  # a step past a plain setting
        match = re.fullmatch(r"(\w+)(\[\d*\])?", steps[i])
        if match is None or match.group(1) not in section.model_fields:
            return None
        name, indexed = match.groups()
        inner = _inner(section.model_fields[name].annotation)
        i += 1
        if inner is None:
            out.append(name)
            section = None
            continue
        step, section = inner
        if step == ".*":
            if indexed:
                return None
            if i == len(steps):
                out.append(name)  # the mapping itself
                break
            out.append(name + ".*")
            i += 1  # the name of the entry: a provider, a route, a tenant, a model
        else:
            out.append(name + step)
    return ".".join(out)


# -- README -----------------------------------------------------------------------------------------------

SECTIONS = tuple(Settings.model_fields)


def _split_top(text: str, separator: str = ",") -> list[str]:
    """Split at ``separator`` outside backticks, parentheses, braces and brackets."""
    parts, depth, code, current = [], 0, False, ""
    for char in text:
        if char == "`":
            code = not code
        elif not code and char in "([{":
            depth += 1
        elif not code and char in ")]}":
            depth -= 1
        if char == separator and depth == 0 and not code:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def spec_paths(spec: str, prefix: str = "") -> list[str]:
    """The settings a code span names: ``a.b``, ``a: value``, ``a: {b, c: 1}``, ``a: [{b, c}]``."""
    name, _, value = spec.partition(":")
    name, value = name.strip(), value.strip()
    path = f"{prefix}.{name}" if prefix else name
    path = re.sub(r"<[^>]*>|\bX\b", "NAME", path)  # ``providers.<name>``, ``models.X``
    if not re.match(r"[A-Za-z_<]", name) or not re.fullmatch(r"[A-Za-z_][\w.\[\]/-]*", path):
        return []  # a value (``0.5``), not a setting
    if value.startswith("[{") and value.endswith("}]"):
        return [p for item in _split_top(value[2:-2]) for p in spec_paths(item, path + "[]")]
    if value.startswith("{") and value.endswith("}"):
        return [p for item in _split_top(value[1:-1]) for p in spec_paths(item, path)]
    return [path]


def readme_settings(readme: str) -> list[str]:
    """Settings named by the README: each key of the configuration reference table (a cell is a list of
    entries, each opening with a code span), and every code span elsewhere that starts with a section."""
    reference = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    found: list[str] = []
    for line in reference.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        section = cells[0].strip("`")
        for entry in _split_top(cells[1]):
            entry = entry.strip()
            if entry.startswith("`"):
                found.extend(spec_paths(entry.split("`")[1], section))
    for span in re.findall(r"`([^`\n]+)`", readme):
        if re.match(rf"({'|'.join(SECTIONS)})[.\[]", span):
            found.extend(spec_paths(span))
    return found


# -- the tests --------------------------------------------------------------------------------------------


def test_every_setting_has_a_behaviour_test() -> None:
    missing = [p for p in settings_paths() if p not in coverage()]
    assert not missing, f"settings without a behaviour test in COVERAGE: {missing}"


def test_every_entry_names_a_setting() -> None:
    known = set(settings_paths())
    assert sorted(set(coverage()) - known) == []
    assert all(coverage().values()), "an entry without a test"


@pytest.mark.e2e  # pytest's collection, as a process
def test_every_listed_test_exists() -> None:
    nodes = {node for nodes in coverage().values() for node in nodes}
    files = sorted({node.split("::")[0] for node in nodes})
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    ids = {line.strip() for line in collected if "::" in line}
    functions = {i.split("[", 1)[0] for i in ids}
    absent = sorted(n for n in nodes if n not in ids and n not in functions)
    assert not absent, f"COVERAGE names tests that do not exist: {absent}"


def test_every_setting_the_readme_names_is_in_the_schema_and_covered() -> None:
    named = readme_settings((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(named) > 40, "the README's configuration reference was not found"
    table = coverage()
    unknown, uncovered = [], []
    for setting in named:
        path = normalise(setting.replace("NAME", "x"))
        if path is None:
            unknown.append(setting)
        elif not any(p == path or p.startswith((path + ".", path + "[")) for p in table):
            uncovered.append(path)
    assert not unknown, f"README names settings the schema does not have: {unknown}"
    assert not uncovered, f"README's settings without a line in COVERAGE: {uncovered}"


def test_the_checks_can_fail() -> None:
    """The walk and the README parsing find what they must (so the tests above are not vacuous)."""
    paths = settings_paths()
    assert {"server.write_timeout", "providers.*.timeouts.idle", "models.*.targets[].weight"} <= set(paths)
    assert "keys[].budget.period" in paths and "base_dir" not in paths
    assert normalise("models.gpt-4o.targets[1].provider") == "models.*.targets[].provider"
    assert normalise("providers.x.timeouts") == "providers.*.timeouts"
    assert normalise("server.no_such_setting") is None
    assert spec_paths("timeouts: {connect, first_byte}", "providers.<name>") == [
        "providers.NAME.timeouts.connect",
        "providers.NAME.timeouts.first_byte",
    ]
    assert spec_paths("alerts: {at: [0.5, 0.8], webhook}", "tenants.<name>") == [
        "tenants.NAME.alerts.at",
        "tenants.NAME.alerts.webhook",
    ]
