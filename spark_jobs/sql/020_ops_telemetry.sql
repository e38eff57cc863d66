-- Telemetry of the local runtime: what Application Insights receives in Azure (spans as
-- requests/dependencies, log records as traces, metrics as customMetrics), kept in the ops store.
-- Written by lakehouse/telemetry.py (its OpenTelemetry exporters); one row per span, log record,
-- or metric data point. Every row carries the ADF run id when the emitter knew it.

CREATE SCHEMA IF NOT EXISTS ops;

CREATE TABLE IF NOT EXISTS ops.telemetry_events (
    id              bigserial   PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('span', 'log', 'metric')),
    name            text        NOT NULL,           -- span name, event name, or metric name
    service         text        NOT NULL,           -- OpenTelemetry service.name
    run_id          text,                           -- ADF pipeline run id (load_id)
    trace_id        text,
    span_id         text,
    parent_span_id  text,
    started_at      timestamptz,                    -- span start; metric interval start
    ended_at        timestamptz,                    -- span end; metric interval end
    observed_at     timestamptz NOT NULL,           -- log timestamp; span end; metric interval end
    duration_ms     double precision,               -- spans
    status          text,                           -- spans: UNSET / OK / ERROR; logs: severity text
    value           double precision,               -- metrics: sum of the interval (histograms: sum)
    count           bigint,                         -- metrics: histogram sample count
    body            text,                           -- logs: message; spans: error description
    attributes      jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS telemetry_events_run ON ops.telemetry_events (run_id, observed_at);
CREATE INDEX IF NOT EXISTS telemetry_events_name ON ops.telemetry_events (kind, name, observed_at DESC);
