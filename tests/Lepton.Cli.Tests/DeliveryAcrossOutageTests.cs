using System.Collections.Concurrent;
using System.Security.Cryptography;
using Lepton.Cli.LocalStack;
using Lepton.Cli.Samples;
using Lepton.Functions.Lifecycle;
using Lepton.Shared;
using Lepton.Shared.Storage;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Lepton.Cli.Tests;

/// <summary>
/// The local stack (no workers) over an Azurite of its own, which the tests stop, restart and
/// stall; the stack's own watcher stays idle, so each test drives a watcher of its own against the
/// stack's real blob webhook (which starts real lifecycles on the in-process durable backend).
/// </summary>
public sealed class StackOverPrivateAzurite : IAsyncLifetime
{
    public Azurite Azurite { get; private set; } = null!;

    public LocalStackHost Stack { get; private set; } = null!;

    /// <summary>Clients with short timeouts, for the tests' own watchers and uploads.</summary>
    public StorageClients Clients { get; private set; } = null!;

    public string DataDir { get; } = Directory.CreateTempSubdirectory("lepton-outage-stack-").FullName;

    public Uri Webhook => new($"{Stack.Endpoints.ApiUrl}{EventGrid.WebhookPath}?functionName={EventGrid.FunctionKey(LifecycleNames.ModelBlobTrigger)}&code={Uri.EscapeDataString(Stack.Key!)}");

    public async ValueTask InitializeAsync()
    {
        Azurite = await Azurite.StartAsync();
        Clients = await Azurite.ClientsAsync(networkTimeout: TimeSpan.FromSeconds(1), maxRetries: 1);
        var settings = new DevSettings
        {
            DataDir = DataDir,
            ApiPort = Azurite.FreePort(),
            DurablePort = Azurite.FreePort(),
            Workers = 0,
            StorageConnection = Azurite.ConnectionString,
            WatcherPoll = TimeSpan.FromHours(1),
        };
        Stack = await LocalStackHost.StartAsync(settings, NullLoggerFactory.Instance, TestContext.Current.CancellationToken);
    }

    /// <summary>Brings storage back if a test left it stopped or stalled.</summary>
    public async Task EnsureRunningAsync()
    {
        try
        {
            Azurite.Resume();
        }
        catch (InvalidOperationException)
        {
            await Azurite.RestartAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Stack.DisposeAsync();
        await Azurite.DisposeAsync();
        Directory.Delete(DataDir, recursive: true);
    }
}

/// <summary>
/// No upload is lost across a storage outage, and none is delivered twice: the watcher writes its
/// ledger only after the webhook's 2xx, and the webhook answers 2xx only once the lifecycle's start
/// was recorded (503 while storage is away).
/// </summary>
public sealed class DeliveryAcrossOutageTests(StackOverPrivateAzurite stack) : IClassFixture<StackOverPrivateAzurite>, IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("lepton-outage-watcher-").FullName;
    private readonly string _model = Testing.TestNames.Model("upload");

    private string BlobName => $"{_model}/1.0.0/model.onnx";

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        await stack.EnsureRunningAsync();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>
    /// Answers seen by the watcher, per blob, through a real socket to the stack's webhook; runs
    /// <paramref name="beforeFirst"/> once, before the first delivery of <paramref name="blobName"/>.
    /// </summary>
    private sealed class Recording(string blobName, Func<Task>? beforeFirst = null) : DelegatingHandler(new SocketsHttpHandler())
    {
        private int _first;

