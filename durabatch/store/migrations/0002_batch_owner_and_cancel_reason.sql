-- The run that owns a batch id (the first run id of its workflow's chain: continue-as-new keeps
-- it), so a second start with the same batch_id is refused instead of reusing the first one's
-- rows; and the reason a cancel was asked for.
ALTER TABLE batches ADD COLUMN owner_run_id text;
ALTER TABLE batches ADD COLUMN cancel_reason text;
