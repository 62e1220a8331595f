"""Provider selection with injected provider lists and device probes (this machine has no GPU)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from lepton.gpuworker.providers import CPU, CUDA, choose_provider, visible_cuda_devices
from lepton.gpuworker.settings import WorkerSettings
from lepton.shared.errors import ConfigurationError


def test_cuda_when_offered_and_a_device_is_visible() -> None:
    s = WorkerSettings(
        cuda_device_id=1, cuda_mem_limit_mb=2048, cuda_arena_extend_strategy="kSameAsRequested"
    )
    choice = choose_provider(s, [CUDA, CPU], lambda: 2)
    assert choice.name == CUDA
    assert choice.providers[0] == (
        CUDA,
        {
            "device_id": "1",
            "arena_extend_strategy": "kSameAsRequested",
            "gpu_mem_limit": str(2048 * 1024 * 1024),
        },
    )
    assert choice.providers[-1][0] == CPU  # nodes CUDA cannot run fall back to CPU


def test_cpu_when_cuda_is_offered_but_no_device_is_visible() -> None:
    choice = choose_provider(WorkerSettings(intra_op_threads=3), [CUDA, CPU], lambda: 0)
    assert choice.name == CPU
    assert "no CUDA device" in choice.reason
    assert choice.intra_op_threads == 3
    options = choice.session_options()
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1


def test_cpu_when_onnxruntime_has_no_cuda_build() -> None:
    choice = choose_provider(WorkerSettings(), [CPU], lambda: 4)
    assert choice.name == CPU and "offers no CUDA" in choice.reason
    assert choice.intra_op_threads >= 1  # explicit, never ORT's implicit default


def test_cpu_forced_even_with_a_gpu() -> None:
    assert choose_provider(WorkerSettings(provider="cpu"), [CUDA, CPU], lambda: 1).name == CPU


@pytest.mark.parametrize(
    ("offered", "devices", "why"),
    [
        ([CPU], 1, "install onnxruntime-gpu"),
        ([CUDA, CPU], 0, "0 CUDA device"),
    ],
)
def test_cuda_forced_but_unusable_fails_with_the_reason(
    offered: list[str], devices: int, why: str
) -> None:
    with pytest.raises(ConfigurationError, match=why):
        choose_provider(WorkerSettings(provider="cuda"), offered, lambda: devices)


def test_device_id_beyond_the_visible_devices_falls_back() -> None:
    assert choose_provider(WorkerSettings(cuda_device_id=2), [CUDA, CPU], lambda: 1).name == CPU


def test_this_machine_selects_what_onnxruntime_really_offers() -> None:
    choice = choose_provider(WorkerSettings())
    expected = CUDA if CUDA in ort.get_available_providers() and visible_cuda_devices() else CPU
    assert choice.name == expected


def test_visible_devices_counts_device_nodes_and_honours_cuda_visible_devices(
    tmp_path: Path,
) -> None:
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    assert visible_cuda_devices({}, tmp_path) == 2
    assert visible_cuda_devices({"CUDA_VISIBLE_DEVICES": "1"}, tmp_path) == 1
    assert visible_cuda_devices({"CUDA_VISIBLE_DEVICES": "-1"}, tmp_path) == 0
    assert visible_cuda_devices({"CUDA_VISIBLE_DEVICES": ""}, tmp_path) == 0
    assert visible_cuda_devices({}, tmp_path / "missing") == 0
