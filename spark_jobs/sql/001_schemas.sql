-- Schemas of the serving database.
--   mart     the tables BI users query, loaded from gold by spark_jobs.serving
--   ops      the local ops store: load audit, data-quality results, pipeline runs
--   staging  UNLOGGED tables a load streams into with COPY before its swap transaction

CREATE SCHEMA IF NOT EXISTS mart;
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS staging;

COMMENT ON SCHEMA mart IS 'Analytics marts loaded from the gold Delta tables; one load replaces one window atomically.';
COMMENT ON SCHEMA ops IS 'Operations store: load audit, data-quality results, pipeline and activity runs.';
COMMENT ON SCHEMA staging IS 'Per-load UNLOGGED staging tables (staging.<table>__<audit_id>); dropped after each load.';
