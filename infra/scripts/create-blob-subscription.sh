#!/usr/bin/env bash
# Post-deploy step: subscribe the Function App's blob trigger ([BlobTrigger(..., Source =
# BlobTriggerSource.EventGrid)] in src/Functions) to BlobCreated events for model files. The webhook
# URL carries the app's `blobs_extension` system key, which the Functions host creates only once
# code with such a trigger is deployed, so this cannot be part of main.bicep. Safe to re-run:
# `event-subscription create` updates an existing subscription. The key is never printed.
#
#   infra/scripts/create-blob-subscription.sh --resource-group <rg> [--deployment lepton]
#
# Names default to the outputs of the `az deployment group create` run named by --deployment.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: create-blob-subscription.sh --resource-group RG [options]

  -g, --resource-group NAME     resource group Lepton is deployed in (required)
  -d, --deployment NAME         deployment whose outputs name the resources (default: lepton)
      --function-app NAME       Function App (default: output functionAppName)
      --system-topic NAME       Event Grid system topic (default: output eventGridSystemTopicName)
      --function-name NAME      blob trigger function (default: the app's blob trigger with
                                source EventGrid)
      --subscription-name NAME  event subscription name (default: lepton-models-blob-created)
  -h, --help                    show this help
USAGE
}

die() {
  echo "error: $*" >&2
  exit 1
}

resource_group=""
deployment="lepton"
function_app=""
system_topic=""
function_name=""
subscription_name="lepton-models-blob-created"
# Only model files start a lifecycle; manifests (lepton.json) and other blobs are read by it.
models_prefix="/blobServices/default/containers/models/blobs/"
model_suffix="model.onnx"

while [[ $# -gt 0 ]]; do
  case "$1" in
    -g | --resource-group) resource_group="${2:-}"; shift 2 || die "$1 needs a value" ;;
    -d | --deployment) deployment="${2:-}"; shift 2 || die "$1 needs a value" ;;
    --function-app) function_app="${2:-}"; shift 2 || die "$1 needs a value" ;;
    --system-topic) system_topic="${2:-}"; shift 2 || die "$1 needs a value" ;;
    --function-name) function_name="${2:-}"; shift 2 || die "$1 needs a value" ;;
    --subscription-name) subscription_name="${2:-}"; shift 2 || die "$1 needs a value" ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

[[ -n "$resource_group" ]] || { usage >&2; die "--resource-group is required"; }
command -v az >/dev/null 2>&1 \
  || die "the Azure CLI (az) is not on PATH: install it (https://aka.ms/azcli), then run 'az login'"

deployment_output() {
  az deployment group show --resource-group "$resource_group" --name "$deployment" \
    --query "properties.outputs.$1.value" --output tsv
}

if [[ -z "$function_app" ]]; then
  function_app="$(deployment_output functionAppName)" || true
fi
if [[ -z "$system_topic" ]]; then
  system_topic="$(deployment_output eventGridSystemTopicName)" || true
fi
[[ -n "$function_app" && -n "$system_topic" ]] \
  || die "cannot read outputs of deployment '$deployment' in '$resource_group': run the az deployment group create step of infra/bicep/README.md first, or pass --function-app and --system-topic"

if [[ -z "$function_name" ]]; then
  # Route to whichever function is the EventGrid-sourced blob trigger instead of hard-coding it.
  # The .NET isolated worker reports binding properties in camelCase (source); accept either case.
  function_name="$(az functionapp function list --resource-group "$resource_group" \
    --name "$function_app" \
    --query "[?config.bindings[?type=='blobTrigger' && (source=='EventGrid' || Source=='EventGrid')]].name | [0]" \
    --output tsv)" || true
  function_name="${function_name##*/}" # listed as <app>/<function>
fi
[[ -n "$function_name" ]] \
  || die "no blob trigger with source EventGrid is deployed in '$function_app': publish the code first (func azure functionapp publish $function_app), or pass --function-name"

key="$(az functionapp keys list --resource-group "$resource_group" --name "$function_app" \
  --query "systemKeys.blobs_extension" --output tsv)" || true
[[ -n "$key" ]] \
  || die "'$function_app' has no blobs_extension system key yet: the host creates it when it first loads the blob trigger; publish the code, wait a minute, and re-run"

host="$(az functionapp show --resource-group "$resource_group" --name "$function_app" \
  --query defaultHostName --output tsv)"
[[ -n "$host" ]] || die "cannot read the host name of '$function_app'"
endpoint="https://${host}/runtime/webhooks/blobs?functionName=Host.Functions.${function_name}&code=${key}"

az eventgrid system-topic event-subscription create \
  --resource-group "$resource_group" \
  --system-topic-name "$system_topic" \
  --name "$subscription_name" \
  --endpoint-type webhook \
  --endpoint "$endpoint" \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with "$models_prefix" \
  --subject-ends-with "$model_suffix" \
  --max-delivery-attempts 30 \
  --event-ttl 1440 \
  --output none

# The endpoint holds the system key: report everything but it.
echo "Event Grid subscription '$subscription_name' on '$system_topic' delivers BlobCreated for ${models_prefix}*${model_suffix} to $function_app/$function_name"
