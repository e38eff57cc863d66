# Databricks notebook source
# MAGIC %md
# MAGIC RAW -> BRONZE: load the RAW files of the window that bronze has not seen yet.
# MAGIC Widgets: `start_date`, `end_date` (YYYY-MM-DD), `run_id` (the ADF pipeline run id),
# MAGIC `full_refresh` ('true'/'false').
# MAGIC Settings (lake root, DSN) come from `lakehouse.settings.load_settings()`.

# COMMAND ----------

dbutils.widgets.text("start_date", "")
dbutils.widgets.text("end_date", "")
dbutils.widgets.text("run_id", "manual")
dbutils.widgets.text("full_refresh", "false")

# COMMAND ----------

import json

from lakehouse.settings import load_settings
from spark_jobs.jobs import run_raw_to_bronze

summary = run_raw_to_bronze(
    spark,
    load_settings(),
    start_date=dbutils.widgets.get("start_date"),
    end_date=dbutils.widgets.get("end_date"),
    run_id=dbutils.widgets.get("run_id"),
    full_refresh=dbutils.widgets.get("full_refresh"),
)

# COMMAND ----------

dbutils.notebook.exit(json.dumps(summary, default=str))
