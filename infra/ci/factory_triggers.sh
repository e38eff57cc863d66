#!/usr/bin/env bash
# Stop or start the Data Factory triggers of a deployed Pulumi stack (az CLI, datafactory extension).
#
#   infra/ci/factory_triggers.sh stop STACK    stop every started trigger (before `pulumi up`:
#                                               ADF rejects changes to a started trigger)
#   infra/ci/factory_triggers.sh start STACK   start the triggers the stack config lists in
#                                               lakehouse:startTriggers (stack output triggers_to_start)
#
# A stack that has never been deployed has no factory yet: `stop` then does nothing.
set -euo pipefail

action="${1:?usage: factory_triggers.sh stop|start STACK}"
stack="${2:?usage: factory_triggers.sh stop|start STACK}"

factory="$(pulumi stack output factory_name --stack "$stack" 2>/dev/null || true)"
group="$(pulumi stack output resource_group_name --stack "$stack" 2>/dev/null || true)"
if [[ -z "$factory" || -z "$group" ]]; then
  if [[ "$action" == "stop" ]]; then
    echo "stack $stack has no factory yet; nothing to stop"
    exit 0
  fi
  echo "stack $stack has no factory_name/resource_group_name outputs; run pulumi up first" >&2
  exit 1
fi

az extension add --name datafactory --upgrade --yes --only-show-errors

case "$action" in
  stop)
    started="$(az datafactory trigger list --resource-group "$group" --factory-name "$factory" \
      --query "[?properties.runtimeState=='Started'].name" --output tsv)"
    for trigger in $started; do
      echo "stopping $trigger"
      az datafactory trigger stop --resource-group "$group" --factory-name "$factory" --name "$trigger"
    done
    ;;
  start)
    wanted="$(pulumi stack output triggers_to_start --stack "$stack" --json | jq -r '.[]')"
    for trigger in $wanted; do
      echo "starting $trigger"
      az datafactory trigger start --resource-group "$group" --factory-name "$factory" --name "$trigger"
    done
    ;;
  *)
    echo "unknown action $action (stop|start)" >&2
    exit 2
    ;;
esac
