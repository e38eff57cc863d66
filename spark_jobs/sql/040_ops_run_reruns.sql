-- Reruns from failure (`lakehouse rerun`): a rerun is a new pipeline run that names the failed run
-- it reruns; its activities that were not executed again name the activity run whose recorded
-- output they reused. Written by local/run_store.py.

ALTER TABLE ops.pipeline_runs ADD COLUMN IF NOT EXISTS rerun_of text;
ALTER TABLE ops.activity_runs ADD COLUMN IF NOT EXISTS reused_from text;

CREATE INDEX IF NOT EXISTS pipeline_runs_rerun_of ON ops.pipeline_runs (rerun_of);
