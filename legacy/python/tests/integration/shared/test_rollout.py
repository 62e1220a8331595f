"""Rollout operations: stage transitions are traced; traffic slots are never stolen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lepton.shared import rollout
from lepton.shared.errors import Conflict
from lepton.shared.lifecycle import Stage
from lepton.shared.records import Routes
from lepton.shared.registry import TableRegistry
from tests.conftest import Storage

pytestmark = pytest.mark.azurite


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def test_transition_is_a_span_with_model_and_version(
    storage: Storage, spans: InMemorySpanExporter
) -> None:
    registry = TableRegistry(storage.tables)
    registry.register_version("digits", "1.0.0", sha256="ab" * 32, size=1, blob_path="p")
    rollout.transition(
        registry,
        "digits",
        "1.0.0",
        Stage.VALIDATING,
        expected_from=Stage.REGISTERED,
        reason="validation started",
    )

    [span] = [s for s in spans.get_finished_spans() if s.name == "lepton.stage_transition"]
    assert dict(span.attributes or {}) == {
        "lepton.model": "digits",
        "lepton.version": "1.0.0",
        "lepton.from_stage": "registered",
        "lepton.to_stage": "validating",
        "lepton.reason": "validation started",
    }


def _in_stage(registry: TableRegistry, version: str, *stages: Stage) -> None:
    registry.register_version(
        "digits", version, sha256=version.replace(".", "") * 8, size=1, blob_path="p"
    )
    for stage in stages:
        registry.transition("digits", version, stage, reason="test setup", actor="t")


def test_a_slot_held_by_another_version_is_never_taken_over(storage: Storage) -> None:
    registry = TableRegistry(storage.tables)
    _in_stage(registry, "1.0.0", Stage.VALIDATING, Stage.EVALUATING, Stage.PRODUCTION)
    _in_stage(registry, "1.0.1", Stage.VALIDATING, Stage.EVALUATING, Stage.CANARY)
    _in_stage(registry, "1.0.2", Stage.VALIDATING, Stage.EVALUATING, Stage.CANARY)
    registry.set_routes(Routes("digits", production="1.0.0"), actor="t", reason="setup")
    rollout.set_traffic(
        registry,
        "digits",
        candidate="1.0.1",
        candidate_weight_bp=500,
        shadow=None,
        shadow_fraction_bp=0,
        owner="1.0.1",
        reason="step 1",
    )

    with pytest.raises(Conflict, match=r"candidate slot of 'digits' is held by 1\.0\.1"):
        rollout.set_traffic(
            registry,
            "digits",
            candidate="1.0.2",
            candidate_weight_bp=0,
            shadow=None,
            shadow_fraction_bp=0,
            owner="1.0.2",
            reason="pre-warm",
        )
    routes = registry.get_routes("digits")
    assert (routes.candidate, routes.candidate_weight_bp) == ("1.0.1", 500)
    # The owner may change its own weight; repeating the same change writes nothing new.
    again = rollout.set_traffic(
        registry,
        "digits",
        candidate="1.0.1",
        candidate_weight_bp=500,
        shadow=None,
        shadow_fraction_bp=0,
        owner="1.0.1",
        reason="retry",
    )
    assert again.generation == routes.generation
