"""Pure helpers: route templates, CLI argument parsing, view arithmetic, caller failures."""

from __future__ import annotations

import math

import pytest

from lepton.dev.host import starlette_paths
from lepton.dev.loadgen import caller_failed
from lepton.dev.publish import parse_route_settings
from lepton.dev.views import p95_ms, step_text, traffic_of
from lepton.shared.errors import InvalidInput
from lepton.shared.metrics import LATENCY_BUCKETS_MS


def test_functions_route_templates_become_starlette_paths() -> None:
    assert starlette_paths("models/{model}/versions/{version}/approve") == [
        "/api/models/{model}/versions/{version}/approve"
    ]
    assert starlette_paths("health") == ["/api/health"]
    assert starlette_paths("items/{id:int}/{tail?}") == [
        "/api/items/{id}/{tail}",
        "/api/items/{id}",
    ]


def test_route_settings_parse_numbers_and_nulls_and_refuse_the_rest() -> None:
    assert parse_route_settings(["candidate=1.1.0", "candidate_weight_bp=500", "shadow=null"]) == {
        "candidate": "1.1.0",
        "candidate_weight_bp": 500,
        "shadow": None,
    }
    with pytest.raises(InvalidInput, match="key=value"):
        parse_route_settings(["weight=5"])
    with pytest.raises(InvalidInput, match="basis points"):
        parse_route_settings(["candidate_weight_bp=half"])


def test_p95_is_the_bound_of_the_bucket_holding_it() -> None:
    buckets = [0] * len(LATENCY_BUCKETS_MS)
    assert p95_ms(tuple(buckets)) is None
    buckets[2] = 94  # ≤ 1 ms
    buckets[7] = 6  # ≤ 10 ms
    assert p95_ms(tuple(buckets)) == 10
    buckets[2] = 96
    buckets[7] = 4
    assert p95_ms(tuple(buckets)) == 1


def test_traffic_split_and_step_text() -> None:
    routes = {"production": "1.0.0", "candidate": "1.1.0", "candidate_weight_bp": 2500}
    assert traffic_of("1.0.0", routes) == "75%"
    assert traffic_of("1.1.0", routes) == "25%"
    assert traffic_of("0.9.0", routes) == ""
    status = {"custom_status": {"step": 2, "steps": 3, "weight_bp": 5000, "decision": "continue"}}
    assert step_text(status) == "step 2/3 · 50% · continue"
    assert step_text(None) == ""


@pytest.mark.parametrize(
    ("status", "body", "failed"),
    [
        (200, {"outputs": [{"data": [1, 2.5]}]}, False),
        (200, {"outputs": [{"data": [1, None]}]}, True),
        (200, {"outputs": [{"data": [math.nan]}]}, True),
        (200, {"outputs": []}, True),
        (500, {"error": "x"}, True),
        (404, None, True),
    ],
)
def test_a_caller_fails_on_errors_and_on_non_finite_outputs(
    status: int, body: object, failed: bool
) -> None:
    assert caller_failed(status, body) is failed