        public ConcurrentQueue<(string Blob, int Status)> Answers { get; } = new();

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = await request.Content!.ReadAsStringAsync(cancellationToken);
            var blob = EventGrid.ParseEvents(body).Select(EventGrid.BlobCreatedOf).Single()!.BlobName;
            if (beforeFirst is not null && blob == blobName && Interlocked.Exchange(ref _first, 1) == 0)
            {
                await beforeFirst();
            }
            var response = await base.SendAsync(request, cancellationToken);
            Answers.Enqueue((blob, (int)response.StatusCode));
            return response;
        }
    }

    private (BlobWatcher Watcher, HttpClient Http, StorageGuard Guard) Watcher(Recording recording)
    {
        var http = new HttpClient(recording) { Timeout = Timeout.InfiniteTimeSpan };
        var guard = new StorageGuard("watcher", new StorageGuardOptions
        {
            Deadline = TimeSpan.FromSeconds(3),
            FirstBreak = TimeSpan.FromSeconds(0.5),
            LongestBreak = TimeSpan.FromSeconds(1),
        }, TimeProvider.System, NullLogger.Instance);
        var watcher = new BlobWatcher(
            stack.Clients.Container(StorageLayout.ModelsContainer), stack.Webhook, new DeliveryLedger(Path.Combine(_dir, "delivered.json")), http,
            TimeProvider.System, NullLogger<BlobWatcher>.Instance, TimeSpan.FromMilliseconds(100), guard,
            new WebhookDelivery { AttemptTimeout = TimeSpan.FromSeconds(20), FirstDelay = TimeSpan.FromMilliseconds(100) });
        return (watcher, http, guard);
    }

    private async Task<string> UploadAsync(CancellationToken ct)
    {
        var onnx = SampleModels.Scale(2f);
        await stack.Clients.Container(StorageLayout.ModelsContainer).GetBlobClient(BlobName).UploadAsync(BinaryData.FromBytes(onnx), ct);
        return Convert.ToHexStringLower(SHA256.HashData(onnx));
    }

    private async Task AssertLifecycleStartedAsync(string sha256, CancellationToken ct)
    {
        var client = stack.Stack.Host.Services.GetRequiredService<DurableTaskClient>();
        Assert.NotNull(await client.GetInstanceAsync(LifecycleStarter.InstanceIdFor(_model, "1.0.0", sha256), ct));
    }

    private static Task WaitUntilAsync(Func<bool> check, string what, double seconds = 60) =>
        WaitUntilAsync(() => Task.FromResult(check()), what, seconds);

    private static async Task WaitUntilAsync(Func<Task<bool>> check, string what, double seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await check())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {seconds}s waiting for {what}");
            }
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
    }

    private int DeliveriesOf(BlobWatcher watcher)
    {
        lock (watcher.Delivered)
        {
            return watcher.Delivered.Count(d => d.BlobName == BlobName);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task An_upload_made_just_before_storage_went_away_is_delivered_once_it_is_back()
    {
        var ct = TestContext.Current.CancellationToken;
        var sha256 = await UploadAsync(ct);
        await stack.Azurite.StopAsync();
        var recording = new Recording(BlobName);
        var (watcher, http, guard) = Watcher(recording);
        using var _ = http;
        await watcher.StartAsync(ct);
        try
        {
            // The watcher keeps polling a storage that refuses, pacing its tries, delivering nothing.
            await WaitUntilAsync(() => !guard.Available, "the watcher to find storage away");
            await WaitUntilAsync(() => guard.Circuit == Polly.CircuitBreaker.CircuitState.Open, "the watcher's circuit to open");
            Assert.Equal(0, DeliveriesOf(watcher));
            await stack.Azurite.RestartAsync();
            await WaitUntilAsync(() => DeliveriesOf(watcher) > 0, "the delivery after storage came back");
        }
        finally
        {
            await watcher.StopAsync(CancellationToken.None);
        }
        // Later polls find it delivered: exactly once, and only after a 2xx.
        await watcher.PollOnceAsync(ct);
        Assert.Equal(1, DeliveriesOf(watcher));
        AssertOneAcceptedLast(recording);
        Assert.True(new DeliveryLedger(Path.Combine(_dir, "delivered.json")).IsDelivered(BlobName, watcher.Delivered.First(d => d.BlobName == BlobName).ETag));
        await AssertLifecycleStartedAsync(sha256, ct);
    }

    private void AssertOneAcceptedLast(Recording recording)
    {
        var answers = recording.Answers.Where(a => a.Blob == BlobName).Select(a => a.Status).ToList();
        Assert.Single(answers, s => s is >= 200 and < 300);
        Assert.Equal(202, answers[^1]);
        Assert.All(answers[..^1], s => Assert.Equal(503, s));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_start_that_storage_could_not_record_is_answered_503_and_delivered_once_storage_is_back()
    {
        var ct = TestContext.Current.CancellationToken;
        var sha256 = await UploadAsync(ct);
        // Storage goes away after the watcher listed the upload, before the webhook could start its lifecycle.
        var recording = new Recording(BlobName, () => stack.Azurite.StopAsync());
        var (watcher, http, _) = Watcher(recording);
        using var __ = http;
        var delivered = await watcher.PollOnceAsync(ct);
        Assert.DoesNotContain(delivered, d => d.BlobName == BlobName);
        var refused = recording.Answers.Where(a => a.Blob == BlobName).Select(a => a.Status).ToList();
        // The first attempt and the pipeline's retries, each refused: nothing recorded.
        Assert.Equal([503, 503, 503], refused);
        Assert.False(new DeliveryLedger(Path.Combine(_dir, "delivered.json")).IsDelivered(BlobName, ""), "nothing recorded");
        Assert.False(File.Exists(Path.Combine(_dir, "delivered.json")) && File.ReadAllText(Path.Combine(_dir, "delivered.json")).Contains(BlobName, StringComparison.Ordinal));
        // While storage is away the listing itself fails, and says why.
        var error = await Assert.ThrowsAsync<StorageUnavailableException>(() => watcher.PollOnceAsync(ct));
        Assert.Contains("unreachable", error.Message, StringComparison.Ordinal);
        await stack.Azurite.RestartAsync();
        await WaitUntilAsync(async () =>
        {
            try
            {
                await watcher.PollOnceAsync(ct);
            }
            catch (StorageUnavailableException)
            {
                // The circuit is still open from the outage: the next poll probes.
            }
            return DeliveriesOf(watcher) > 0;
        }, "the delivery after storage came back");
        Assert.DoesNotContain(await watcher.PollOnceAsync(ct), d => d.BlobName == BlobName);
        Assert.Equal(1, DeliveriesOf(watcher));
        AssertOneAcceptedLast(recording);
        await AssertLifecycleStartedAsync(sha256, ct);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_stalled_storage_holds_deliveries_until_it_answers_then_each_upload_goes_once()
    {
        var ct = TestContext.Current.CancellationToken;
        var sha256 = await UploadAsync(ct);
        stack.Azurite.Pause();
        var recording = new Recording(BlobName);
        var (watcher, http, guard) = Watcher(recording);
        using var _ = http;
        await watcher.StartAsync(ct);
        try
        {
            // Each poll gives up at the deadline instead of hanging the loop.
            await WaitUntilAsync(() => guard.Circuit == Polly.CircuitBreaker.CircuitState.Open, "the watcher's circuit to open");
            Assert.Equal(0, DeliveriesOf(watcher));
            stack.Azurite.Resume();
            await WaitUntilAsync(() => DeliveriesOf(watcher) > 0, "the delivery after storage answered again");
        }
        finally
        {
            await watcher.StopAsync(CancellationToken.None);
        }
        await watcher.PollOnceAsync(ct);
        Assert.Equal(1, DeliveriesOf(watcher));
        AssertOneAcceptedLast(recording);
        await AssertLifecycleStartedAsync(sha256, ct);
    }
}
