using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Grpc.Net.Client;
using Lepton.Cli.LocalStack;
using Lepton.Cli.Samples;
using Lepton.GpuWorker.Grpc.Protocol;
using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Tests.Harness;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Metrics;
using Lepton.Shared.Workers;
using Lepton.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;

namespace Lepton.GpuWorker.Tests;

/// <summary>
/// Fail static: with storage refusing connections (Azurite stopped) or hanging (Azurite stopped
/// with SIGSTOP), a replica keeps serving the routes and ready versions it knew, over HTTP and gRPC,
/// with zero failed requests; its loops back off; rollups are kept (bounded) and written once
/// storage is back; heartbeats resume. Each test stops or stalls storage, so this class has an
/// Azurite of its own (the assembly's shared one must keep answering the other tests).
/// </summary>
public sealed class StorageOutageTests : IAsyncLifetime
{
    private static readonly Dictionary<string, float> Factors = new() { ["1.0.0"] = 1f, ["1.1.0"] = 2f };
    private static readonly float[] X = [1, 2, 3, 4];

    private readonly string _model = TestNames.Model("outage");
    private readonly string _cache = Path.Combine(Path.GetTempPath(), "lepton-outage-" + Guid.NewGuid().ToString("N")[..8]);
    private Azurite _azurite = null!;
    private Lepton.Shared.Storage.StorageClients _clients = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _azurite = await Azurite.StartAsync();
        _clients = await _azurite.ClientsAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _azurite.DisposeAsync();
        foreach (var dir in new[] { _cache, _cache + "-publisher" })
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>Production 1.0.0 and a canary 1.1.0 at 30 %, a replica serving both, with fast loops and short storage timeouts.</summary>
    private async Task<WorkerHost> StartAsync(Action<Dictionary<string, string?>>? change = null, Action<IServiceCollection>? services = null)
    {
        var publisher = new Publisher(_clients, _cache + "-publisher");
        await publisher.PublishAsync(_model, "1.0.0", SampleModels.Scale(Factors["1.0.0"]), Stage.Production);
        await publisher.PublishAsync(_model, "1.1.0", SampleModels.Scale(Factors["1.1.0"]), Stage.Canary);
        await publisher.RouteAsync(_model, r => r with { Production = "1.0.0", Candidate = "1.1.0", CandidateWeightBp = 3000 });
        var settings = WorkerHost.Defaults(_azurite, _cache, _model);
        settings["LEPTON_WORKER_WINDOW_S"] = "1";
        settings["LEPTON_WORKER_STORAGE_DEADLINE_S"] = "1";
        settings["LEPTON_WORKER_STORAGE_MAX_BACKOFF_S"] = "1";
        settings["LEPTON_STORAGE_TIMEOUT_S"] = "0.5";
        settings["LEPTON_STORAGE_RETRIES"] = "1";
        change?.Invoke(settings);
        var worker = await WorkerHost.StartAsync(settings, services);
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0" && t.Candidate == "1.1.0" && t.CandidateWeightBp == 3000);
        return worker;
    }

    /// <summary>
    /// Steady callers over real sockets: routed HTTP, pinned HTTP and routed gRPC; every answer
    /// checked. Stopping lets each call in flight finish, so every request the worker counted was
    /// counted here too.
    /// </summary>
    private sealed class Load : IAsyncDisposable
    {
        private readonly CancellationToken _abort = TestContext.Current.CancellationToken;
        private volatile bool _stopping;
        private readonly Task[] _callers;
        private readonly GrpcChannel _channel;

        public Load(WorkerHost worker, string model)
        {
            _channel = GrpcChannel.ForAddress($"http://127.0.0.1:{worker.GrpcPort}");
            var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(_channel);
            _callers =
            [
                .. Enumerable.Range(0, 3).Select(_ => Task.Run(() => CallAsync(() => RoutedHttpAsync(worker, model)))),
                Task.Run(() => CallAsync(() => PinnedHttpAsync(worker, model))),
                Task.Run(() => CallAsync(() => RoutedGrpcAsync(grpc, model))),
            ];
        }

        public long Served => Interlocked.Read(ref _served);

        public ConcurrentQueue<string> Failures { get; } = new();

        public ConcurrentDictionary<string, long> PerVersion { get; } = new(StringComparer.Ordinal);

        private long _served;

