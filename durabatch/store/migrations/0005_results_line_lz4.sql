-- A result line is the provider's whole JSON line (4 KB and more with long answers), so most of
-- them are TOASTed. PostgreSQL's default pglz compression was most of the cost of writing them:
-- 50,000 lines of 4 KB took 1.1 s of the server's CPU in COPY with pglz, 0.4 s with lz4
-- (PostgreSQL 15). lz4 needs a server built with it (PostgreSQL >= 14, `--with-lz4`; the
-- official images and distribution packages are); elsewhere the column keeps the default and
-- the migration still succeeds. Existing rows keep the compression they were written with.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE results ALTER COLUMN line SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'results.line keeps the default compression: this server has no lz4';
END
$$;
