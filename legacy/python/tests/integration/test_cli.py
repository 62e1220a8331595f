"""The ``lepton`` CLI through typer's CliRunner against a real local stack on free ports."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lepton.cli import app
from lepton.dev import sample_models
from lepton.dev.api_client import ApiConfig, LeptonApi
from lepton.dev.azurite import Azurite, free_port
from lepton.dev.demo import fresh_model_name
from lepton.dev.settings import DevSettings
from lepton.dev.stack import LocalStack
from lepton.shared.settings import StorageSettings
from lepton.shared.storage import MODELS_CONTAINER, blob_service, table_service
from tests.conftest import clear_storage
from tests.e2e._stack import stack_settings, start_stack

pytestmark = pytest.mark.azurite

MODEL = "cli-digits"
runner = CliRunner()


@pytest.fixture(scope="module")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = stack_settings(tmp_path_factory.mktemp("cli-stack"), azurite.connection_string)
    running = start_stack(settings)
    yield running
    running.stop()
    # The stack shares the session's Azurite: leave it as empty as the per-test fixture does.
    storage = StorageSettings(connection_string=azurite.connection_string)
    clear_storage(blob_service(storage), table_service(storage))


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    s: DevSettings = stack.settings
    return {
        "LEPTON_API_URL": s.api_url,
        "LEPTON_WORKER_URL": s.worker_url,
        "AzureWebJobsStorage": stack.connection_string,
        "COLUMNS": "200",
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-files")
    train, test = sample_models.digits()
    model = folder / "model.onnx"
    model.write_bytes(sample_models.linear_digits(train))
    manifest = folder / "lepton.json"
    manifest.write_text(json.dumps({"task": "classification"}))
    dataset = folder / "digits.npz"
    np.savez(dataset, X=test.x, y=test.y)
    better = folder / "better.onnx"
    better.write_bytes(sample_models.better_digits(train))
    slow_policy = folder / "slow-canary.json"
    # Windows far longer than the test: the canary waits until an operator decides.
    slow_policy.write_text(
        json.dumps(
            {
                "policy": {
                    "steps_bp": [5000, 10000],
                    "window_s": 120,
                    "check_interval_s": 60,
                    "shadow": False,
                    "warmup_poll_s": 0.3,
                    "bake_s": 0.5,
                    "retry_interval_s": 0.2,
                    "evaluation": {"shards": 2},
                }
            }
        )
    )
    bad_manifest = folder / "bad.json"
    bad_manifest.write_text('{"polcy": {}}')
    return {
        "model": model,
        "manifest": manifest,
        "dataset": dataset,
        "bad": bad_manifest,
        "better": better,
        "slow": slow_policy,
    }


@pytest.fixture(scope="module")
def pushed(env: dict[str, str], files: dict[str, Path]) -> str:
    result = runner.invoke(
        app,
        [
            "push",
            MODEL,
            "1.0.0",
            str(files["model"]),
            "--manifest",
            str(files["manifest"]),
            "--dataset",
            "digits",
            "--dataset-file",
            str(files["dataset"]),
            "--timeout",
            "60",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_push_uploads_with_progress_and_follows_to_production(pushed: str) -> None:
    assert "dataset uploaded to datasets/cli-digits/digits.npz" in pushed
    assert "stored models/cli-digits/1.0.0/model.onnx" in pushed
    assert "cli-digits 1.0.0: production" in pushed
    assert "first version of the model" in pushed


def test_status_lists_models_versions_and_one_version(pushed: str, env: dict[str, str]) -> None:
    listing = runner.invoke(app, ["status"], env=env)
    assert listing.exit_code == 0, listing.output
    assert "cli-digits: 1.0.0 production" in listing.output
    model = runner.invoke(app, ["status", MODEL], env=env)
    assert model.exit_code == 0, model.output
    assert "production" in model.output and "routes: production=1.0.0" in model.output
    version = runner.invoke(app, ["status", MODEL, "1.0.0"], env=env)
    assert version.exit_code == 0, version.output
    assert json.loads(version.output)["version"]["stage"] == "production"


def test_history_routes_watch_and_infer(pushed: str, env: dict[str, str]) -> None:
    history = runner.invoke(app, ["history", MODEL], env=env)
    assert history.exit_code == 0, history.output
    for stage in ("validating", "evaluating", "production"):
        assert stage in history.output
    routes = runner.invoke(app, ["routes", MODEL], env=env)
    assert "production=1.0.0" in routes.output
    watch = runner.invoke(app, ["watch", MODEL, "--count", "1"], env=env)
    assert watch.exit_code == 0, watch.output
    assert "1.0.0" in watch.output and "production" in watch.output
    row = json.dumps([[0.0] * sample_models.N_FEATURES])
    infer = runner.invoke(app, ["infer", MODEL, "--data", row], env=env)
    assert infer.exit_code == 0, infer.output
    assert json.loads(infer.output)["model_version"] == "1.0.0"
    pinned = runner.invoke(app, ["infer", MODEL, "--data", row, "--version", "1.0.0"], env=env)
    assert pinned.exit_code == 0, pinned.output
    assert json.loads(pinned.output)["model_version"] == "1.0.0"
    bad = runner.invoke(app, ["infer", MODEL, "--data", "[[1, 2"], env=env)
    assert bad.exit_code == 1 and "--data is not JSON" in bad.output
    sticky = runner.invoke(
        app, ["routes", MODEL, "--set", "sticky_header=x-user", "--reason", "pin callers"], env=env
    )
    assert sticky.exit_code == 0, sticky.output
    assert "production=1.0.0" in sticky.output and "sticky=x-user" in sticky.output


def test_operator_commands_and_route_changes_explain_refusals(
    pushed: str, env: dict[str, str]
) -> None:
    approve = runner.invoke(app, ["approve", MODEL, "1.0.0", "--reason", "looks good"], env=env)
    assert approve.exit_code == 1
    assert "no running lifecycle" in approve.output
    bad_weight = runner.invoke(app, ["routes", MODEL, "--set", "candidate_weight_bp=half"], env=env)
    assert bad_weight.exit_code == 1 and "basis points" in bad_weight.output
    unknown = runner.invoke(
        app,
        ["routes", MODEL, "--set", "candidate=9.9.9", "--set", "candidate_weight_bp=100"],
        env=env,
    )
    assert unknown.exit_code == 1 and "9.9.9 is not registered" in unknown.output


def test_a_repeated_demo_picks_a_model_name_with_no_versions(
    pushed: str, stack: LocalStack
) -> None:
    with LeptonApi(ApiConfig(api_url=stack.settings.api_url)) as api:
        assert fresh_model_name(api, MODEL) == f"{MODEL}-2"
        assert fresh_model_name(api, "cli-never-pushed") == "cli-never-pushed"


def test_bad_push_input_is_refused_before_anything_is_stored(
    stack: LocalStack, env: dict[str, str], files: dict[str, Path], tmp_path: Path
) -> None:
    cases = [
        (["push", "Bad_Name", "1.0.0", str(files["model"])], "invalid model name"),
        (["push", "cli-bad", "v1", str(files["model"])], "invalid version"),
        (["push", "cli-bad", "1.0.0", str(tmp_path / "missing.onnx")], "does not exist"),
        (
            ["push", "cli-bad", "1.0.0", str(files["model"]), "--dataset", "digits"],
            "--dataset and --dataset-file go together",
        ),
        (
            ["push", "cli-bad", "1.0.0", str(files["model"]), "--manifest", str(files["bad"])],
            "unknown keys ['polcy']",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
    container = stack.services.store._models
    assert list(container.list_blobs(name_starts_with="cli-bad/")) == []
    assert container.container_name == MODELS_CONTAINER


def test_unreachable_api_says_to_start_the_stack() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["status", "--api-url", url])
    assert result.exit_code == 1
    assert f"the API at {url} is not reachable" in result.output
    assert "make run" in result.output


def test_dev_with_a_taken_port_names_it_and_the_option() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        result = runner.invoke(
            app,
            [
                "dev",
                "--api-port",
                str(taken),
                "--worker-port",
                str(free_port()),
                "--durable-port",
                str(free_port()),
                "--blob-port",
                str(free_port()),
                "--queue-port",
                str(free_port()),
                "--table-port",
                str(free_port()),
            ],
        )
    assert result.exit_code == 1
    assert f"port {taken} on 127.0.0.1 (HTTP API) is already in use" in result.output
    assert "--api-port" in result.output


def test_an_operator_promotes_a_running_canary_from_the_cli(
    pushed: str, env: dict[str, str], files: dict[str, Path]
) -> None:
    push = runner.invoke(
        app,
        [
            "push",
            MODEL,
            "1.1.0",
            str(files["better"]),
            "--manifest",
            str(files["slow"]),
            "--no-follow",
        ],
        env=env,
    )
    assert push.exit_code == 0, push.output
    stage = _wait_for(
        env,
        "1.1.0",
        lambda s: (
            s["version"]["stage"] == "canary"
            and (s["lifecycle"]["custom_status"] or {}).get("steps") == 2
        ),
    )
    assert stage["version"]["stage"] == "canary"
    promote = runner.invoke(app, ["promote", MODEL, "1.1.0", "--reason", "ship it"], env=env)
    assert promote.exit_code == 0, promote.output
    assert "promote sent to cli-digits 1.1.0" in promote.output
    done = _wait_for(env, "1.1.0", lambda s: s["version"]["stage"] == "production")
    assert done["version"]["reason"] == "promoted by operator cli: ship it"
    history = runner.invoke(app, ["history", MODEL, "1.1.0"], env=env)
    assert "canary → production" in history.output and "ship it" in history.output


def _wait_for(env: dict[str, str], version: str, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        result = runner.invoke(app, ["status", MODEL, version], env=env)
        if result.exit_code == 0:
            detail: dict[str, Any] = json.loads(result.output)
            if done(detail):
                return detail
        assert time.monotonic() < deadline, result.output
        time.sleep(0.3)