        private async Task CallAsync(Func<Task<(bool Ok, string Version, string Detail)>> call)
        {
            while (!_stopping)
            {
                try
                {
                    var (ok, version, detail) = await call();
                    if (ok)
                    {
                        Interlocked.Increment(ref _served);
                        PerVersion.AddOrUpdate(version, 1, (_, n) => n + 1);
                    }
                    else
                    {
                        Failures.Enqueue(detail);
                    }
                }
                catch (Exception error) when (!_abort.IsCancellationRequested)
                {
                    Failures.Enqueue($"{error.GetType().Name}: {error.Message}");
                }
            }
        }

        private async Task<(bool, string, string)> RoutedHttpAsync(WorkerHost worker, string model)
        {
            using var response = await worker.Http.PostAsync($"/v2/models/{model}/infer", Bodies.JsonContent(Bodies.Json(X, 1, 4)), _abort);
            return await CheckAsync(response);
        }

        private async Task<(bool, string, string)> PinnedHttpAsync(WorkerHost worker, string model)
        {
            using var response = await worker.Http.PostAsync($"/v2/models/{model}/versions/1.0.0/infer", Bodies.JsonContent(Bodies.Json(X, 1, 4)), _abort);
            return await CheckAsync(response);
        }

        private static async Task<(bool, string, string)> CheckAsync(HttpResponseMessage response)
        {
            var body = await response.Content.ReadAsStringAsync();
            var version = response.Headers.TryGetValues("x-lepton-version", out var v) ? v.Single() : "";
            var ok = response.IsSuccessStatusCode && Factors.TryGetValue(version, out var factor)
                && Bodies.Output(System.Text.Json.JsonDocument.Parse(body)).SequenceEqual(X.Select(e => e * factor));
            return (ok, version, $"HTTP {(int)response.StatusCode} {version}: {body[..Math.Min(200, body.Length)]}");
        }

        private async Task<(bool, string, string)> RoutedGrpcAsync(GRPCInferenceService.GRPCInferenceServiceClient grpc, string model)
        {
            var request = new ModelInferRequest { ModelName = model };
            request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
            {
                Name = "input",
                Datatype = "FP32",
                Shape = { 1, 4 },
                Contents = new InferTensorContents { Fp32Contents = { X } },
            });
            var response = await grpc.ModelInferAsync(request, cancellationToken: _abort);
            var raw = response.RawOutputContents[0].ToByteArray();
            var values = new float[raw.Length / 4];
            Buffer.BlockCopy(raw, 0, values, 0, raw.Length);
            var ok = Factors.TryGetValue(response.ModelVersion, out var factor) && values.SequenceEqual(X.Select(e => e * factor));
            return (ok, response.ModelVersion, $"gRPC {response.ModelVersion}: [{string.Join(", ", values)}]");
        }

        /// <summary>Waits until <paramref name="more"/> more requests were served than now.</summary>
        public Task ServeAsync(long more, string what)
        {
            var target = Served + more;
            return WorkerHost.WaitUntilAsync(() => Task.FromResult(Served >= target), what, seconds: 60);
        }

