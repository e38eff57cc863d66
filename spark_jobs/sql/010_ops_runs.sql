-- Pipeline and activity runs of the local ADF runner (the local counterpart of ADF's
-- monitoring: Log Analytics ADFPipelineRun / ADFActivityRun). Written by local/run_store.py.
-- A run is inserted when it starts (status InProgress) and updated when it ends.

CREATE SCHEMA IF NOT EXISTS ops;

CREATE TABLE IF NOT EXISTS ops.pipeline_runs (
    run_id          text        PRIMARY KEY,
    parent_run_id   text,
    pipeline        text        NOT NULL,
    status          text        NOT NULL
        CHECK (status IN ('InProgress', 'Succeeded', 'Failed', 'Cancelled')),
    parameters      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    trigger_name    text,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    duration_ms     bigint GENERATED ALWAYS AS
        ((EXTRACT(EPOCH FROM (ended_at - started_at)) * 1000)::bigint) STORED,
    output          jsonb,
    error           jsonb
);

CREATE INDEX IF NOT EXISTS pipeline_runs_started_at ON ops.pipeline_runs (started_at DESC);
CREATE INDEX IF NOT EXISTS pipeline_runs_parent ON ops.pipeline_runs (parent_run_id);

CREATE TABLE IF NOT EXISTS ops.activity_runs (
    activity_run_id text        PRIMARY KEY,
    pipeline_run_id text        NOT NULL REFERENCES ops.pipeline_runs (run_id) ON DELETE CASCADE,
    pipeline        text        NOT NULL,
    activity        text        NOT NULL,
    activity_type   text        NOT NULL,
    status          text        NOT NULL
        CHECK (status IN ('InProgress', 'Succeeded', 'Failed', 'Skipped', 'Cancelled')),
    attempt         integer     NOT NULL DEFAULT 1,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    duration_ms     bigint GENERATED ALWAYS AS
        ((EXTRACT(EPOCH FROM (ended_at - started_at)) * 1000)::bigint) STORED,
    input           jsonb,
    output          jsonb,
    error           jsonb
);

CREATE INDEX IF NOT EXISTS activity_runs_pipeline_run ON ops.activity_runs (pipeline_run_id, started_at);
