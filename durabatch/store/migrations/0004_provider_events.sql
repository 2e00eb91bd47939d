-- Provider webhook deliveries that have been turned into a signal. Providers deliver at least
-- once (OpenAI retries for up to 72 h, Gemini for 24 h): a delivery whose event id is here was
-- handled already and is acknowledged without signalling again.
CREATE TABLE provider_events (
    provider    text NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    provider_batch_id text NOT NULL,
    batch_id    text,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- A delivery names the provider's batch id; this finds its batch without a scan.
CREATE INDEX provider_batches_provider_batch_idx ON provider_batches (provider, provider_batch_id);
