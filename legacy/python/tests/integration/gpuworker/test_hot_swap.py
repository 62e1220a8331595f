"""Versions load and unload while serving: swaps under load, the memory budget, batching, drain."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from lepton.dev import sample_models
from lepton.dev.azurite import free_port
from lepton.gpuworker.providers import choose_provider
from lepton.gpuworker.session import OnnxVersion
from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.lifecycle import Stage
from lepton.shared.manifest import Batching
from lepton.shared.settings import ModelStoreSettings
from lepton.shared.workers import WorkerDirectory
from tests.conftest import PROJECT_ROOT, Storage
from tests.integration.gpuworker._harness import Registry, fast_settings, serve, wait_until

pytestmark = pytest.mark.azurite
FACTORS = {"1.0.0": 1.0, "1.1.0": 2.0, "1.2.0": 3.0}


def _body(x: np.ndarray) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(x.shape),
                "data": x.ravel().tolist(),
            }
        ]
    }


async def _hammer(url: str, stop: asyncio.Event, concurrency: int) -> list[tuple[int, str, bool]]:
    """Closed-loop clients; each answer is checked against the version that claims it."""
    outcomes: list[tuple[int, str, bool]] = []
    x = np.arange(4, dtype=np.float32).reshape(1, 4) + 1

    async def one(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            r = await client.post("/v2/models/scale/infer", json=_body(x))
            version = r.headers.get("x-lepton-version", "")
            correct = r.status_code == 200 and np.array_equal(
                np.asarray(r.json()["outputs"][0]["data"], np.float32),
                x.ravel() * np.float32(FACTORS[version]),
            )
            outcomes.append((r.status_code, version, correct))

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))
    return outcomes


def _production_is(version: str) -> Callable[[dict[str, object]], bool]:
    return lambda routes: routes["production"] == version


def test_hot_swaps_under_concurrent_load_fail_zero_requests(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    for version, factor in FACTORS.items():
        stage = Stage.PRODUCTION if version == "1.0.0" else Stage.CANARY
        reg.publish("scale", version, sample_models.scaled_identity(factor), stage)
    reg.route("scale", production="1.0.0")
    # A short grace: replaced versions unload during the test, under load.
    with serve(fast_settings(unload_grace_s=0.3), storage.settings, store_settings) as w:
        w.wait_routes("scale", lambda r: r["production"] == "1.0.0")

        async def scenario() -> list[tuple[int, str, bool]]:
            stop = asyncio.Event()
            load = asyncio.ensure_future(_hammer(w.url, stop, concurrency=8))
            previous = "1.0.0"
            for target in ("1.1.0", "1.2.0"):
                await asyncio.sleep(0.4)
                # Promote: the new version takes production, the old one is superseded.
                await asyncio.to_thread(reg.move, "scale", target, Stage.PRODUCTION)
                await asyncio.to_thread(reg.move, "scale", previous, Stage.SUPERSEDED)
                await asyncio.to_thread(reg.route, "scale", production=target)
                await asyncio.to_thread(w.wait_routes, "scale", _production_is(target))
                previous = target
            await asyncio.sleep(0.6)
            stop.set()
            return await load

        outcomes = asyncio.run(scenario())
        failed = [o for o in outcomes if o[0] != 200 or not o[2]]
        assert not failed, failed[:5]
        served = {v for _, v, _ in outcomes}
        assert served == {"1.0.0", "1.1.0", "1.2.0"}
        assert len(outcomes) > 100
        # 1.0.0 has no traffic and is not the last known-good (1.1.0 is): it was unloaded.
        wait_until(lambda: w.runtime.pool.slot("scale", "1.0.0") is None, 5, "1.0.0 unloaded")
        assert w.runtime.pool.is_ready("scale", "1.1.0")


def test_memory_budget_evicts_idle_versions_lru_and_refuses_what_cannot_fit(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        stage = Stage.PRODUCTION if version == "1.0.0" else Stage.EVALUATING
        reg.publish("mlp", version, sample_models.mlp(width=512, depth=2, n_features=64), stage)
    x = np.zeros((1, 64), np.float32)
    # Footprint ≈ 2·(64·512 + 512·512 + 2·512)·4 B + 8 MiB ≈ 10.3 MiB: two fit in 24 MiB, not three.
    with serve(fast_settings(memory_budget_mb=24), storage.settings, store_settings) as w:
        reg.route("mlp", production="1.0.0")
        w.wait_routes("mlp", lambda r: r["production"] == "1.0.0")
        for pinned in ("2.0.0", "3.0.0"):
            w.client.post(f"/v2/models/mlp/versions/{pinned}/infer", json=_body(x))
            w.wait_ready("mlp", pinned)
        pool = w.runtime.pool
        # 3.0.0 needed room: the idle, unrouted 2.0.0 went; production 1.0.0 stayed.
        assert pool.slot("mlp", "2.0.0") is None
        assert pool.is_ready("mlp", "1.0.0") and pool.is_ready("mlp", "3.0.0")
    with serve(fast_settings(memory_budget_mb=15), storage.settings, store_settings) as w:
        w.wait_routes("mlp", lambda r: r["production"] == "1.0.0")
        r = w.client.post("/v2/models/mlp/versions/2.0.0/infer", json=_body(x))
        assert r.status_code == 503

        def refused() -> str:
            r = w.client.post("/v2/models/mlp/versions/2.0.0/infer", json=_body(x))
            return str(r.json()["error"]) if r.status_code == 503 else ""

        wait_until(lambda: "could not be loaded" in refused(), 10, "the refusal")
        message = refused()
        assert "LEPTON_WORKER_MEMORY_BUDGET_MB" in message and "mlp 1.0.0" in message
        assert "(production)" in message
        assert w.client.post("/v2/models/mlp/infer", json=_body(x)).status_code == 200


def test_batching_over_http_returns_exactly_the_unbatched_results(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    train, test = sample_models.digits()
    onnx_bytes = sample_models.better_digits(train)
    reg.publish(
        "digits", "1.0.0", onnx_bytes, batching=Batching(max_batch_size=16, max_delay_ms=20.0)
    )
    reg.route("digits", production="1.0.0")
    rows = [test.x[i : i + 1 + i % 3] for i in range(48)]
    with serve(fast_settings(), storage.settings, store_settings) as w:
        w.wait_routes("digits", lambda r: r["production"] == "1.0.0")
        meta = w.client.get("/v2/models/digits").json()["parameters"]
        assert meta["max_batch_size"] == 16 and meta["max_delay_ms"] == 20.0

        async def all_at_once() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=w.url, timeout=30) as client:
                return await asyncio.gather(
                    *(client.post("/v2/models/digits/infer", json=_body(x)) for x in rows)
                )

        responses = asyncio.run(all_at_once())
        text = w.client.get("/metrics").text
    batches = _metric(text, 'lepton_worker_batch_rows_count{model="digits",version="1.0.0"}')
    assert batches < len(rows) - 1  # some requests did share a batch (warm-up is not counted)
    path = store_settings.cache_dir / "local.onnx"
    path.write_bytes(onnx_bytes)
    local = OnnxVersion(
        "digits",
        "1.0.0",
        path,
        choose_provider(WorkerSettings(intra_op_threads=1)),
        max_batch_size=1,
    )
    for x, r in zip(rows, responses, strict=True):
        assert r.status_code == 200
        label, probs = local.session.run(None, {"input": x})
        out = {o["name"]: o for o in r.json()["outputs"]}
        np.testing.assert_array_equal(out["label"]["data"], label)
        np.testing.assert_array_equal(
            np.asarray(out["probabilities"]["data"], np.float32), probs.ravel()
        )


def _metric(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{prefix} not in /metrics")


def test_module_entry_point_drains_on_sigterm(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry, tmp_path: Path
) -> None:
    reg.publish("scale", "1.0.0", sample_models.scaled_identity(1.0))
    reg.route("scale", production="1.0.0")
    port = free_port()
    env = {
        **os.environ,
        "AzureWebJobsStorage": storage.connection_string,
        "LEPTON_CACHE_DIR": str(store_settings.cache_dir),
        "LEPTON_WORKER_PORT": str(port),
        "LEPTON_WORKER_REPLICA_ID": "entry-point",
        "LEPTON_WORKER_POLL_INTERVAL_S": "0.1",
        "LEPTON_WORKER_HEARTBEAT_S": "0.2",
        "LEPTON_WORKER_DRAIN_S": "1.0",
        "LEPTON_WORKER_INTRA_OP_THREADS": "1",
    }
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton.gpuworker"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=5) as client:

            def ready() -> bool:
                try:
                    return client.get("/v2/models/scale/ready").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, 20, "the worker process")
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            # Readiness goes false first while requests are still being served.
            assert client.get("/v2/health/ready").status_code == 503
            assert (
                client.post(
                    "/v2/models/scale/infer", json=_body(np.ones((1, 4), np.float32))
                ).status_code
                == 200
            )
        # Uvicorn re-raises the captured SIGTERM after its graceful shutdown, so the exit
        # status says "terminated by SIGTERM" — after the drain and the final heartbeat.
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM), (tmp_path / "worker.log").read_text()
        beats = {h.replica: h for h in WorkerDirectory(storage.tables).all()}
        assert beats["entry-point"].draining
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
