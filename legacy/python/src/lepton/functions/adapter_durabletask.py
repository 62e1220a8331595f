"""Adapter from :class:`DurableContext` to the durabletask SDK's ``OrchestrationContext``.

Used by the local stack and the tests (with ``durabletask.testing``'s in-memory backend).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime, timedelta
from typing import Any

from durabletask import task as dt

from lepton.functions.durable_context import DurableContext, DurableTask, Retry

Body = Callable[[DurableContext], Generator[Any, Any, Any]]


class DurableTaskContext:
    """:class:`DurableContext` over ``durabletask.task.OrchestrationContext``."""

    def __init__(self, ctx: dt.OrchestrationContext, orchestration_input: Any) -> None:
        self._ctx = ctx
        self._input = orchestration_input

    @property
    def instance_id(self) -> str:
        return self._ctx.instance_id

    @property
    def current_utc_datetime(self) -> datetime:
        return self._ctx.current_utc_datetime

    def get_input(self) -> Any:
        return self._input

    def call_activity(self, name: str, input: Any, retry: Retry | None = None) -> DurableTask:
        policy = None
        if retry is not None and retry.attempts > 1:
            policy = dt.RetryPolicy(
                first_retry_interval=timedelta(seconds=retry.first_interval_s),
                max_number_of_attempts=retry.attempts,
            )
        return self._ctx.call_activity(name, input=input, retry_policy=policy)

    def create_timer(self, fire_at: datetime) -> DurableTask:
        return self._ctx.create_timer(fire_at)

    def wait_for_external_event(self, name: str) -> DurableTask:
        return self._ctx.wait_for_external_event(name)

    def task_all(self, tasks: list[DurableTask]) -> DurableTask:
        return dt.when_all(tasks)

    def task_any(self, tasks: list[DurableTask]) -> DurableTask:
        return dt.when_any(tasks)

    def set_custom_status(self, status: Any) -> None:
        self._ctx.set_custom_status(status)

    def result_of(self, task: DurableTask) -> Any:
        return task.get_result()

    def failure_message(self, error: Exception) -> str:
        if isinstance(error, dt.TaskFailedError):
            return str(error.details.message)
        return str(error)


def durabletask_orchestrator(
    body: Body,
) -> Callable[[dt.OrchestrationContext, Any], Generator[Any, Any, Any]]:
    """Wrap ``body`` as a durabletask orchestrator function."""

    def orchestrator(
        ctx: dt.OrchestrationContext, orchestration_input: Any
    ) -> Generator[Any, Any, Any]:
        return body(DurableTaskContext(ctx, orchestration_input))

    return orchestrator
