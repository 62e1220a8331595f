using Lepton.GpuWorker.Background;
using Lepton.GpuWorker.DataPlane;
using Lepton.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lepton.GpuWorker.Tests.Harness;

/// <summary>A real worker host (Kestrel on free 127.0.0.1 ports) over the shared Azurite, with fast loops.</summary>
public sealed class WorkerHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private WorkerHost(WebApplication app, string replica)
    {
        _app = app;
        Replica = replica;
        var endpoints = app.Services.GetRequiredService<WorkerEndpoints>();
        HttpPort = endpoints.HttpPort;
        GrpcPort = endpoints.GrpcPort;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{HttpPort}"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public string Replica { get; }

    public int HttpPort { get; }

    public int GrpcPort { get; }

    public HttpClient Http { get; }

    public IServiceProvider Services => _app.Services;

    public InferenceDataPlane DataPlane => Services.GetRequiredService<InferenceDataPlane>();

    public static Dictionary<string, string?> Defaults(AzuriteFixture azurite, string cacheDir, params string[] models) =>
        Defaults(azurite.Azurite, cacheDir, models);

    /// <summary>Settings for a worker over <paramref name="azurite"/> (a private one, for tests that stop or stall it).</summary>
    public static Dictionary<string, string?> Defaults(Lepton.Cli.LocalStack.Azurite azurite, string cacheDir, params string[] models) => new()
    {
        ["AzureWebJobsStorage"] = azurite.ConnectionString,
        ["LEPTON_CACHE_DIR"] = cacheDir,
        ["LEPTON_WORKER_PORT"] = "0",
        ["LEPTON_WORKER_GRPC_PORT"] = "0",
        ["LEPTON_WORKER_REPLICA_ID"] = "test-" + Guid.NewGuid().ToString("N")[..8],
        ["LEPTON_WORKER_MODELS"] = string.Join(",", models),
        ["LEPTON_WORKER_POLL_INTERVAL_S"] = "0.1",
        ["LEPTON_WORKER_HEARTBEAT_S"] = "0.2",
        ["LEPTON_WORKER_FLUSH_S"] = "0.2",
        ["LEPTON_WORKER_WINDOW_S"] = "10",
        ["LEPTON_WORKER_UNLOAD_GRACE_S"] = "60",
        ["LEPTON_WORKER_INTRA_OP_THREADS"] = "1",
        ["LEPTON_WORKER_BATCH_CONCURRENCY"] = "2",
        ["LEPTON_WORKER_DRAIN_S"] = "0",
        ["LEPTON_WORKER_AUTH"] = "none",
    };

    public static async Task<WorkerHost> StartAsync(IDictionary<string, string?> settings, Action<IServiceCollection>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.ClearProviders();
        if (Environment.GetEnvironmentVariable("LEPTON_TEST_LOG") is { Length: > 0 })
        {
            builder.Logging.AddSimpleConsole();
        }
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        configure?.Invoke(builder.Services);
        builder.AddLeptonWorker();
        var app = builder.Build();
        app.MapLeptonWorker();
        await app.StartAsync();
        return new WorkerHost(app, settings["LEPTON_WORKER_REPLICA_ID"]!);
    }

    /// <summary>Polls <paramref name="check"/> until it holds (bounded): the worker's loops run on their own clocks.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> check, string what, double seconds = 20)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (await check())
            {
                return;
            }
            await Task.Delay(20);
        }
        throw new TimeoutException($"timed out after {seconds}s waiting for {what}");
    }

    public Task WaitReadyAsync(string model, string version) => WaitUntilAsync(
        async () => (await Http.GetAsync($"/v2/models/{model}/versions/{version}/ready")).IsSuccessStatusCode, $"{model} {version} ready");

    /// <summary>Waits until the routes this replica applies satisfy <paramref name="check"/>.</summary>
    public Task WaitRoutesAsync(string model, Func<Routing.RouteTable, bool> check) => WaitUntilAsync(
        () => Task.FromResult(DataPlane.State.Table(model) is { } table && check(table)), $"routes of {model}");

    public async Task StopAsync() => await _app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
