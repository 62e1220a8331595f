"""Which ONNX Runtime execution provider a replica uses, and the session options that go with it.

CUDA is chosen when ``onnxruntime`` offers ``CUDAExecutionProvider`` *and* a device is visible
(a CUDA-enabled wheel on a machine without a GPU would otherwise fail at the first session);
otherwise CPU with explicit thread counts, because ORT's default of one thread per core fights with
the event loop and with other replicas on the same node. The available-provider list and the device
probe are parameters so the selection logic is tested on machines without a GPU.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.errors import ConfigurationError

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_MIB = 1024 * 1024


def visible_cuda_devices(env: dict[str, str] | None = None, dev: Path = Path("/dev")) -> int:
    """How many NVIDIA devices this process can see (device nodes, minus CUDA_VISIBLE_DEVICES)."""
    env = dict(os.environ) if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "none", "void", "NoDevFiles"):
        return 0
    try:
        nodes = [p for p in dev.iterdir() if re.fullmatch(r"nvidia\d+", p.name)]
    except OSError:
        return 0
    if visible is not None:
        return min(len(nodes), len([v for v in visible.split(",") if v.strip()]))
    return len(nodes)


@dataclass(frozen=True)
class ProviderChoice:
    """The provider chain for every session of this replica, and why it was chosen."""

    name: str  # CUDA or CPU: what metadata, heartbeats and metrics report
    providers: tuple[tuple[str, dict[str, str]], ...]
    intra_op_threads: int
    inter_op_threads: int
    reason: str

    def session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return options

    def ort_providers(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, dict(opts)) for name, opts in self.providers]


def choose_provider(
    settings: WorkerSettings,
    available: Sequence[str] | None = None,
    device_count: Callable[[], int] | None = None,
) -> ProviderChoice:
    """Pick CUDA or CPU from the setting, what ORT offers and what devices are visible."""
    offered = list(ort.get_available_providers() if available is None else available)
    devices = (device_count or visible_cuda_devices)()
    cuda_usable = CUDA in offered and devices > settings.cuda_device_id
    threads = settings.effective_intra_op_threads
    if settings.provider == "cuda" and not cuda_usable:
        why = (
            f"onnxruntime offers {offered} (install onnxruntime-gpu)"
            if CUDA not in offered
            else f"{devices} CUDA device(s) visible, device id {settings.cuda_device_id} requested"
        )
        raise ConfigurationError(
            f"LEPTON_WORKER_PROVIDER=cuda but CUDA is not usable: {why}; set "
            "LEPTON_WORKER_PROVIDER=auto to fall back to CPU"
        )
    if settings.provider != "cpu" and cuda_usable:
        options = {
            "device_id": str(settings.cuda_device_id),
            "arena_extend_strategy": settings.cuda_arena_extend_strategy,
        }
        if settings.cuda_mem_limit_mb:
            options["gpu_mem_limit"] = str(settings.cuda_mem_limit_mb * _MIB)
        return ProviderChoice(
            CUDA,
            ((CUDA, options), (CPU, {})),
            # Host threads only run the CPU fallback nodes; keep them few.
            intra_op_threads=1,
            inter_op_threads=1,
            reason=f"CUDA device {settings.cuda_device_id} of {devices} visible",
        )
    if settings.provider == "cpu":
        reason = "LEPTON_WORKER_PROVIDER=cpu"
    elif CUDA not in offered:
        reason = "onnxruntime offers no CUDAExecutionProvider"
    else:
        reason = "CUDAExecutionProvider offered but no CUDA device is visible"
    return ProviderChoice(CPU, ((CPU, {}),), threads, settings.inter_op_threads, reason)
