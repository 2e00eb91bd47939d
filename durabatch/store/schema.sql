-- durabatch schema, version 1. Forward-only: later changes go in new numbered files.
-- Every table that refers to a batch or a request names the columns batch_id and custom_id,
-- so operators can join them directly.

CREATE TABLE batches (
    batch_id              text PRIMARY KEY,
    workflow_id           text NOT NULL,
    provider              text NOT NULL,
    endpoint              text NOT NULL,
    model                 text,
    status                text NOT NULL DEFAULT 'pending',
    request_count         integer NOT NULL DEFAULT 0,
    succeeded_count       integer NOT NULL DEFAULT 0,
    failed_count          integer NOT NULL DEFAULT 0,
    expired_count         integer NOT NULL DEFAULT 0,
    cancelled_count       integer NOT NULL DEFAULT 0,
    input_tokens          bigint NOT NULL DEFAULT 0,
    output_tokens         bigint NOT NULL DEFAULT 0,
    cached_tokens         bigint NOT NULL DEFAULT 0,
    cost_usd              numeric(18, 8),
    cost_unknown_count    integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    submitted_at          timestamptz,
    ended_at              timestamptz,
    results_fetched_at    timestamptz,
    handler_dispatched_at timestamptz,
    failure_reason        text,
    owner_run_id          text,
    cancel_reason         text,
    metadata              jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX batches_status_idx ON batches (status);

CREATE TABLE provider_batches (
    batch_id          text NOT NULL REFERENCES batches (batch_id) ON DELETE CASCADE,
    shard             integer NOT NULL,
    round             integer NOT NULL,
    provider          text NOT NULL,
    tag               text NOT NULL,
    provider_batch_id text,
    input_file_id     text,
    output_file_id    text,
    error_file_id     text,
    provider_status   text,
    request_count     integer NOT NULL DEFAULT 0,
    attempt_started_at timestamptz NOT NULL DEFAULT now(),
    submitted_at      timestamptz,
    ended_at          timestamptz,
    ingested_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (batch_id, shard, round)
);
CREATE INDEX provider_batches_provider_batch_idx ON provider_batches (provider, provider_batch_id);

-- Provider webhook deliveries already turned into a signal (deduplicated on the event id).
CREATE TABLE provider_events (
    provider    text NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    provider_batch_id text NOT NULL,
    batch_id    text,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE requests (
    batch_id   text NOT NULL REFERENCES batches (batch_id) ON DELETE CASCADE,
    custom_id  text NOT NULL,
    line_no    integer NOT NULL,
    shard      integer NOT NULL DEFAULT 0,
    round      integer NOT NULL DEFAULT 0,
    body       jsonb NOT NULL,
    byte_size  integer NOT NULL,
    status     text NOT NULL DEFAULT 'pending',
    attempts   integer NOT NULL DEFAULT 0,
    UNIQUE (batch_id, custom_id)
);
CREATE INDEX requests_shard_idx ON requests (batch_id, shard, round, line_no);

CREATE TABLE results (
    -- no foreign key to batches: a trigger per written row, and no query needs it (0003)
    batch_id      text NOT NULL,
    custom_id     text NOT NULL,
    round         integer NOT NULL DEFAULT 0,
    outcome       text NOT NULL,
    status_code   integer,
    body          jsonb,
    error         jsonb,
    input_tokens  integer NOT NULL DEFAULT 0,
    output_tokens integer NOT NULL DEFAULT 0,
    cached_tokens integer NOT NULL DEFAULT 0,
    cost_usd      numeric(18, 10),
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    -- the provider's result line exactly as received (0003); body is only set on older rows
    line          text,
    UNIQUE (batch_id, custom_id, round)
);
-- lz4 where the server has it: pglz was most of the cost of writing 4 KB lines (0005)
DO $$
BEGIN
    EXECUTE 'ALTER TABLE results ALTER COLUMN line SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    NULL;
END
$$;

CREATE TABLE handler_deliveries (
    batch_id     text NOT NULL REFERENCES batches (batch_id) ON DELETE CASCADE,
    handler_index integer NOT NULL,
    handler_type text NOT NULL,
    status       text NOT NULL DEFAULT 'pending',
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    succeeded_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (batch_id, handler_index)
);

CREATE TABLE smoke_checks (
    id         bigserial PRIMARY KEY,
    note       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
