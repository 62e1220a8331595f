# syntax=docker/dockerfile:1
# Lepton inference worker with CUDA: Lepton.GpuWorker (ASP.NET Core) serving the Open Inference
# Protocol over HTTP on LEPTON_WORKER_PORT (8000) and gRPC on LEPTON_WORKER_GRPC_PORT (8001), with
# the CUDA build of ONNX Runtime (-p:LeptonGpu=true: Microsoft.ML.OnnxRuntime.Gpu.Linux 1.31.0).
# Built from the repository root (.dockerignore lets only the build inputs in):
#   docker build -f docker/worker.gpu.Dockerfile -t lepton-worker:gpu .
#   az acr build -r <registry> -f docker/worker.gpu.Dockerfile -t lepton-worker:<tag> .
#
# Microsoft.ML.OnnxRuntime.Gpu.Linux 1.31.0 links CUDA 13 (libcudart.so.13, libcublas.so.13,
# libcublasLt.so.13, libcurand.so.10) and loads cuDNN 9, so the runtime stage is NVIDIA's CUDA 13
# cuDNN *runtime* image: the libraries ORT loads, no compiler. CUDA 13 needs an NVIDIA driver of the
# R580 branch or later on the host (NVIDIA_REQUIRE_CUDA in the base image makes the container
# refuse to start on an older one instead of failing at the first inference).
#
# Base images are pinned by exact version tags: SDK 10.0.401 (global.json), ASP.NET Core runtime
# 10.0.12, CUDA 13.0.1 with cuDNN on Ubuntu 24.04. A tag at patch level names one release; the
# publisher rebuilds it only for OS security fixes, which an image rebuild should pick up. The
# exact image that runs is immutable anyway: `az acr build` pushes it under the commit's tag and
# records its digest, and a rollback redeploys an older tag (infra/bicep/README.md).

# ---- build: restore, then publish the worker for linux-x64 against the shared runtime --------
FROM mcr.microsoft.com/dotnet/sdk:10.0.401-noble AS build
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1 \
    DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
WORKDIR /src
# Restore from the project files alone, so an edit to the code reuses the restored layer.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/Shared/Lepton.Shared.csproj src/Shared/
COPY src/GpuWorker/Lepton.GpuWorker.csproj src/GpuWorker/
RUN dotnet restore src/GpuWorker/Lepton.GpuWorker.csproj -r linux-x64 -p:LeptonGpu=true
COPY src/Shared/ src/Shared/
COPY src/GpuWorker/ src/GpuWorker/
RUN dotnet publish src/GpuWorker/Lepton.GpuWorker.csproj --no-restore -c Release -r linux-x64 \
        --self-contained false -p:LeptonGpu=true -p:UseAppHost=false -o /app

# ---- the ASP.NET Core shared runtime, copied into the CUDA image below ------------------------
FROM mcr.microsoft.com/dotnet/aspnet:10.0.12-noble AS dotnet

# ---- runtime: CUDA 13 + cuDNN 9 libraries, the .NET runtime, the published worker -------------
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04 AS runtime
LABEL org.opencontainers.image.title="lepton-worker-gpu" \
      org.opencontainers.image.description="Lepton ONNX Runtime inference worker (CUDA)" \
      org.opencontainers.image.licenses="MIT"
# What the .NET runtime needs from the OS (the Ubuntu 24.04 names the aspnet image installs);
# ICU is not among them because Lepton runs with InvariantGlobalization.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates libssl3t64 tzdata zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 lepton \
    && useradd --system --uid 10001 --gid lepton --create-home --home-dir /home/lepton lepton
COPY --from=dotnet /usr/share/dotnet /usr/share/dotnet
COPY --from=build /app /app
ENV DOTNET_ROOT=/usr/share/dotnet \
    PATH=/usr/share/dotnet:${PATH} \
    LEPTON_WORKER_HOST=0.0.0.0 \
    LEPTON_WORKER_PORT=8000 \
    LEPTON_WORKER_GRPC_PORT=8001 \
    LEPTON_CACHE_DIR=/home/lepton/.cache/lepton
USER 10001:10001
WORKDIR /home/lepton
EXPOSE 8000 8001
# Docker and local runs use this; Container Apps uses the probes in infra/bicep/modules/workerApp.bicep.
# bash's /dev/tcp keeps curl out of the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${LEPTON_WORKER_PORT:-8000} && printf 'GET /v2/health/ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["dotnet", "/app/Lepton.GpuWorker.dll"]
