"""Worker settings from the environment: defaults, parsing, clear failures, the name list."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from lepton.gpuworker.settings import WORKER_SETTING_NAMES, WorkerSettings
from lepton.shared.errors import ConfigurationError


def test_defaults_from_an_empty_environment() -> None:
    s = WorkerSettings.from_env({})
    assert s == WorkerSettings()
    assert s.port == 8000 and s.window_s == 10 and s.provider == "auto"
    assert s.advertised_url == "http://127.0.0.1:8000"
    assert s.replica.endswith("-8000")


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])
def test_a_wildcard_bind_address_advertises_the_hostname(wildcard: str) -> None:
    s = WorkerSettings.from_env({"LEPTON_WORKER_HOST": wildcard, "LEPTON_WORKER_PORT": "8000"})
    assert s.advertised_url == f"http://{socket.gethostname()}:8000"


def test_values_are_parsed() -> None:
    s = WorkerSettings.from_env(
        {
            "LEPTON_WORKER_HOST": "0.0.0.0",
            "LEPTON_WORKER_PORT": "9000",
            "LEPTON_WORKER_REPLICA_ID": "r1",
            "LEPTON_WORKER_MODELS": "digits, fraud-v2",
            "LEPTON_WORKER_POLL_INTERVAL_S": "0.5",
            "LEPTON_WORKER_WINDOW_S": "30",
            "LEPTON_WORKER_MEMORY_BUDGET_MB": "512",
            "LEPTON_WORKER_PROVIDER": "cpu",
            "LEPTON_WORKER_CUDA_MEM_LIMIT_MB": "1024",
            "LEPTON_WORKER_INTRA_OP_THREADS": "2",
            "LEPTON_WORKER_NONFINITE_IS_ERROR": "false",
            "LEPTON_WORKER_URL": "http://worker-1:9000",
        }
    )
    assert (s.host, s.port, s.replica, s.models) == ("0.0.0.0", 9000, "r1", ("digits", "fraud-v2"))
    assert (s.poll_interval_s, s.window_s, s.memory_budget_mb) == (0.5, 30, 512)
    assert (s.provider, s.cuda_mem_limit_mb, s.effective_intra_op_threads) == ("cpu", 1024, 2)
    assert s.nonfinite_is_error is False
    assert s.advertised_url == "http://worker-1:9000"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LEPTON_WORKER_PORT", "eighty", "LEPTON_WORKER_PORT must be a int"),
        ("LEPTON_WORKER_WINDOW_S", "0", "LEPTON_WORKER_WINDOW_S must be ≥ 1"),
        ("LEPTON_WORKER_PROVIDER", "tpu", "LEPTON_WORKER_PROVIDER must be one of"),
        ("LEPTON_WORKER_MODELS", "Bad_Name", "LEPTON_WORKER_MODELS"),
        ("LEPTON_WORKER_NONFINITE_IS_ERROR", "maybe", "true or false"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WorkerSettings.from_env({name: value})


def test_every_field_has_an_environment_variable_and_storage_is_listed() -> None:
    own = {n for n in WORKER_SETTING_NAMES if n.startswith("LEPTON_WORKER_")}
    assert {f"LEPTON_WORKER_{f.name.upper()}" for f in dataclasses.fields(WorkerSettings)} == own
    assert "AzureWebJobsStorage" in WORKER_SETTING_NAMES
    assert "LEPTON_CACHE_DIR" in WORKER_SETTING_NAMES
