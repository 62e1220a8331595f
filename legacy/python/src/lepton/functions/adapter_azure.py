"""Adapter from :class:`DurableContext` to azure-functions-durable 1.x.

Registered on a Durable Functions blueprint in :mod:`lepton.functions.blueprint`; the tests drive
it with recorded histories through ``azure.durable_functions.Orchestrator``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any

import azure.durable_functions as df

from lepton.functions.durable_context import DurableContext, DurableTask, Retry

Body = Callable[[DurableContext], Generator[Any, Any, Any]]


class AzureDurableContext:
    """:class:`DurableContext` over ``df.DurableOrchestrationContext``.

    Every payload of the lifecycle (input, activity results, operator events) is a JSON object,
    so each call passes ``expected_type=dict``: the SDK validates the shape instead of guessing.
    """

    def __init__(self, ctx: df.DurableOrchestrationContext) -> None:
        self._ctx = ctx

    @property
    def instance_id(self) -> str:
        return str(self._ctx.instance_id)

    @property
    def current_utc_datetime(self) -> datetime:
        value: datetime = self._ctx.current_utc_datetime
        return value

    def get_input(self) -> Any:
        return self._ctx.get_input(expected_type=dict)

    def call_activity(self, name: str, input: Any, retry: Retry | None = None) -> DurableTask:
        if retry is not None and retry.attempts > 1:
            options = df.RetryOptions(
                first_retry_interval_in_milliseconds=max(1, int(retry.first_interval_s * 1000)),
                max_number_of_attempts=retry.attempts,
            )
            task = self._ctx.call_activity_with_retry(name, options, input, expected_type=dict)
            # SDK 1.x sets the type on the retry wrapper only, but the result is decoded on the
            # wrapped first attempt, which would fall back to untyped decoding (and warn).
            for child in getattr(task, "children", ()):
                child._expected_output_type = dict
            return task
        return self._ctx.call_activity(name, input, expected_type=dict)

    def create_timer(self, fire_at: datetime) -> DurableTask:
        return self._ctx.create_timer(fire_at)

    def wait_for_external_event(self, name: str) -> DurableTask:
        return self._ctx.wait_for_external_event(name, expected_type=dict)

    def task_all(self, tasks: list[DurableTask]) -> DurableTask:
        return self._ctx.task_all(tasks)

    def task_any(self, tasks: list[DurableTask]) -> DurableTask:
        return self._ctx.task_any(tasks)

    def set_custom_status(self, status: Any) -> None:
        self._ctx.set_custom_status(status)

    def result_of(self, task: DurableTask) -> Any:
        return task.result

    def failure_message(self, error: Exception) -> str:
        # The extension reports "<reason> \n <details>"; the reason line is the user message.
        text = str(error).split(" \n ", 1)[0].strip()
        marker = "Exception: "
        return text.split(marker, 1)[1] if marker in text else text


def azure_orchestrator(
    body: Body,
) -> Callable[[df.DurableOrchestrationContext], Generator[Any, Any, Any]]:
    """Wrap ``body`` as an azure-functions-durable generator orchestrator."""

    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        return body(AzureDurableContext(context))

    return orchestrator
