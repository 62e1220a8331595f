"""The lifecycle on the durabletask SDK, for the local stack and the tests.

:func:`register_durabletask` registers the same orchestrator body and activity table the
Functions app uses on a ``TaskHubGrpcWorker``; :func:`resume_active_lifecycles` is the restart
reconciler: every version in a non-terminal stage whose orchestration is missing or failed (the
in-memory backend forgets everything on restart) gets its lifecycle started again, with the policy
overrides its run was started with (kept on the version row by the HTTP start), and the
orchestrator picks up from the version's stored stage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from durabletask import task as dt
from durabletask.worker import TaskHubGrpcWorker

from lepton.functions import names
from lepton.functions.activities import ACTIVITIES, Activity
from lepton.functions.adapter_durabletask import durabletask_orchestrator
from lepton.functions.client import LifecycleClient, start_lifecycle
from lepton.functions.orchestrator import LifecycleInput, lifecycle
from lepton.functions.services import Services
from lepton.shared.lifecycle import ACTIVE_STAGES

ActivityFn = Callable[[dt.ActivityContext, Any], Any]


def _bind(name: str, activity: Activity, services: Services) -> ActivityFn:
    def run(ctx: dt.ActivityContext, payload: Any) -> Any:
        return activity(services, payload)

    run.__name__ = name  # durabletask registers activities under the function's name
    return run


def register_durabletask(worker: TaskHubGrpcWorker, services: Services) -> None:
    """Register the lifecycle orchestrator and every activity on ``worker``."""
    orchestrator = durabletask_orchestrator(lifecycle)
    orchestrator.__name__ = names.LIFECYCLE_ORCHESTRATOR
    worker.add_orchestrator(orchestrator)
    for name, activity in ACTIVITIES.items():
        worker.add_activity(_bind(name, activity, services))


async def resume_active_lifecycles(services: Services, client: LifecycleClient) -> list[str]:
    """Restart the lifecycle of every non-terminal version lacking a live orchestration."""
    resumed: list[str] = []
    registry = services.registry
    for model in await asyncio.to_thread(registry.list_models):
        for record in await asyncio.to_thread(registry.list_versions, model):
            if record.stage not in ACTIVE_STAGES:
                continue
            request = LifecycleInput(
                model, record.version, record.sha256, record.policy_overrides, "reconciler"
            )
            started = await start_lifecycle(client, request)
            if started.started:
                resumed.append(started.instance_id)
    return resumed
