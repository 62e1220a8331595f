# syntax=docker/dockerfile:1.7
# Lepton inference worker, CPU only (ONNX Runtime's CPU execution provider): for local runs, CI
# and regions without serverless GPUs. Built from the repository root:
#   docker build -f docker/worker.cpu.Dockerfile -t lepton-worker:cpu .
# ---- builder: a virtualenv with Lepton and its dependencies -------------------------------------
FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install .

# ---- runtime: the interpreter and the virtualenv; no build tools --------------------------------
FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="lepton-worker-cpu" \
      org.opencontainers.image.description="Lepton ONNX Runtime inference worker (CPU)" \
      org.opencontainers.image.source="https://github.com/lepton/lepton"
RUN groupadd --system --gid 10001 lepton \
    && useradd --system --uid 10001 --gid lepton --create-home --home-dir /home/lepton lepton
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LEPTON_WORKER_HOST=0.0.0.0 \
    LEPTON_WORKER_PORT=8000 \
    LEPTON_CACHE_DIR=/home/lepton/.cache/lepton
USER 10001:10001
WORKDIR /home/lepton
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('LEPTON_WORKER_PORT', '8000'), timeout=4)"]
CMD ["python", "-m", "lepton.gpuworker"]
