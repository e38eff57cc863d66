# Databricks notebook source
# MAGIC %md
# MAGIC GOLD -> SERVING: load the window of every gold table into the PostgreSQL marts in one transaction
# MAGIC (binary COPY into UNLOGGED staging tables, then delete the window and insert from staging,
# MAGIC with one `ops.load_audit` row per table).
# MAGIC Widgets: `start_date`, `end_date` (YYYY-MM-DD), `run_id` (the ADF pipeline run id),
# MAGIC `full_refresh` ('true'/'false').
# MAGIC Settings (lake root, DSN, `LAKEHOUSE_PG_AUTH`) come from `lakehouse.settings.load_settings()`
# MAGIC and the environment.

# COMMAND ----------

dbutils.widgets.text("start_date", "")
dbutils.widgets.text("end_date", "")
dbutils.widgets.text("run_id", "manual")
dbutils.widgets.text("full_refresh", "false")

# COMMAND ----------

import json

from lakehouse.settings import load_settings
from spark_jobs.serving import run_gold_to_postgres

summary = run_gold_to_postgres(
    spark,
    load_settings(),
    start_date=dbutils.widgets.get("start_date"),
    end_date=dbutils.widgets.get("end_date"),
    run_id=dbutils.widgets.get("run_id"),
    full_refresh=dbutils.widgets.get("full_refresh"),
)

# COMMAND ----------

dbutils.notebook.exit(json.dumps(summary, default=str))
