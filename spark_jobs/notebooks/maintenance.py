# Databricks notebook source
# MAGIC %md
# MAGIC Maintenance: compact and vacuum every Delta table; report versions and row counts.
# MAGIC Widgets: `start_date`, `end_date` (YYYY-MM-DD), `run_id` (the ADF pipeline run id),
# MAGIC `full_refresh` ('true'/'false').
# MAGIC Settings (lake root, DSN) come from `lakehouse.settings.load_settings()`.

# COMMAND ----------

from spark_jobs.job_params import declare_widgets, widget_values

declare_widgets(dbutils)

# COMMAND ----------

from lakehouse.settings import load_settings
from spark_jobs.jobs import run_maintenance

summary = run_maintenance(spark, load_settings(), **widget_values(dbutils))

# COMMAND ----------

dbutils.notebook.exit(summary.to_json())
