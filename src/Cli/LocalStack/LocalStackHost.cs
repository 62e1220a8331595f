using System.Security.Cryptography;
using System.Text;
using Lepton.Functions;
using Lepton.Functions.Http;
using Lepton.Functions.Lifecycle;
using Lepton.Functions.Triggers;
using Lepton.Shared;
using Lepton.Shared.Configuration;
using Lepton.Shared.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Lepton.Cli.LocalStack;

/// <summary>What the stack prints once it is up.</summary>
public sealed record Endpoints(string ApiUrl, IReadOnlyList<string> WorkerUrls, IReadOnlyList<string> GrpcUrls, string DurableAddress, string StorageConnection, string DataDir, string? KeyPath);

/// <summary>
/// The local stack (DESIGN.md §6), in one process tree, started in order and stopped in reverse:
/// leftovers of an earlier stack reclaimed → Azurite (data under <c>{data}/azurite</c>) → the
/// storage layout → the in-process durable backend running the lifecycle orchestrator and
/// activities (the Functions app's own classes) → a local host for the Functions app's HTTP routes
/// (<c>/api</c>, the Durable check-status routes, the Event Grid blob webhook, the retention timer)
/// → the reconciler (the in-memory backend forgets orchestrations on restart) → the blob watcher →
/// the workers. <c>func</c> cannot be installed here, so this hosts the same function code.
/// Secure by default: the key in <c>{data}/api-key</c> guards <c>/api</c>, the webhook and the
/// workers; <c>--no-auth</c> turns that off.
/// </summary>
public sealed class LocalStackHost : IAsyncDisposable
{
    private readonly DevSettings _settings;
    private readonly ILoggerFactory _logs;
    private readonly ILogger _log;
    private readonly List<(string Part, Func<ValueTask> Stop)> _stops = [];

    private LocalStackHost(DevSettings settings, ILoggerFactory logs)
    {
        _settings = settings;
        _logs = logs;
        _log = logs.CreateLogger("stack");
    }

    public Endpoints Endpoints { get; private set; } = null!;

    public string? Key { get; private set; }

    public IReadOnlyList<ManagedProcess> Workers { get; private set; } = [];

    public WebApplication Host { get; private set; } = null!;

    public string ConnectionString { get; private set; } = "";

    /// <summary>The Azurite this stack started (for fault drills: pause, stop, restart); <c>null</c> with an existing storage account.</summary>
    public Azurite? Azurite { get; private set; }

