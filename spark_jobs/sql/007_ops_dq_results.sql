-- Data-quality rule outcomes written by spark_jobs.quality, one row per rule per table per run.

CREATE TABLE ops.dq_results (
    run_id        text        NOT NULL,
    table_name    text        NOT NULL,
    rule          text        NOT NULL,
    severity      text        NOT NULL CHECK (severity IN ('warn', 'quarantine', 'fail')),
    passed        boolean     NOT NULL,
    failed_count  bigint      NOT NULL DEFAULT 0,
    sample_keys   jsonb,
    evaluated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dq_results_run ON ops.dq_results (run_id);
CREATE INDEX dq_results_table_evaluated ON ops.dq_results (table_name, evaluated_at DESC);

COMMENT ON TABLE ops.dq_results IS 'Outcome of each data-quality rule over each table in each run.';
COMMENT ON COLUMN ops.dq_results.run_id IS 'ADF pipeline run id.';
COMMENT ON COLUMN ops.dq_results.table_name IS 'Table the rule was evaluated on, e.g. silver.daily_bars.';
COMMENT ON COLUMN ops.dq_results.rule IS 'Rule name as defined in spark_jobs.quality.';
COMMENT ON COLUMN ops.dq_results.severity IS 'warn: reported only; quarantine: failing rows set aside; fail: the run fails.';
COMMENT ON COLUMN ops.dq_results.passed IS 'True when no row failed the rule.';
COMMENT ON COLUMN ops.dq_results.failed_count IS 'Rows that failed the rule.';
COMMENT ON COLUMN ops.dq_results.sample_keys IS 'A few business keys of failing rows, for investigation.';
COMMENT ON COLUMN ops.dq_results.evaluated_at IS 'When the rule was evaluated.';
