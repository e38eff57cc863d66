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

from spark_jobs.job_params import declare_widgets, widget_values

declare_widgets(dbutils)

# COMMAND ----------

from lakehouse.settings import load_settings
from spark_jobs.serving import run_gold_to_postgres

summary = run_gold_to_postgres(spark, load_settings(), **widget_values(dbutils))

# COMMAND ----------

dbutils.notebook.exit(summary.to_json())
