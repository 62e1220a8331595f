# syntax=docker/dockerfile:1.7
# Lepton GPU inference worker: `python -m lepton.gpuworker` serving the Open Inference Protocol on
# LEPTON_WORKER_PORT (8000). Built from the repository root:
#   docker build -f docker/worker.gpu.Dockerfile -t lepton-worker:gpu .
#   az acr build -r <registry> -f docker/worker.gpu.Dockerfile -t lepton-worker:<tag> .
#
# onnxruntime-gpu from PyPI is built against CUDA 12 and cuDNN 9, so both stages use the CUDA 12
# cuDNN *runtime* image: the final stage has the CUDA libraries ORT loads and no compiler. The tag
# is spelled out in both FROM lines (not an ARG) so linters can check it is pinned.
ARG PYTHON_VERSION=3.11

# ---- builder: a standalone CPython 3.11 and a virtualenv with Lepton and onnxruntime-gpu --------
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04 AS builder
ARG PYTHON_VERSION
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# uv only fetches a relocatable CPython build (Ubuntu 22.04 ships 3.10); pip does the installing.
COPY --from=ghcr.io/astral-sh/uv:0.5.11 /uv /usr/local/bin/uv
RUN uv python install "${PYTHON_VERSION}" \
    && "$(uv python find "${PYTHON_VERSION}")" -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# `.[gpu]` also pulls the CPU onnxruntime (a core dependency); both wheels ship the same
# `onnxruntime` package, so reinstall the GPU wheel last, at the version pip resolved, to make sure
# its files (with the CUDA execution provider) are the ones left on disk.
RUN /opt/venv/bin/pip install ".[gpu]" \
    && ORT_GPU_VERSION="$(/opt/venv/bin/python -c 'import importlib.metadata as m; print(m.version("onnxruntime-gpu"))')" \
    && /opt/venv/bin/pip uninstall --yes onnxruntime onnxruntime-gpu \
    && /opt/venv/bin/pip install --no-deps "onnxruntime-gpu==${ORT_GPU_VERSION}"

# ---- runtime: CUDA runtime libraries, the interpreter, the virtualenv; no build tools -----------
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04 AS runtime
ARG PYTHON_VERSION
LABEL org.opencontainers.image.title="lepton-worker-gpu" \
      org.opencontainers.image.description="Lepton ONNX Runtime inference worker (CUDA)" \
      org.opencontainers.image.source="https://github.com/lepton/lepton"
RUN groupadd --system --gid 10001 lepton \
    && useradd --system --uid 10001 --gid lepton --create-home --home-dir /home/lepton lepton
COPY --from=builder /opt/python /opt/python
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEPTON_WORKER_HOST=0.0.0.0 \
    LEPTON_WORKER_PORT=8000 \
    LEPTON_CACHE_DIR=/home/lepton/.cache/lepton \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
WORKDIR /home/lepton
EXPOSE 8000
# Docker and local runs use this; Container Apps uses the probes in infra/bicep/modules/workerApp.bicep.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('LEPTON_WORKER_PORT', '8000'), timeout=4)"]
CMD ["python", "-m", "lepton.gpuworker"]