    /// <summary>Starts every part; a part that fails to start stops those already running.</summary>
    public static async Task<LocalStackHost> StartAsync(DevSettings settings, ILoggerFactory logs, CancellationToken cancellationToken)
    {
        // The control plane runs in this process, so its failpoints are armed from this process's
        // environment (LEPTON_FAILPOINTS, Debug builds); a misspelt name fails here, not at the point.
        Shared.Lifecycle.Failpoints.Parse(Environment.GetEnvironmentVariable(Shared.Lifecycle.Failpoints.Variable));
        var stack = new LocalStackHost(settings, logs);
        try
        {
            await stack.StartPartsAsync(cancellationToken);
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
        return stack;
    }

    private async Task StartPartsAsync(CancellationToken cancellationToken)
    {
        var s = _settings;
        var data = s.FullDataDir;
        Directory.CreateDirectory(data);
        PidFiles.Reclaim(data, _log);
        s.CheckPortsFree();
        var workerDll = s.Workers > 0 ? WorkerBinary.Locate() : "";
        Key = s.Auth ? ApiKeyFile.LoadOrCreate(data) : null;

        if (s.StorageConnection is { } existing)
        {
            ConnectionString = existing;
        }
        else
        {
            var azurite = await Azurite.StartAsync(Path.Combine(data, "azurite"), s.BlobPort, s.QueuePort, s.TablePort, stackDir: data);
            _stops.Add(("Azurite", azurite.DisposeAsync));
            Azurite = azurite;
            ConnectionString = azurite.ConnectionString;
            _log.LogInformation("Azurite ready (blob {Blob}, queue {Queue}, table {Table})", s.BlobPort, s.QueuePort, s.TablePort);
        }
        var clients = new StorageClients(new StorageOptions { ConnectionString = ConnectionString });
        await StorageLayout.EnsureAsync(clients, cancellationToken);

        Host = BuildHost(data);
        await Host.StartAsync(cancellationToken);
        _stops.Add(("Functions host", async () =>
        {
            await Host.StopAsync(CancellationToken.None);
            await Host.DisposeAsync();
        }
        ));
        _log.LogInformation("Functions host on {Url} (durable backend on {Host}:{Port})", s.ApiUrl, DevSettings.Host, s.DurablePort);

        var resumed = await Host.Services.GetRequiredService<LifecycleStarter>()
            .ResumeActiveAsync(Host.Services.GetRequiredService<DurableTaskClient>(), cancellationToken);
        _log.LogInformation("reconciler: {Resumed}", resumed.Count == 0 ? "nothing to resume" : "resumed " + string.Join(", ", resumed));

        var workers = new List<ManagedProcess>();
        if (s.Workers > 0)
        {
            // All at once: each drains for a moment before it exits, and N of them in turn made a
            // stop take N times as long (past what `docker stop` waits before its SIGKILL).
            _stops.Add((s.Workers == 1 ? "worker 0" : $"workers 0-{s.Workers - 1}", async () =>
                await Task.WhenAll(workers.Select(w => w.DisposeAsync().AsTask()))));
        }
        for (var i = 0; i < s.Workers; i++)
        {
            workers.Add(await StartWorkerAsync(workerDll, i, data, cancellationToken));
        }
        Workers = workers;
        Endpoints = new Endpoints(
            s.ApiUrl,
            Enumerable.Range(0, s.Workers).Select(s.WorkerUrl).ToList(),
            Enumerable.Range(0, s.Workers).Select(i => $"{DevSettings.Host}:{s.WorkerGrpcPort(i)}").ToList(),
            $"{DevSettings.Host}:{s.DurablePort}",
            ConnectionString,
            data,
            Key is null ? null : Path.Combine(data, ApiKeyFile.FileName));
    }

    private WebApplication BuildHost(string data)
    {
        var s = _settings;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            [AppSettingNames.Storage] = ConnectionString,
            [AppSettingNames.CacheDir] = Path.Combine(data, "cache"),
        });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(_logs);
        // The stack owns the process: it stops this host in its turn when Ctrl-C or SIGTERM
        // arrives. The default console lifetime would stop the host on its own at the signal,
        // before the workers that still call it.
        builder.Services.AddSingleton<IHostLifetime, EmbeddedHostLifetime>();
        builder.WebHost.UseUrls(s.ApiUrl);
        builder.Services.AddLeptonLifecycle(unidentifiedActor: s.Auth ? "anonymous" : "local");
        builder.Services.AddLeptonTelemetry(builder.Configuration, "lepton-functions");
        builder.Services.AddInMemoryDurableTask(registry => registry.AddLeptonLifecycle(), new InMemoryDurableTaskOptions { Port = s.DurablePort });
        builder.Services.AddExceptionHandler<LeptonExceptionHandler>();
        builder.Services.AddProblemDetails();
        if (Key is { } key)
        {
            builder.Services.AddAuthentication(LocalKeyAuthentication.SchemeName)
                .AddScheme<LocalKeyOptions, LocalKeyAuthentication>(LocalKeyAuthentication.SchemeName, o => o.KeyHash = SHA256.HashData(Encoding.UTF8.GetBytes(key)));
            builder.Services.AddAuthorization();
        }
        builder.Services.AddHttpClient();
        var webhook = new Uri($"{s.ApiUrl}{EventGrid.WebhookPath}?functionName={EventGrid.FunctionKey(LifecycleNames.ModelBlobTrigger)}"
            + (Key is null ? "" : "&code=" + Uri.EscapeDataString(Key)));
        // The host's own storage clients (retry and timeouts from LEPTON_STORAGE_*, as everywhere).
        builder.Services.AddSingleton(sp => new BlobWatcher(
            sp.GetRequiredService<StorageClients>().Container(StorageLayout.ModelsContainer),
            webhook,
            new DeliveryLedger(Path.Combine(data, "watcher", "delivered.json")),
            sp.GetRequiredService<IHttpClientFactory>().CreateClient("watcher"),
            TimeProvider.System,
            _logs.CreateLogger<BlobWatcher>(),
            s.WatcherPoll));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<BlobWatcher>());
        builder.Services.AddHostedService<RetentionTimer>();
        var app = builder.Build();
        app.UseExceptionHandler();
        if (Key is not null)
        {
            app.UseAuthentication();
            app.UseAuthorization();
        }
        var api = app.MapLeptonControlApi();
        var instances = app.MapDurableInstanceRoutes();
        var blobs = app.MapPost(EventGrid.WebhookPath, HandleBlobWebhookAsync);
        if (Key is not null)
        {
            api.RequireAuthorization();
            instances.RequireAuthorization();
            blobs.RequireAuthorization();
        }
        return app;
    }

    /// <summary>
    /// The Event Grid blob webhook the Functions host serves for a blob trigger with the Event Grid
    /// source: the subscription handshake, then each <c>BlobCreated</c> in <c>models</c> handed to
    /// the blob trigger's own code (<see cref="ModelUploads"/>). Only a start that was recorded is
    /// answered 2xx: when storage is away the answer is 503 (<see cref="StorageUnavailableException"/>),
    /// so the caller (Event Grid, or the local watcher) delivers the event again later.
    /// </summary>
    internal static async Task<IResult> HandleBlobWebhookAsync(HttpRequest request, ModelUploads uploads, DurableTaskClient client)
    {
        if (request.Query["functionName"].FirstOrDefault() != EventGrid.FunctionKey(LifecycleNames.ModelBlobTrigger))
        {
            throw new NotFoundException($"no blob-triggered function '{request.Query["functionName"]}'; this host has {EventGrid.FunctionKey(LifecycleNames.ModelBlobTrigger)}");
        }
        using var reader = new StreamReader(request.Body);
        var events = EventGrid.ParseEvents(await reader.ReadToEndAsync(request.HttpContext.RequestAborted));
        if (EventGrid.ValidationCode(events) is { } code)
        {
            return Results.Json(new { validationResponse = code });
        }
        foreach (var e in events)
        {
            if (EventGrid.BlobCreatedOf(e) is { Container: StorageLayout.ModelsContainer } blob)
            {
                try
                {
                    await uploads.HandleAsync(client, $"{blob.Container}/{blob.BlobName}", request.HttpContext.RequestAborted);
                }
                catch (Exception error) when (error is not LeptonException && StorageClients.IsUnavailable(error) && !request.HttpContext.RequestAborted.IsCancellationRequested)
                {
                    throw new StorageUnavailableException(
                        $"storage is unreachable, so the lifecycle of {blob.BlobName} could not be started; deliver the event again later", error);
                }
            }
        }
        return Results.Accepted();
    }

    private async Task<ManagedProcess> StartWorkerAsync(string workerDll, int index, string data, CancellationToken cancellationToken)
    {
        var s = _settings;
        var poll = s.WorkerPollS.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var environment = new Dictionary<string, string>
        {
            [AppSettingNames.Storage] = ConnectionString,
            ["LEPTON_WORKER_HOST"] = DevSettings.Host,
            ["LEPTON_WORKER_PORT"] = s.WorkerHttpPort(index).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["LEPTON_WORKER_GRPC_PORT"] = s.WorkerGrpcPort(index).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["LEPTON_WORKER_REPLICA_ID"] = $"local-{index}",
            ["LEPTON_WORKER_WINDOW_S"] = s.WorkerWindowS.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["LEPTON_WORKER_POLL_INTERVAL_S"] = poll,
            // Rollups and heartbeats as often as routes are polled, so short canary windows see
            // the traffic of the window they judge.
            ["LEPTON_WORKER_FLUSH_S"] = poll,
            ["LEPTON_WORKER_HEARTBEAT_S"] = Math.Max(1.0, s.WorkerPollS).ToString(System.Globalization.CultureInfo.InvariantCulture),
            [AppSettingNames.CacheDir] = Path.Combine(data, $"worker-cache-{index}"),
            ["LEPTON_WORKER_AUTH"] = Key is null ? "none" : "key",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            // One line per record, so the stack's log shows each worker record on one line.
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
        };
        if (Key is { } key)
        {
            environment["LEPTON_WORKER_API_KEYS"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key))) + ":admin";
        }
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var live = new Uri($"{s.WorkerUrl(index)}/v2/health/live");
        var worker = await ManagedProcess.StartAsync(
            $"worker-{index}", data, "dotnet", [workerDll], environment,
            async ct => (await probe.GetAsync(live, ct)).IsSuccessStatusCode,
            _logs.CreateLogger($"worker-{index}"), TimeSpan.FromSeconds(60), cancellationToken);
        _log.LogInformation("worker {Index} ready on {Url} (gRPC {Grpc}, pid {Pid})", index, s.WorkerUrl(index), s.WorkerGrpcPort(index), worker.Pid);
        return worker;
    }

    /// <summary>Stops every started part, last started first; errors are logged, never thrown.</summary>
    public async ValueTask DisposeAsync()
    {
        for (var i = _stops.Count - 1; i >= 0; i--)
        {
            var (part, stop) = _stops[i];
            try
            {
                await stop();
                _log.LogInformation("stopped {Part}", part);
            }
            catch (Exception error)
            {
                _log.LogWarning("stopping {Part} failed: {Error}", part, error.Message);
            }
        }
        _stops.Clear();
    }
}

