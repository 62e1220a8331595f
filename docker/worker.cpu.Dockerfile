# syntax=docker/dockerfile:1
# Lepton inference worker, CPU only (ONNX Runtime's CPU execution provider, the
# Microsoft.ML.OnnxRuntime package): for local runs, CI and regions without serverless GPUs.
# Built from the repository root:
#   docker build -f docker/worker.cpu.Dockerfile -t lepton-worker:cpu .
#
# Base images are pinned by exact version tags (SDK 10.0.401 as global.json, ASP.NET Core runtime
# 10.0.12): see worker.gpu.Dockerfile for why tags rather than digests.

# ---- build: restore, then publish the worker for linux-x64 against the shared runtime --------
FROM mcr.microsoft.com/dotnet/sdk:10.0.401-noble AS build
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1 \
    DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/Shared/Lepton.Shared.csproj src/Shared/
COPY src/GpuWorker/Lepton.GpuWorker.csproj src/GpuWorker/
RUN dotnet restore src/GpuWorker/Lepton.GpuWorker.csproj -r linux-x64
COPY src/Shared/ src/Shared/
COPY src/GpuWorker/ src/GpuWorker/
RUN dotnet publish src/GpuWorker/Lepton.GpuWorker.csproj --no-restore -c Release -r linux-x64 \
        --self-contained false -p:UseAppHost=false -o /app

# ---- runtime: the ASP.NET Core runtime image and the published worker -------------------------
FROM mcr.microsoft.com/dotnet/aspnet:10.0.12-noble AS runtime
LABEL org.opencontainers.image.title="lepton-worker-cpu" \
      org.opencontainers.image.description="Lepton ONNX Runtime inference worker (CPU)" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 lepton \
    && useradd --system --uid 10001 --gid lepton --create-home --home-dir /home/lepton lepton
COPY --from=build /app /app
# The aspnet image asks Kestrel for port 8080 (ASPNETCORE_HTTP_PORTS); the worker binds its own
# ports from LEPTON_WORKER_*, so clear it rather than have Kestrel warn about the override.
ENV ASPNETCORE_HTTP_PORTS= \
    LEPTON_WORKER_HOST=0.0.0.0 \
    LEPTON_WORKER_PORT=8000 \
    LEPTON_WORKER_GRPC_PORT=8001 \
    LEPTON_CACHE_DIR=/home/lepton/.cache/lepton
USER 10001:10001
WORKDIR /home/lepton
EXPOSE 8000 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${LEPTON_WORKER_PORT:-8000} && printf 'GET /v2/health/ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["dotnet", "/app/Lepton.GpuWorker.dll"]
