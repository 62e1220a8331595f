"""Existing Open Inference Protocol clients work unchanged: tritonclient's HTTP client, with and
without binary tensor data, and plain health/metadata/metrics endpoints."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton

from lepton.dev import sample_models
from lepton.gpuworker.providers import choose_provider
from lepton.gpuworker.session import OnnxVersion
from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.settings import ModelStoreSettings
from lepton.shared.workers import WorkerDirectory
from tests.conftest import Storage
from tests.integration.gpuworker._harness import Registry, fast_settings, serve, wait_until

pytestmark = pytest.mark.azurite


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_http_infer(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry, binary: bool
) -> None:
    train, test = sample_models.digits()
    onnx_bytes = sample_models.better_digits(train)
    reg.publish("digits", "1.0.0", onnx_bytes)
    reg.route("digits", production="1.0.0")
    x = test.x[:5]
    with serve(fast_settings(), storage.settings, store_settings) as w:
        w.wait_routes("digits", lambda r: r["production"] == "1.0.0")
        client = triton.InferenceServerClient(w.url.removeprefix("http://"))
        try:
            assert client.is_server_live() and client.is_server_ready()
            assert client.is_model_ready("digits") and client.is_model_ready("digits", "1.0.0")
            meta = client.get_model_metadata("digits")
            assert meta["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 64]}
            assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
            tensor = triton.InferInput("input", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            outputs = [
                triton.InferRequestedOutput(n, binary_data=binary)
                for n in ("label", "probabilities")
            ]
            result = client.infer("digits", [tensor], outputs=outputs, request_id="t-1")
            pinned = client.infer("digits", [tensor], model_version="1.0.0")  # all binary
        finally:
            client.close()
    path = store_settings.cache_dir / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_bytes)
    local = OnnxVersion(
        "digits",
        "1.0.0",
        path,
        choose_provider(WorkerSettings(intra_op_threads=1)),
        max_batch_size=1,
    )
    expected = local.session.run(None, {"input": x})
    for r in (result, pinned):
        assert r.get_response()["model_version"] == "1.0.0"
        np.testing.assert_array_equal(r.as_numpy("label"), expected[0])
        np.testing.assert_array_equal(r.as_numpy("probabilities"), expected[1])
    assert result.get_response()["id"] == "t-1"


def test_heartbeats_and_prometheus_metrics(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    reg.publish("scale", "1.0.0", sample_models.scaled_identity(1.0))
    reg.route("scale", production="1.0.0")
    directory = WorkerDirectory(storage.tables)
    settings = fast_settings(replica_id="replica-a")
    with serve(settings, storage.settings, store_settings) as w:
        w.wait_ready("scale", "1.0.0")

        def beat_ready() -> bool:
            beats = {h.replica: h for h in directory.all()}
            return "replica-a" in beats and beats["replica-a"].is_ready("scale", "1.0.0")

        wait_until(beat_ready, 10, "a heartbeat with 1.0.0 ready")
        beat = {h.replica: h for h in directory.all()}["replica-a"]
        assert beat.provider == "CPUExecutionProvider" and beat.url == w.url
        assert beat.loaded == {"scale": ("1.0.0",)} and not beat.draining
        body = {
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]
        }
        for _ in range(3):
            assert w.client.post("/v2/models/scale/infer", json=body).status_code == 200
        text = w.client.get("/metrics").text
        assert (
            'lepton_worker_requests_total{model="scale",outcome="ok",version="1.0.0"} 3.0' in text
        )
        assert 'lepton_worker_info{provider="CPUExecutionProvider",replica="replica-a"} 1.0' in text
        assert 'lepton_worker_version_ready{model="scale",version="1.0.0"} 1.0' in text
        assert 'lepton_worker_batch_rows_count{model="scale",version="1.0.0"}' in text
        assert 'lepton_worker_queue_seconds_bucket{le="0.001",model="scale"' in text
    # Shutting down publishes a last heartbeat marked draining: it no longer counts as live.
    assert {h.replica: h for h in directory.all()}["replica-a"].draining