/// <summary>A host lifetime that leaves signals to its owner, which starts and stops the host.</summary>
internal sealed class EmbeddedHostLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// The metric-retention timer as the Functions host would run it: the local stack runs the same
/// job at start and then hourly (no NCRONTAB scheduler here; the schedule setting applies in Azure).
/// </summary>
internal sealed class RetentionTimer(MetricsRetention retention, ILogger<RetentionTimer> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromHours(1));
        do
        {
            try
            {
                await retention.ExpireAsync(stoppingToken);
            }
            catch (Exception error) when (!stoppingToken.IsCancellationRequested)
            {
                log.LogWarning("metric retention failed ({Error}); it runs again in an hour", error.Message);
            }
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken cancellationToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}

/// <summary>Where the worker's build output is: beside this CLI's, in the same configuration.</summary>
public static class WorkerBinary
{
    public static string Locate()
    {
        var configuration = AppContext.BaseDirectory.Contains("/bin/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        var path = Path.Combine(Checkout.Root, "src", "GpuWorker", "bin", configuration, "net10.0", "Lepton.GpuWorker.dll");
        if (!File.Exists(path))
        {
            throw new ConfigurationException($"the worker is not built ({configuration}): run `make build` (or `dotnet build src/GpuWorker -c {configuration}`) and start again");
        }
        return path;
    }
}
