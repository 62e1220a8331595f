"""Lepton's inference worker: many versions of a model served at once over the Open Inference
Protocol, with weighted and sticky routing, shadow mirroring, dynamic batching and hot swaps.

Public surface: :func:`create_app` (the ASGI app, used by tests and ``python -m
lepton.gpuworker``), :class:`WorkerSettings` with :data:`WORKER_SETTING_NAMES`, and the
:func:`choose_provider` logic.
"""

from __future__ import annotations

from lepton.gpuworker.app import build_app, create_app
from lepton.gpuworker.providers import ProviderChoice, choose_provider
from lepton.gpuworker.settings import WORKER_SETTING_NAMES, WorkerSettings

__all__ = [
    "WORKER_SETTING_NAMES",
    "ProviderChoice",
    "WorkerSettings",
    "build_app",
    "choose_provider",
    "create_app",
]
