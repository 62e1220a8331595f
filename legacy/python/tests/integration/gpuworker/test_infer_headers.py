"""The infer routes' HTTP framing: status, headers and their order, as Starlette's Response sent.

The infer routes are a raw ASGI endpoint (see ``app._InferEndpoint``); these pin what a client
sees so that it stays what it was when they were ordinary Starlette handlers.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from lepton.dev.sample_models import scaled_identity
from lepton.shared.settings import ModelStoreSettings
from tests.conftest import Storage
from tests.integration.gpuworker._harness import Registry, fast_settings, serve

pytestmark = pytest.mark.azurite
_SERVER_ADDED = {"date", "server"}  # uvicorn's own, outside the app
GOOD = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def test_infer_response_headers_json_binary_and_methods(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    reg.publish("scale", "1.0.0", scaled_identity(2.0))
    reg.route("scale", production="1.0.0")
    with serve(fast_settings(), storage.settings, store_settings) as w:
        w.wait_ready("scale", "1.0.0")
        body = orjson.dumps(GOOD)
        r = w.client.post(
            "/v2/models/scale/infer",
            content=body,
            headers={"content-type": "application/json", "X-Request-Id": "abc"},
        )
        assert r.status_code == 200, r.text
        assert [k for k in r.headers if k not in _SERVER_ADDED] == [
            "x-request-id",
            "x-lepton-version",
            "content-length",
            "content-type",
        ]
        assert r.headers["x-request-id"] == "abc"
        assert r.headers["x-lepton-version"] == "1.0.0"
        assert r.headers["content-type"] == "application/json"
        assert int(r.headers["content-length"]) == len(r.content)
        assert r.json()["outputs"][0]["data"] == [2.0, 4.0, 6.0, 8.0]

        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": [2, 4],
                        "parameters": {"binary_data_size": x.nbytes},
                    }
                ],
                "parameters": {"binary_data_output": True},
            }
        )
        r = w.client.post(
            "/v2/models/scale/versions/1.0.0/infer",
            content=header + x.tobytes(),
            headers={
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(header)),
            },
        )
        assert r.status_code == 200, r.text
        assert [k for k in r.headers if k not in _SERVER_ADDED] == [
            "x-request-id",
            "x-lepton-version",
            "inference-header-content-length",
            "content-length",
            "content-type",
        ]
        assert len(r.headers["x-request-id"]) == 32  # generated
        assert r.headers["content-type"] == "application/octet-stream"
        n = int(r.headers["inference-header-content-length"])
        assert orjson.loads(r.content[:n])["outputs"][0]["parameters"] == {"binary_data_size": 32}
        np.testing.assert_array_equal(np.frombuffer(r.content[n:], np.float32), x.ravel() * 2)

        r = w.client.get("/v2/models/scale/infer")
        assert r.status_code == 405
        assert r.headers["allow"] == "POST"
