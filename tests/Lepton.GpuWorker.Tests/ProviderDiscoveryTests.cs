using System.Text.Json;
using Lepton.GpuWorker.Serving;
using Lepton.GpuWorker.Tests.Harness;
using Lepton.Testing;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace Lepton.GpuWorker.Tests;

/// <summary>The host's provider choice comes from discovery (injected here: this machine has no GPU) and is reported.</summary>
public sealed class ProviderDiscoveryTests(AzuriteFixture azurite)
{
    [Fact(Timeout = 60_000)]
    public async Task The_chosen_provider_is_reported_by_metadata_and_metrics()
    {
        var ct = TestContext.Current.CancellationToken;
        var cache = Path.Combine(Path.GetTempPath(), "lepton-worker-" + Guid.NewGuid().ToString("N")[..8]);
        var settings = WorkerHost.Defaults(azurite, cache, TestNames.Model("gpu"));
        settings["LEPTON_WORKER_CUDA_DEVICE_ID"] = "1";
        await using var worker = await WorkerHost.StartAsync(settings, services =>
            services.AddSingleton(new ProviderDiscovery(() => [ExecutionProviders.Cuda, ExecutionProviders.Cpu], () => 2)));
        using var server = JsonDocument.Parse(await worker.Http.GetStringAsync("/v2", ct));
        Assert.Equal(ExecutionProviders.Cuda, server.RootElement.GetProperty("provider").GetString());
        Assert.Equal("CUDA device 1 of 2 visible", server.RootElement.GetProperty("provider_reason").GetString());
        var metrics = await worker.Http.GetStringAsync("/metrics", ct);
        Assert.Contains($"lepton_worker_info{{replica=\"{worker.Replica}\",provider=\"CUDAExecutionProvider\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Equal("1", worker.Services.GetRequiredService<ProviderChoice>().CudaOptions["device_id"]);
    }

    [Fact(Timeout = 60_000)]
    public async Task Azure_monitor_export_is_wired_only_when_a_connection_string_is_set()
    {
        var ct = TestContext.Current.CancellationToken;
        var cache = Path.Combine(Path.GetTempPath(), "lepton-worker-" + Guid.NewGuid().ToString("N")[..8]);
        await using (var plain = await WorkerHost.StartAsync(WorkerHost.Defaults(azurite, cache, TestNames.Model("otel"))))
        {
            Assert.Null(plain.Services.GetService<MeterProvider>());
        }
        var settings = WorkerHost.Defaults(azurite, cache, TestNames.Model("otel"));
        // An ingestion endpoint nobody listens on: exporting fails quietly, serving is unaffected.
        settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/";
        await using var exported = await WorkerHost.StartAsync(settings);
        Assert.NotNull(exported.Services.GetService<MeterProvider>());
        Assert.Equal(200, (int)(await exported.Http.GetAsync("/v2/health/live", ct)).StatusCode);
    }
}
