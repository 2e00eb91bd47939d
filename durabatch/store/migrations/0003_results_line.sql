-- Results keep the provider's result line exactly as it arrived (JSON text, never decoded), so
-- that content jsonb cannot hold - \u0000, lone surrogates, numbers beyond numeric's range or
-- precision - is stored and read back unchanged. `text` holds the 6-character escape `\u0000`
-- because the line is stored as the provider wrote it. `body` (jsonb) stays for rows written
-- before this migration; new rows leave it NULL and readers take the body from `line`.
ALTER TABLE results ADD COLUMN line text;

-- No foreign key from results to batches: its check is a trigger per row, a third of the cost of
-- writing results, and no query needs it. Ingest writes results only for requests of a shard,
-- which exist only under their batch; whoever deletes a batch deletes its results too.
ALTER TABLE results DROP CONSTRAINT IF EXISTS results_batch_id_fkey;
