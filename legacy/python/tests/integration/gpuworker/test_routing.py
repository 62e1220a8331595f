"""Two versions served at once: the weighted split, sticky callers, pinned versions, shadow.

Versions are real ONNX files in Azurite, registered and routed through the registry; the worker is
reached over HTTP on 127.0.0.1. ``scaled_identity(k)`` answers ``k·input``, so every response
proves which version computed it, independent of the header that claims it.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
from scipy.stats import binomtest

from lepton.dev import sample_models
from lepton.dev.sample_models import scaled_identity
from lepton.gpuworker.router import sticky_bucket
from lepton.shared.lifecycle import Stage
from lepton.shared.metrics import MetricsStore, WindowRollup
from lepton.shared.settings import ModelStoreSettings
from tests.conftest import Storage
from tests.integration.gpuworker._harness import Registry, Worker, fast_settings, serve, wait_until

pytestmark = pytest.mark.azurite
# Negating (1.2.0) flips the argmax of every row with distinct values: each shadow pair flips.
FACTORS = {"1.0.0": 1.0, "1.1.0": 2.0, "2.0.0": 3.0, "1.2.0": -1.0}


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


def _call(
    w: Worker,
    model: str,
    x: np.ndarray,
    headers: dict[str, str] | None = None,
    version: str | None = None,
) -> str:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    r = w.client.post(path, json=_body(x), headers=headers)
    assert r.status_code == 200, r.text
    served = r.headers["x-lepton-version"]
    doc = r.json()
    assert doc["model_version"] == served
    out = np.asarray(doc["outputs"][0]["data"], np.float32).reshape(x.shape)
    np.testing.assert_array_equal(out, x * np.float32(FACTORS[served]))
    return served


def _two_versions(reg: Registry, weight_bp: int, sticky: str | None = None) -> None:
    reg.publish("scale", "1.0.0", scaled_identity(FACTORS["1.0.0"]))
    reg.publish("scale", "1.1.0", scaled_identity(FACTORS["1.1.0"]), Stage.CANARY)
    reg.route(
        "scale",
        production="1.0.0",
        candidate="1.1.0",
        candidate_weight_bp=weight_bp,
        sticky_header=sticky,
    )


def _wait_weight(w: Worker, weight_bp: int) -> None:
    w.wait_routes("scale", lambda r: r["candidate_weight_bp"] == weight_bp)


def test_weighted_split_is_within_statistical_tolerance_and_reaches_the_metrics(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    _two_versions(reg, 3_000)
    with serve(fast_settings(), storage.settings, store_settings) as w:
        _wait_weight(w, 3_000)
        rng = np.random.default_rng(0)
        n = 600
        served = [_call(w, "scale", rng.random((1, 4), np.float32)) for _ in range(n)]
        hits = served.count("1.1.0")
        # Two-sided exact binomial test at 0.1%: a correct router fails it once in 1000 runs.
        assert binomtest(hits, n, 0.30).pvalue > 0.001, hits
        metrics = MetricsStore(storage.tables)

        def routed_counts() -> dict[str, int]:
            totals = metrics.totals("scale", 0, int(time.time()) + 60)
            return {v: r.routed_requests for v, r in totals.items()}

        wait_until(lambda: routed_counts() == {"1.0.0": n - hits, "1.1.0": hits}, 10, "rollups")
        totals = metrics.totals("scale", 0, int(time.time()) + 60)
        for version, row in totals.items():
            assert row.replica == "test-replica" and row.window_seconds == 10
            assert row.window_start % 10 == 0
            assert row.requests == row.routed_requests == row.rows
            assert row.errors == 0 and row.nonfinite == 0
            assert sum(row.latency_buckets) == row.requests and row.latency_sum_ms > 0
            assert row.compute_ms > 0 and sum(row.score_bins) == row.rows
            assert (version, row.shadow_pairs) in (("1.0.0", 0), ("1.1.0", 0))


def test_sticky_callers_never_flip_as_the_weight_grows(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    _two_versions(reg, 500, sticky="x-user")
    callers = [f"user-{i}" for i in range(120)]
    x = np.ones((1, 4), np.float32)
    with serve(fast_settings(), storage.settings, store_settings) as w:
        seen: dict[str, list[str]] = {c: [] for c in callers}
        for weight in (500, 2_500, 6_000, 10_000):
            if weight != 500:
                reg.route("scale", candidate_weight_bp=weight)
            _wait_weight(w, weight)
            for caller in callers:
                for _ in range(2):  # the same caller twice at the same weight: same answer
                    seen[caller].append(_call(w, "scale", x, {"x-user": caller}))
                expected = "1.1.0" if sticky_bucket("scale", caller) < weight else "1.0.0"
                assert seen[caller][-1] == seen[caller][-2] == expected
        for caller, versions in seen.items():
            moved = versions.index("1.1.0") if "1.1.0" in versions else len(versions)
            assert set(versions[moved:]) <= {"1.1.0"}, (caller, versions)
        assert all(v[-1] == "1.1.0" for v in seen.values())
        assert sum(v[0] == "1.0.0" for v in seen.values()) > 100


def test_pinned_versions_unknown_names_and_on_demand_loading(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    _two_versions(reg, 0)
    reg.publish("scale", "2.0.0", scaled_identity(FACTORS["2.0.0"]), Stage.EVALUATING)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    with serve(fast_settings(), storage.settings, store_settings) as w:
        w.wait_ready("scale", "1.1.0")
        assert all(_call(w, "scale", x) == "1.0.0" for _ in range(20))  # weight 0
        assert _call(w, "scale", x, version="1.1.0") == "1.1.0"
        r = w.client.post("/v2/models/scale/versions/9.9.9/infer", json=_body(x))
        assert r.status_code == 404 and "no version 9.9.9" in r.json()["error"]
        r = w.client.post("/v2/models/nope/infer", json=_body(x))
        assert r.status_code == 404 and "not served" in r.json()["error"]
        r = w.client.post("/v2/models/scale/versions/not-semver/infer", json=_body(x))
        assert r.status_code == 400 and "SemVer" in r.json()["error"]
        # Registered but not routed: the first pinned call starts loading it and says so.
        r = w.client.post("/v2/models/scale/versions/2.0.0/infer", json=_body(x))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "loading" in r.json()["error"]
        w.wait_ready("scale", "2.0.0")
        assert _call(w, "scale", x, version="2.0.0") == "2.0.0"
        meta = w.client.get("/v2/models/scale/versions/2.0.0").json()
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["parameters"]["provider"] == "CPUExecutionProvider"
        assert w.client.get("/v2/models/scale/versions/9.9.9/ready").status_code == 404
        assert w.client.get("/v2/models/scale/ready").status_code == 200


def test_shadow_copies_never_change_caller_results_and_are_compared(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    reg.publish("scale", "1.0.0", scaled_identity(1.0))
    reg.publish("scale", "1.2.0", scaled_identity(FACTORS["1.2.0"]), Stage.SHADOW)
    reg.route("scale", production="1.0.0", shadow="1.2.0", shadow_fraction_bp=10_000)
    rng = np.random.default_rng(1)
    n = 40
    with serve(fast_settings(), storage.settings, store_settings) as w:
        w.wait_routes("scale", lambda r: r["shadow"] == "1.2.0")
        for _ in range(n):
            x = rng.permutation(4).astype(np.float32).reshape(1, 4) + 1
            assert _call(w, "scale", x) == "1.0.0"  # checks the output is production's
        metrics = MetricsStore(storage.tables)

        def shadow_pairs() -> int:
            row = metrics.totals("scale", 0, int(time.time()) + 60).get("1.2.0")
            return 0 if row is None else row.shadow_pairs

        wait_until(lambda: shadow_pairs() == n, 10, "shadow pairs")
        totals = metrics.totals("scale", 0, int(time.time()) + 60)
        shadow, prod = totals["1.2.0"], totals["1.0.0"]
        assert shadow.shadow_flips == n and shadow.routed_requests == 0
        assert shadow.requests == n and len(shadow.paired_latency_diff_ms) == n
        assert prod.routed_requests == n and prod.shadow_pairs == 0


def test_a_slow_shadow_does_not_slow_the_caller(
    storage: Storage, store_settings: ModelStoreSettings, reg: Registry
) -> None:
    train, test = sample_models.digits()
    reg.publish("digits", "1.0.0", sample_models.better_digits(train))
    # Same predictions, 1,000 extra 512x512 matmuls per row (~13 ms on one core, ~10x the
    # caller's round trip): a shadow that blocked the caller could not stay under the bound.
    reg.publish("digits", "1.1.0", sample_models.slow_digits(train, rounds=1000), Stage.SHADOW)
    reg.route("digits", production="1.0.0", shadow="1.1.0", shadow_fraction_bp=10_000)
    n = 15
    with serve(fast_settings(), storage.settings, store_settings) as w:
        w.wait_routes("digits", lambda r: r["shadow"] == "1.1.0")
        caller_ms = []
        for i in range(n):
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": [1, 64],
                        "data": test.x[i].tolist(),
                    }
                ]
            }
            started = time.perf_counter()
            r = w.client.post("/v2/models/digits/infer", json=body)
            caller_ms.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200 and r.headers["x-lepton-version"] == "1.0.0"
        metrics = MetricsStore(storage.tables)

        def shadow_row() -> WindowRollup | None:
            return metrics.totals("digits", 0, int(time.time()) + 60).get("1.1.0")

        wait_until(lambda: getattr(shadow_row(), "shadow_pairs", 0) == n, 20, "shadow pairs")
        row = shadow_row()
        assert row is not None and row.shadow_flips == 0  # same classifier, same labels
        shadow_ms = row.compute_ms / row.requests
    assert statistics.median(caller_ms) < 0.5 * shadow_ms, (caller_ms, shadow_ms)
