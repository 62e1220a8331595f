"""Local stack settings from the environment, and the 'port already taken' message."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lepton.dev.azurite import free_port
from lepton.dev.ports import PortInUseError, check_ports_free
from lepton.dev.settings import DevSettings, local_connection_string
from lepton.shared.errors import ConfigurationError


def test_defaults_are_the_fixed_local_ports() -> None:
    s = DevSettings.from_env({})
    assert (s.blob_port, s.queue_port, s.table_port, s.api_port, s.worker_port) == (
        10000,
        10001,
        10002,
        7071,
        8000,
    )
    assert s.api_url == "http://127.0.0.1:7071"
    assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;" in local_connection_string()


def test_environment_and_overrides_change_ports_and_folder() -> None:
    s = DevSettings.from_env({"LEPTON_DEV_API_PORT": "9071", "LEPTON_DEV_DATA_DIR": "/tmp/x"})
    assert (s.api_port, s.data_dir) == (9071, Path("/tmp/x"))
    t = s.with_overrides(api_port=None, worker_port=9000)
    assert (t.api_port, t.worker_port) == (9071, 9000)


@pytest.mark.parametrize("raw", ["abc", "0", "70000"])
def test_bad_port_values_name_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="LEPTON_DEV_WORKER_PORT"):
        DevSettings.from_env({"LEPTON_DEV_WORKER_PORT": raw})


def test_a_taken_port_names_the_part_and_the_option_to_change_it() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        s = DevSettings(
            api_port=taken,
            worker_port=free_port(),
            durable_port=free_port(),
            storage_connection="x",
        )
        with pytest.raises(PortInUseError) as err:
            check_ports_free(s.ports())
    message = str(err.value)
    assert f"port {taken} on 127.0.0.1 (HTTP API) is already in use" in message
    assert "--api-port" in message and "LEPTON_DEV_API_PORT" in message


def test_ports_of_an_external_storage_stack_leave_azurite_out() -> None:
    parts = {p.part for p in DevSettings(storage_connection="x", start_worker=False).ports()}
    assert parts == {"HTTP API", "durabletask backend"}
