-- The text keys of the mart tables compare in byte order (COLLATE "C"), the order the loader streams rows in
-- and the order of the load's content check (serving.mart_checksum: COPY ... ORDER BY key, text keys
-- COLLATE "C"). With the database's default collation (C.UTF-8 locally, en_US.utf8 on Azure) the primary-key
-- index could not serve that order and every check sorted the whole window (2-3 s of a 627,500-row
-- backfill); in byte order it reads the index. Tickers are ASCII: queries see the same rows, and ORDER BY
-- symbol gives byte order (BRK.B before BRKA) where a locale would ignore the dot. Equality with columns
-- of the default collation is unchanged (the non-default collation wins, no conflict). No table rewrite:
-- only the indexes on symbol are rebuilt.

ALTER TABLE mart.dim_security ALTER COLUMN symbol TYPE text COLLATE "C";
ALTER TABLE mart.daily_prices ALTER COLUMN symbol TYPE text COLLATE "C";
ALTER TABLE mart.monthly_performance ALTER COLUMN symbol TYPE text COLLATE "C";
ALTER TABLE mart.latest_quotes ALTER COLUMN symbol TYPE text COLLATE "C";