        public async ValueTask DisposeAsync()
        {
            _stopping = true;
            await Task.WhenAll(_callers);
            _channel.Dispose();
        }
    }

    private static long WindowOf(DateTimeOffset at) => at.ToUnixTimeSeconds();

    private async Task<IReadOnlyList<WindowRollup>> RowsAsync(string replica) =>
        [.. (await new MetricsStore(_clients).ReadAsync(_model, 0, long.MaxValue / 2, Token)).Where(r => r.Replica == replica)];

    private async Task<Heartbeat?> HeartbeatAsync(string replica) =>
        (await new WorkerDirectory(_clients).AllAsync(Token)).SingleOrDefault(h => h.Replica == replica);

    /// <summary>
    /// Runs load across an outage made by <paramref name="breakStorage"/> and ended by
    /// <paramref name="restoreStorage"/>; returns what the callers saw and when the outage was.
    /// </summary>
    private async Task<(Load Load, long Served, DateTimeOffset Broken, DateTimeOffset Restored, long ServedDuringOutage)> AcrossOutageAsync(
        WorkerHost worker, Func<Task> breakStorage, Func<Task> restoreStorage, double outageSeconds, CancellationToken ct, Func<Task>? duringOutage = null)
    {
        var load = new Load(worker, _model);
        await load.ServeAsync(100, "traffic before the outage");
        await WorkerHost.WaitUntilAsync(async () => await HeartbeatAsync(worker.Replica) is not null, "a first heartbeat");
        var broken = DateTimeOffset.UtcNow;
        await breakStorage();
        var servedAtBreak = load.Served;
        var guard = worker.DataPlane.Storage;
        // The loops notice, and stop calling a storage that does not answer.
        await WorkerHost.WaitUntilAsync(() => Task.FromResult(!guard.Available), "the loops to find storage away");
        await WorkerHost.WaitUntilAsync(() => Task.FromResult(guard.Circuit == CircuitState.Open), "the circuit to open");
        if (duringOutage is not null)
        {
            await duringOutage();
        }
        // Serving goes on through the whole outage, and long enough to span several rollup windows.
        await load.ServeAsync(100, "traffic during the outage");
        var remaining = TimeSpan.FromSeconds(outageSeconds) - (DateTimeOffset.UtcNow - broken);
        if (remaining > TimeSpan.Zero)
        {
            await Task.Delay(remaining, ct);
        }
        var servedDuringOutage = load.Served - servedAtBreak;
        await restoreStorage();
        var restored = DateTimeOffset.UtcNow;
        await WorkerHost.WaitUntilAsync(() => Task.FromResult(guard.Available), "storage to answer the loops again", seconds: 60);
        await load.ServeAsync(100, "traffic after the outage");
        await load.DisposeAsync();
        return (load, load.Served, broken, restored, servedDuringOutage);
    }

    private async Task AssertRecoveredAsync(WorkerHost worker, Load load, long served, DateTimeOffset broken, DateTimeOffset restored)
    {
        Assert.Empty(load.Failures);
        Assert.True(load.PerVersion.GetValueOrDefault("1.1.0") > 0, "the canary kept its share during the outage");
        // Heartbeats resume by themselves.
        await WorkerHost.WaitUntilAsync(async () => await HeartbeatAsync(worker.Replica) is { } beat && beat.At > restored, "a heartbeat after the outage", seconds: 60);
        // Every request served, the outage's too, ends up in the rows written after it.
        long written = 0;
        try
        {
            await WorkerHost.WaitUntilAsync(async () => (written = (await RowsAsync(worker.Replica)).Sum(r => r.Requests)) == served, "rollups holding every request served", seconds: 60);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the rows hold {written} requests; the callers were served {served}");
        }
        var rows = await RowsAsync(worker.Replica);
        var outageWindows = rows.Where(r => r.WindowStart > WindowOf(broken) && r.WindowStart < WindowOf(restored)).ToList();
        Assert.NotEmpty(outageWindows);
        Assert.All(outageWindows, r => Assert.True(r.Requests > 0));
        Assert.Equal(0, worker.Services.GetRequiredService<WorkerMetrics>().RollupsDropped);
    }

    [Fact(Timeout = 180_000)]
    public async Task Storage_refusing_connections_fails_no_request_and_loses_no_rollup()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var worker = await StartAsync();
        string? pinnedUnknown = null;
        string? ready = null;
        var (load, served, broken, restored, during) = await AcrossOutageAsync(
            worker,
            () => _azurite.StopAsync(),
            () => _azurite.RestartAsync(),
            outageSeconds: 4,
            ct,
            duringOutage: async () =>
            {
                // Still ready: the replica serves from what it knows; readiness says storage is away.
                ready = await worker.Http.GetStringAsync("/v2/health/ready", ct);
                // A version the replica never heard of cannot be looked up: 503 at once, not a wait.
                using var response = await worker.Http.PostAsync($"/v2/models/{_model}/versions/9.9.9/infer", Bodies.JsonContent(Bodies.Json(X, 1, 4)), ct);
                pinnedUnknown = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}";
            });
        Assert.True(during > 0);
        Assert.Contains("\"ready\":true", ready, StringComparison.Ordinal);
        Assert.Contains("\"storage_available\":false", ready, StringComparison.Ordinal);
        Assert.StartsWith("503 ", pinnedUnknown, StringComparison.Ordinal);
        Assert.Contains("storage_unavailable", pinnedUnknown, StringComparison.Ordinal);
        await AssertRecoveredAsync(worker, load, served, broken, restored);
        Assert.Equal(1, worker.DataPlane.Storage.Outages);
    }

    [Fact(Timeout = 180_000)]
    public async Task Storage_hanging_fails_no_request_and_loses_no_rollup()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var worker = await StartAsync();
        var (load, served, broken, restored, during) = await AcrossOutageAsync(
            worker,
            () =>
            {
                _azurite.Pause();
                return Task.CompletedTask;
            },
            () =>
            {
                _azurite.Resume();
                return Task.CompletedTask;
            },
            outageSeconds: 4,
            ct);
        Assert.True(during > 0);
        // Rows a stalled write left queued inside storage land late; the rewrite after recovery has the last word.
        await AssertRecoveredAsync(worker, load, served, broken, restored);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_longer_outage_than_the_buffer_holds_drops_the_oldest_windows_and_says_so()
    {
        var ct = TestContext.Current.CancellationToken;
        var logs = new CapturingLogger();
        // Two versions in 2 s windows, and room for four rollups: the buffer holds the last two windows.
        await using var worker = await StartAsync(
            s =>
            {
                s["LEPTON_WORKER_ROLLUP_BUFFER"] = "4";
                s["LEPTON_WORKER_WINDOW_S"] = "2";
            },
            services => services.AddSingleton<ILoggerProvider>(logs));
        var (load, served, broken, restored, _) = await AcrossOutageAsync(worker, () => _azurite.StopAsync(), () => _azurite.RestartAsync(), outageSeconds: 10, ct);
        Assert.Empty(load.Failures);
        Assert.True(worker.Services.GetRequiredService<WorkerMetrics>().RollupsDropped > 0, "windows beyond the bound were dropped and counted");
        Assert.Contains(logs.Messages, m => m.Contains("rollup buffer full (4 windows)", StringComparison.Ordinal));
        await WorkerHost.WaitUntilAsync(
            async () => (await RowsAsync(worker.Replica)).Any(r => r.WindowStart > WindowOf(restored) - 2 && r.Requests > 0),
            "rollups written after the outage", seconds: 60);
        var rows = await RowsAsync(worker.Replica);
        // The first whole window of the outage was among the oldest: dropped, never written.
        var firstOutageWindow = WindowOf(broken) - (WindowOf(broken) % 2) + 2;
        Assert.True(firstOutageWindow + 2 < WindowOf(restored) - 4, "the outage outlasted the buffer");
        Assert.DoesNotContain(rows, r => r.WindowStart == firstOutageWindow);
        Assert.True(rows.Sum(r => r.Requests) < served, "the dropped windows' traffic is missing");
    }

    [Fact(Timeout = 180_000)]
    public async Task A_replica_started_while_storage_is_away_answers_503_not_404_and_serves_once_storage_is_back()
    {
        // It does not know yet what it serves: a 404 ("no such model") would tell a caller
        // something false and final; a 503 with Retry-After tells it to come back.
        var ct = TestContext.Current.CancellationToken;
        var publisher = new Publisher(_clients, _cache + "-publisher");
        await publisher.PublishAsync(_model, "1.0.0", SampleModels.Scale(Factors["1.0.0"]), Stage.Production);
        await publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
        await _azurite.StopAsync();
        var settings = WorkerHost.Defaults(_azurite, _cache, _model);
        settings["LEPTON_WORKER_STORAGE_DEADLINE_S"] = "1";
        settings["LEPTON_WORKER_STORAGE_MAX_BACKOFF_S"] = "1";
        settings["LEPTON_STORAGE_TIMEOUT_S"] = "0.5";
        settings["LEPTON_STORAGE_RETRIES"] = "1";
        await using var worker = await WorkerHost.StartAsync(settings);
        using (var response = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Bodies.JsonContent(Bodies.Json(X, 1, 4)), ct))
        {
            Assert.Equal(503, (int)response.StatusCode);
            Assert.Equal("not_ready", (await response.Content.ReadFromJsonAsync<JsonObject>(ct))!["code"]!.GetValue<string>());
            Assert.NotNull(response.Headers.RetryAfter);
        }
        using (var ready = await worker.Http.GetAsync("/v2/health/ready", ct))
        {
            Assert.Equal(503, (int)ready.StatusCode);
        }
        await _azurite.RestartAsync();
        await WorkerHost.WaitUntilAsync(
            async () => (await worker.Http.PostAsync($"/v2/models/{_model}/infer", Bodies.JsonContent(Bodies.Json(X, 1, 4)), ct)).IsSuccessStatusCode,
            "an answer once storage is back", seconds: 60);
    }

    /// <summary>Keeps the worker's warnings, to check what it says.</summary>
    private sealed class CapturingLogger : ILoggerProvider, ILogger
    {
        public ConcurrentQueue<string> Messages { get; } = new();

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                Messages.Enqueue(formatter(state, exception));
            }
        }

        public void Dispose()
        {
        }
    }
}
