"""The small durable-context protocol the lifecycle orchestrator is written against.

The orchestrator body is a generator that yields the opaque tasks this protocol returns and
receives their results, exactly as both Durable Functions 1.x and the durabletask SDK expect; the
two adapters (:mod:`lepton.functions.adapter_azure`, :mod:`lepton.functions.adapter_durabletask`)
translate these calls, so the same body runs in Azure and locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# A task of the underlying framework; the orchestrator only yields it or passes it back.
DurableTask = Any


@dataclass(frozen=True)
class Retry:
    """Activity retry: ``attempts`` tries in all, the first retry after ``first_interval_s``."""

    first_interval_s: float
    attempts: int


class DurableContext(Protocol):
    @property
    def instance_id(self) -> str: ...

    @property
    def current_utc_datetime(self) -> datetime: ...

    def get_input(self) -> Any: ...

    def call_activity(self, name: str, input: Any, retry: Retry | None = None) -> DurableTask: ...

    def create_timer(self, fire_at: datetime) -> DurableTask: ...

    def wait_for_external_event(self, name: str) -> DurableTask: ...

    def task_all(self, tasks: list[DurableTask]) -> DurableTask: ...

    def task_any(self, tasks: list[DurableTask]) -> DurableTask: ...

    def set_custom_status(self, status: Any) -> None: ...

    def result_of(self, task: DurableTask) -> Any:
        """The value of a completed task (e.g. the winner of :meth:`task_any`)."""
        ...

    def failure_message(self, error: Exception) -> str:
        """The user-facing message of a failed activity, without framework decoration."""
        ...
