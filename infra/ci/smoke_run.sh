#!/usr/bin/env bash
# Smoke test of a deployment: run pl_lakehouse_daily for the last closed XNYS session and fail
# unless the run ends Succeeded (az CLI, datafactory extension).
#
#   infra/ci/smoke_run.sh STACK [TIMEOUT_SECONDS]
set -euo pipefail

stack="${1:?usage: smoke_run.sh STACK [TIMEOUT_SECONDS]}"
timeout="${2:-3600}"
pipeline="pl_lakehouse_daily"
python="${PYTHON:-.venv/bin/python}"

factory="$(pulumi stack output factory_name --stack "$stack")"
group="$(pulumi stack output resource_group_name --stack "$stack")"
session="$("$python" -c 'from lakehouse.trading_calendar import latest_session; print(latest_session())')"

az extension add --name datafactory --upgrade --yes --only-show-errors
run_id="$(az datafactory pipeline create-run --resource-group "$group" --factory-name "$factory" \
  --name "$pipeline" --parameters "{\"runDate\": \"$session\"}" --query runId --output tsv)"
echo "$pipeline run $run_id for session $session"

deadline=$(( $(date +%s) + timeout ))
while true; do
  status="$(az datafactory pipeline-run show --resource-group "$group" --factory-name "$factory" \
    --run-id "$run_id" --query status --output tsv)"
  case "$status" in
    Succeeded)
      echo "$pipeline $run_id Succeeded"
      exit 0
      ;;
    Failed|Cancelled|Canceling)
      az datafactory pipeline-run show --resource-group "$group" --factory-name "$factory" \
        --run-id "$run_id" --query message --output tsv >&2 || true
      echo "$pipeline $run_id ended $status" >&2
      exit 1
      ;;
  esac
  if (( $(date +%s) > deadline )); then
    echo "$pipeline $run_id still $status after ${timeout}s" >&2
    exit 1
  fi
  sleep 30
done
