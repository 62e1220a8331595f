#!/usr/bin/env bash
# `make lint`'s infrastructure step: compiles every Bicep template and parameter file under
# infra/bicep and lints every template, with the Bicep CLI that tools/Bicep/Bicep.csproj restores
# from NuGet. --no-restore everywhere: the templates use local modules only, so nothing is fetched
# from a module registry (there is no network here besides the package registries). The lint rules
# that matter are errors in infra/bicep/bicepconfig.json; bicep exits 0 on warnings, so any
# diagnostic line left fails this step too: the templates stay clean, not "mostly clean".
#
#   tools/Bicep/check-bicep.sh <path to bicep> [folder, default infra/bicep]
set -euo pipefail

bicep="${1:?usage: check-bicep.sh <path to bicep> [folder]}"
dir="${2:-infra/bicep}"
[[ -x "$bicep" ]] \
  || { echo "error: no Bicep CLI at '$bicep': run 'dotnet restore tools/Bicep/Bicep.csproj' (it comes from NuGet)" >&2; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0

check() {
  local log
  if ! log="$("$bicep" "$@" 2>&1)"; then
    status=1
  fi
  if grep -E ' : (Warning|Error) ' <<<"$log" >&2; then
    status=1
  elif [[ $status -ne 0 ]]; then
    echo "$log" >&2
  fi
}

check build --no-restore --pattern "$dir/**/*.bicep" --outdir "$out/templates"
check build-params --no-restore --pattern "$dir/**/*.bicepparam" --outdir "$out/parameters"
check lint --no-restore --pattern "$dir/**/*.bicep"

templates=$(find "$dir" -name '*.bicep' | wc -l)
parameters=$(find "$dir" -name '*.bicepparam' | wc -l)
if [[ $status -ne 0 ]]; then
  echo "bicep: $dir has findings (above); fix them, nothing is waived" >&2
  exit 1
fi
echo "bicep $("$bicep" --version | awk '{print $4}'): $templates templates and $parameters parameter files build and lint clean"
