"""Bad input and failing models over HTTP: clear 4xx/5xx answers, counted for the right version.

Every bad request gets a status and a message naming what is wrong and the expected signature;
afterwards good requests are still served (nothing is lost or left broken).
"""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from lepton.dev.sample_models import always_nan, scaled_identity
from lepton.shared.metrics import MetricsStore
from lepton.shared.settings import ModelStoreSettings
from tests.conftest import Storage
from tests.integration.gpuworker._harness import Registry, Worker, fast_settings, serve, wait_until
from tests.unit.gpuworker._models import raises_above_one_row

pytestmark = pytest.mark.azurite
GOOD = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
SIGNATURE = "expected signature inputs: input FP32[-1,4]"


def _ok(w: Worker, model: str = "scale") -> None:
    r = w.client.post(f"/v2/models/{model}/infer", json=GOOD)
    assert r.status_code == 200, r.text


def test_bad_requests_get_clear_errors_and_lose_nothing(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    reg.publish("scale", "1.0.0", scaled_identity(2.0))
    reg.route("scale", production="1.0.0")
    settings = fast_settings(max_body_bytes=4096)
    with serve(settings, storage.settings, store_settings) as w:
        w.wait_ready("scale", "1.0.0")
        cases: list[tuple[bytes, dict[str, str], int, str]] = [
            (
                orjson.dumps(
                    {
                        "inputs": [
                            {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
                        ]
                    }
                ),
                {},
                400,
                "missing ['input']",
            ),
            (
                orjson.dumps(
                    {
                        "inputs": [
                            {
                                "name": "input",
                                "datatype": "INT64",
                                "shape": [1, 4],
                                "data": [1, 2, 3, 4],
                            }
                        ]
                    }
                ),
                {},
                400,
                "datatype INT64",
            ),
            (
                orjson.dumps(
                    {
                        "inputs": [
                            {
                                "name": "input",
                                "datatype": "FP32",
                                "shape": [1, 3],
                                "data": [1, 2, 3],
                            }
                        ]
                    }
                ),
                {},
                400,
                "shape [1, 3]",
            ),
            (b'{"inputs": [', {}, 400, "not valid JSON"),
            (
                orjson.dumps(GOOD),
                {"inference-header-content-length": "x"},
                400,
                "Inference-Header-Content-Length",
            ),
            (
                orjson.dumps(GOOD),
                {"inference-header-content-length": "99999"},
                400,
                "Inference-Header-Content-Length",
            ),
            (orjson.dumps({**GOOD, "outputs": [{"name": "nope"}]}), {}, 400, "['nope']"),
            (b"{" + b" " * 5000 + b"}", {}, 413, "LEPTON_WORKER_MAX_BODY_BYTES"),
        ]
        for body, headers, status, fragment in cases:
            r = w.client.post(
                "/v2/models/scale/infer",
                content=body,
                headers={"content-type": "application/json", **headers},
            )
            assert r.status_code == status, (fragment, r.text)
            assert fragment in r.json()["error"], r.text
            if status == 400 and "signature" in r.json()["error"]:
                assert SIGNATURE in r.json()["error"]
                assert r.headers["x-lepton-version"] == "1.0.0"
            _ok(w)
        # Chunked upload without Content-Length is still cut at the limit.
        r = w.client.post("/v2/models/scale/infer", content=iter([b"{" + b" " * 3000] * 3))
        assert r.status_code == 413
        r = w.client.post("/v2/models/scale/infer", json=GOOD, headers={"x-request-id": "trace-1"})
        assert r.headers["x-request-id"] == "trace-1" and r.json()["id"] == "trace-1"
        r = w.client.post("/v2/models/scale/infer", json={**GOOD, "id": "body-id"})
        assert len(r.headers["x-request-id"]) == 32 and r.json()["id"] == "body-id"


def test_nonfinite_and_onnxruntime_failures_count_for_their_version_only(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    reg.publish("scale", "1.0.0", scaled_identity(2.0))
    reg.publish("nan", "1.0.0", always_nan())
    reg.publish("raises", "1.0.0", raises_above_one_row())
    for model in ("scale", "nan", "raises"):
        reg.route(model, production="1.0.0")
    with serve(fast_settings(), storage.settings, store_settings) as w:
        for model in ("scale", "nan", "raises"):
            w.wait_routes(model, lambda r: r["production"] == "1.0.0")
        for _ in range(3):
            r = w.client.post("/v2/models/nan/infer", json=GOOD)
            assert r.status_code == 500 and "non-finite" in r.json()["error"]
            assert r.headers["x-lepton-version"] == "1.0.0"
            two_rows = {
                "inputs": [
                    {
                        **GOOD["inputs"][0],
                        "shape": [2, 4],
                        "data": list(range(8)),
                    }
                ]
            }
            r = w.client.post("/v2/models/raises/infer", json=two_rows)
            assert r.status_code == 500 and "ONNX Runtime failed" in r.json()["error"]
            _ok(w, "raises")
            _ok(w)
        metrics = MetricsStore(storage.tables)
        end = int(time.time()) + 60

        def errors(model: str) -> tuple[int, int, int] | None:
            row = metrics.totals(model, 0, end).get("1.0.0")
            return None if row is None else (row.requests, row.errors, row.nonfinite)

        wait_until(lambda: errors("nan") == (3, 3, 3), 10, "nan rollup")
        wait_until(lambda: errors("raises") == (6, 3, 0), 10, "raises rollup")
        wait_until(lambda: errors("scale") == (3, 0, 0), 10, "scale rollup")
        text = w.client.get("/metrics").text
        assert (
            'lepton_worker_requests_total{model="nan",outcome="nonfinite",version="1.0.0"} 3.0'
            in text
        )
        assert (
            'lepton_worker_requests_total{model="raises",outcome="error",version="1.0.0"} 3.0'
            in text
        )


def test_nonfinite_outputs_can_be_returned_when_configured(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    reg.publish("nan", "1.0.0", always_nan())
    reg.route("nan", production="1.0.0")
    with serve(fast_settings(nonfinite_is_error=False), storage.settings, store_settings) as w:
        w.wait_routes("nan", lambda r: r["production"] == "1.0.0")
        r = w.client.post("/v2/models/nan/infer", json=GOOD)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [None] * 4
        r = w.client.post(
            "/v2/models/nan/infer",
            json={**GOOD, "outputs": [{"name": "output", "parameters": {"binary_data": True}}]},
        )
        length = int(r.headers["inference-header-content-length"])
        assert np.isnan(np.frombuffer(r.content[length:], np.float32)).all()
