-- One row per attempt to load one mart table: inserted as 'running' before any data moves,
-- set to 'succeeded' in the same transaction that swaps the window in, or to 'failed'.
-- A loader that dies holds no advisory lock any more; spark_jobs.serving marks its row failed.

CREATE TABLE ops.load_audit (
    audit_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    load_id       text        NOT NULL,
    table_name    text        NOT NULL,
    window_start  date,
    window_end    date,
    full_refresh  boolean     NOT NULL,
    attempt       integer     NOT NULL DEFAULT 1,
    status        text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    rows_deleted  bigint,
    rows_loaded   bigint,
    checksum      text,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz,
    error         text,
    CONSTRAINT load_audit_window CHECK (window_end IS NULL OR window_start <= window_end),
    CONSTRAINT load_audit_finished CHECK ((status = 'running') = (finished_at IS NULL))
);

CREATE INDEX load_audit_load_id ON ops.load_audit (load_id);
CREATE INDEX load_audit_table_started ON ops.load_audit (table_name, started_at DESC);
CREATE INDEX load_audit_running ON ops.load_audit (audit_id) WHERE status = 'running';

COMMENT ON TABLE ops.load_audit IS 'Every attempt to load a mart table from gold, with its window, row counts and checksum.';
COMMENT ON COLUMN ops.load_audit.load_id IS 'ADF pipeline run id of the load (the run_id widget).';
COMMENT ON COLUMN ops.load_audit.table_name IS 'Mart table loaded, schema-qualified (mart.daily_prices).';
COMMENT ON COLUMN ops.load_audit.window_start IS 'First day of the replaced window; NULL when the whole table was replaced.';
COMMENT ON COLUMN ops.load_audit.window_end IS 'Last day of the replaced window; NULL when the whole table was replaced.';
COMMENT ON COLUMN ops.load_audit.full_refresh IS 'True when the load replaced the whole table.';
COMMENT ON COLUMN ops.load_audit.attempt IS 'Attempt number; transient connection errors start a new attempt.';
COMMENT ON COLUMN ops.load_audit.status IS 'running, succeeded or failed.';
COMMENT ON COLUMN ops.load_audit.rows_deleted IS 'Rows of the window removed from the mart table.';
COMMENT ON COLUMN ops.load_audit.rows_loaded IS 'Rows of the window inserted into the mart table.';
COMMENT ON COLUMN ops.load_audit.checksum IS 'md5 over the window content in key order, computed in the swap transaction.';
COMMENT ON COLUMN ops.load_audit.error IS 'Why the attempt failed.';
