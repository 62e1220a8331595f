"""The post-deploy script that subscribes the blob trigger to BlobCreated events for models.

The Azure CLI cannot reach Azure from here, so a stand-in ``az`` on PATH answers the script's
queries the way the real CLI does (tsv values) and records each call; the tests check the
subscription the script asks for and its clear errors when the code is not deployed yet.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.unit.infra._bicep import REPO_ROOT

SCRIPT = REPO_ROOT / "infra" / "scripts" / "create-blob-subscription.sh"
FAKE_AZ = r"""#!/usr/bin/env bash
printf '%s\x1f' "$@" >> "$AZ_LOG"; echo >> "$AZ_LOG"
case "$1 $2" in
  "deployment group")
    case "$*" in
      *functionAppName*) echo lepton-dev-func-abc ;;
      *eventGridSystemTopicName*) echo stleptonabc-events ;;
    esac ;;
  "functionapp function") echo "${FAKE_FUNCTION-}" ;;
  "functionapp keys") echo "${FAKE_KEY-}" ;;
  "functionapp show") echo lepton-dev-func-abc.azurewebsites.net ;;
esac
"""


def run_script(
    tmp_path: Path, *args: str, key: str = "s3cr3t", function: str = "lepton-dev-func-abc/on_blob"
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    az = bin_dir / "az"
    az.write_text(FAKE_AZ, encoding="utf-8")
    az.chmod(0o755)
    log = tmp_path / "az.log"
    log.write_text("", encoding="utf-8")
    env = os.environ | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "AZ_LOG": str(log),
        "FAKE_KEY": key,
        "FAKE_FUNCTION": function,
    }
    result = subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    calls = [line.split("\x1f")[:-1] for line in log.read_text(encoding="utf-8").splitlines()]
    return result, calls


def option(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def test_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)


def test_subscribes_the_blob_trigger_to_model_files_only(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, "--resource-group", "rg-lepton")
    assert result.returncode == 0, result.stderr
    [create] = [c for c in calls if c[:3] == ["eventgrid", "system-topic", "event-subscription"]]
    assert option(create, "--resource-group") == "rg-lepton"
    assert option(create, "--system-topic-name") == "stleptonabc-events"
    assert option(create, "--endpoint-type") == "webhook"
    assert option(create, "--endpoint") == (
        "https://lepton-dev-func-abc.azurewebsites.net/runtime/webhooks/blobs"
        "?functionName=Host.Functions.on_blob&code=s3cr3t"
    )
    assert option(create, "--included-event-types") == "Microsoft.Storage.BlobCreated"
    assert option(create, "--subject-begins-with").startswith(
        "/blobServices/default/containers/models/"
    )
    assert option(create, "--subject-ends-with") == "model.onnx"
    # The key travels only to Event Grid, never to the terminal or a CI log.
    assert "s3cr3t" not in result.stdout + result.stderr


def test_explicit_names_skip_the_deployment_lookup(tmp_path: Path) -> None:
    result, calls = run_script(
        tmp_path,
        "-g",
        "rg",
        "--function-app",
        "app1",
        "--system-topic",
        "topic1",
        "--function-name",
        "blob_fn",
    )
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if c[:2] in (["deployment", "group"], ["functionapp", "function"])]
    [create] = [c for c in calls if c[0] == "eventgrid"]
    assert "functionName=Host.Functions.blob_fn&" in option(create, "--endpoint")


def test_refuses_until_the_blobs_extension_key_exists(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, "-g", "rg-lepton", key="")
    assert result.returncode == 1
    assert "no blobs_extension system key yet" in result.stderr
    assert "publish the code" in result.stderr
    assert not [c for c in calls if c[0] == "eventgrid"]


def test_refuses_when_no_event_grid_blob_trigger_is_deployed(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path, "-g", "rg-lepton", function="")
    assert result.returncode == 1
    assert "no blob trigger with source EventGrid" in result.stderr
    assert not [c for c in calls if c[0] == "eventgrid"]


def test_resource_group_is_required(tmp_path: Path) -> None:
    result, calls = run_script(tmp_path)
    assert result.returncode == 1
    assert "--resource-group is required" in result.stderr
    assert "Usage:" in result.stderr
    assert calls == []
