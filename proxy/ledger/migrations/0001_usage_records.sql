-- The ledger: one row per admitted request (proxy/store/records.py names the fields).
-- Partitioned by month of started_at; the writer creates partitions ahead (proxy/ledger/postgres.py), and
-- a record outside every month partition lands in the default one. A partitioned table's unique key must
-- hold the partition key: (request_id, started_at) is unique per request, as a record is never changed
-- and a replay carries the same started_at.
-- A record field without a column yet is kept in "extra" until a later migration adds the column.
CREATE TABLE usage_records (
    request_id text NOT NULL,
    key text NOT NULL,
    tenant text NOT NULL,
    model text NOT NULL,
    provider text NOT NULL,
    upstream_model text NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cached_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    cost_micro_usd bigint NOT NULL,
    provider_cost_micro_usd bigint,
    latency_ms bigint NOT NULL,
    ttfb_ms bigint,
    outcome text NOT NULL,
    estimated boolean NOT NULL,
    started_at timestamptz NOT NULL,
    endpoint text NOT NULL,
    status integer NOT NULL,
    attempts integer NOT NULL,
    client_request_id text,
    price_source text,
    unit text,
    units bigint NOT NULL DEFAULT 0,
    extra jsonb,
    PRIMARY KEY (request_id, started_at)
) PARTITION BY RANGE (started_at);

CREATE TABLE usage_records_default PARTITION OF usage_records DEFAULT;

CREATE INDEX usage_records_started ON usage_records (started_at, request_id);
CREATE INDEX usage_records_tenant ON usage_records (tenant, started_at);
CREATE INDEX usage_records_key ON usage_records (key, started_at);
CREATE INDEX usage_records_model ON usage_records (model, started_at);
CREATE INDEX usage_records_provider ON usage_records (provider, started_at);
CREATE INDEX usage_records_client_request ON usage_records (client_request_id) WHERE client_request_id IS NOT NULL;
