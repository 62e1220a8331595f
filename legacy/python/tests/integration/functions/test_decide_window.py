"""The decide-window activity on real metric rollups in Azurite: the policy's composite weights
reach the decision, and a step at 100% is judged against production's baseline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lepton.functions.activities import decide_window
from lepton.functions.services import Services
from lepton.shared.canary import composite_score
from lepton.shared.metrics import LATENCY_BUCKETS_MS, SCORE_BINS, WindowRollup, latency_bucket
from lepton.shared.policy import resolve_policy
from lepton.shared.settings import ModelStoreSettings
from tests.conftest import Storage

pytestmark = pytest.mark.azurite

MODEL = "digits"
# Far from the default (0.5, 0.2, 0.3), so a decision scored with the defaults shows.
WEIGHTS = {"latency": 0.1, "resource": 0.1, "error": 0.8}


@pytest.fixture
def services(storage: Storage, tmp_path: Path) -> Iterator[Services]:
    yield Services.from_settings(storage.settings, ModelStoreSettings(cache_dir=tmp_path))


def write(
    services: Services,
    version: str,
    at: int,
    *,
    requests: int,
    errors: int = 0,
    routed: int | None = None,
    latency_ms: float = 4.0,
    pairs: int = 0,
) -> None:
    buckets = [0] * len(LATENCY_BUCKETS_MS)
    buckets[latency_bucket(latency_ms)] = requests
    bins = [0] * SCORE_BINS
    bins[-1] = requests
    services.metrics.write(
        WindowRollup(
            MODEL,
            version,
            "r1",
            at,
            1,
            requests=requests,
            routed_requests=requests if routed is None else routed,
            errors=errors,
            rows=requests,
            latency_buckets=tuple(buckets),
            latency_sum_ms=latency_ms * requests,
            compute_ms=0.1 * requests,
            score_bins=tuple(bins),
            shadow_pairs=pairs,
        )
    )


def payload(kind: str, weight_bp: int, start: int, end: int, **extra: Any) -> dict[str, Any]:
    policy = resolve_policy({"composite_weights": WEIGHTS, "thresholds": {"min_requests": 50}})
    return {
        "model": MODEL,
        "candidate": "1.0.1",
        "production": "1.0.0",
        "start": start,
        "end": end,
        "weight_bp": weight_bp,
        "final_step": False,
        "kind": kind,
        "policy": policy.to_json(),
        **extra,
    }


@pytest.mark.parametrize("kind", ["canary", "shadow"])
def test_decision_and_result_use_the_policys_composite_weights(
    services: Services, kind: str
) -> None:
    write(services, "1.0.1", 1000, requests=500, errors=2, pairs=500 if kind == "shadow" else 0)
    write(services, "1.0.0", 1000, requests=500, errors=1)

    result = decide_window(services, payload(kind, 5000, 1000, 1001))

    checks = result["decision"]["checks"]["composite"]
    assert checks == result["composite"]
    expected = composite_score(
        services.metrics.totals(MODEL, 1000, 1001)["1.0.1"], weights=(0.1, 0.1, 0.8)
    )
    assert checks["candidate"]["P"] == pytest.approx(expected["P"])


def test_full_weight_is_judged_against_the_earlier_steps_baseline(services: Services) -> None:
    write(services, "1.0.0", 1000, requests=800, errors=0)  # step 1 (50%)
    write(services, "1.0.1", 1000, requests=800, errors=0)
    write(services, "1.0.1", 1002, requests=800, errors=240)  # 100%: production gets nothing
    baseline = {
        "start": 1000,
        "end": 1002,
        "source": "earlier_steps",
        "description": "its own traffic during step 1 (50%) of this rollout",
    }

    result = decide_window(services, payload("canary", 10_000, 1002, 1003, baseline=baseline))

    decision = result["decision"]
    assert decision["verdict"] == "rollback"
    assert "vs production 0% (0/800)" in decision["reason"]
    assert decision["reason"].endswith(
        "; production baseline: its own traffic during step 1 (50%) of this rollout"
    )
    assert result["baseline"] == {**baseline, "requests": 800}
    assert result["production"]["requests"] == 800
    assert result["composite"]["production"]["P"] < result["composite"]["candidate"]["P"]


def test_without_baseline_traffic_the_window_itself_is_used(services: Services) -> None:
    write(services, "1.0.1", 1002, requests=800, errors=0)
    baseline = {"start": 1000, "end": 1002, "source": "before_switch", "description": "x"}

    result = decide_window(services, payload("canary", 10_000, 1002, 1003, baseline=baseline))

    assert result["baseline"] == {
        "start": 1002,
        "end": 1003,
        "source": "same_window",
        "description": "no production traffic in the baseline range; nothing to compare with",
        "requests": 0,
    }
    assert result["decision"]["verdict"] == "continue"
