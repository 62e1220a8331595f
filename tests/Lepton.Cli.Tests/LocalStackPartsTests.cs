using System.Collections.Concurrent;
using System.Diagnostics;
using Lepton.Cli.LocalStack;
using Lepton.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;

namespace Lepton.Cli.Tests;

/// <summary>A real webhook on 127.0.0.1 that records what the watcher delivers, and can refuse.</summary>
internal sealed class RecordingWebhook : IAsyncDisposable
{
    private readonly WebApplication _app;

    private RecordingWebhook(WebApplication app) => _app = app;

    public ConcurrentQueue<BlobCreated> Events { get; } = new();

    public volatile bool Refuse;

    public Uri Url { get; private set; } = null!;

    public static async Task<RecordingWebhook> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var webhook = new RecordingWebhook(app);
        app.MapPost(EventGrid.WebhookPath, async (HttpRequest request) =>
        {
            if (webhook.Refuse)
            {
                return Results.StatusCode(503);
            }
            using var reader = new StreamReader(request.Body);
            foreach (var e in EventGrid.ParseEvents(await reader.ReadToEndAsync()))
            {
                webhook.Events.Enqueue(EventGrid.BlobCreatedOf(e)!);
            }
            return Results.Accepted();
        });
        await app.StartAsync();
        webhook.Url = new Uri(app.Urls.First() + EventGrid.WebhookPath + "?functionName=" + EventGrid.FunctionKey("model_blob"));
        return webhook;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

public sealed class BlobWatcherTests(AzuriteFixture azurite) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("lepton-watcher-").FullName;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Each test watches its own container, so blobs of parallel tests never show up.
    private async Task<Azure.Storage.Blobs.BlobContainerClient> ContainerAsync()
    {
        var container = azurite.Clients.Container("models-" + Guid.NewGuid().ToString("N")[..12]);
        await container.CreateAsync(cancellationToken: Token);
        return container;
    }

    private static async Task<string> PutAsync(Azure.Storage.Blobs.BlobContainerClient container, string name, string data = "onnx", bool overwrite = false)
    {
        var response = await container.GetBlobClient(name).UploadAsync(BinaryData.FromString(data), overwrite, Token);
        return response.Value.ETag.ToString().Trim('"');
    }

    private static BlobWatcher Watcher(Azure.Storage.Blobs.BlobContainerClient container, RecordingWebhook webhook, string ledger, HttpClient http) =>
        new(container, webhook.Url, new DeliveryLedger(ledger), http, TimeProvider.System, NullLogger<BlobWatcher>.Instance);

    [Fact(Timeout = 60_000)]
    public async Task Each_model_blob_version_is_delivered_once_and_other_blobs_never()
    {
        var ct = TestContext.Current.CancellationToken;
        var container = await ContainerAsync();
        await using var webhook = await RecordingWebhook.StartAsync();
        using var http = new HttpClient();
        var first = await PutAsync(container, "digits/1.0.0/model.onnx");
        await PutAsync(container, "digits/1.0.0/lepton.json", "{}");
        await PutAsync(container, "digits/notes.txt", "hi");
        var second = await PutAsync(container, "digits/1.1.0/model.onnx");
        var watcher = Watcher(container, webhook, Path.Combine(_dir, "ledger.json"), http);
        var delivered = await watcher.PollOnceAsync(ct);
        Assert.Equal(["digits/1.0.0/model.onnx", "digits/1.1.0/model.onnx"], delivered.Select(d => d.BlobName));
        Assert.Empty(await watcher.PollOnceAsync(ct));
        Assert.Equal([("digits/1.0.0/model.onnx", first), ("digits/1.1.0/model.onnx", second)], webhook.Events.Select(e => (e.BlobName, e.ETag)));
        Assert.All(webhook.Events, e => Assert.Equal(container.Name, e.Container));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_restarted_watcher_delivers_only_new_or_changed_blobs()
    {
        var ct = TestContext.Current.CancellationToken;
        var container = await ContainerAsync();
        await using var webhook = await RecordingWebhook.StartAsync();
        using var http = new HttpClient();
        var ledger = Path.Combine(_dir, "watcher", "delivered.json");
        await PutAsync(container, "digits/1.0.0/model.onnx");
        await Watcher(container, webhook, ledger, http).PollOnceAsync(ct);
        // While the watcher is down: one new version and one overwritten file (a new blob version).
        var added = await PutAsync(container, "digits/2.0.0/model.onnx");
        var replaced = await PutAsync(container, "digits/1.0.0/model.onnx", "other bytes", overwrite: true);
        var after = Watcher(container, webhook, ledger, http);
        var delivered = await after.PollOnceAsync(ct);
        Assert.Empty(await after.PollOnceAsync(ct));
        Assert.Equal(
            new[] { ("digits/1.0.0/model.onnx", replaced), ("digits/2.0.0/model.onnx", added) }.Order(),
            delivered.Select(d => (d.BlobName, d.ETag)).Order());
        Assert.Equal(3, webhook.Events.Count);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_failed_delivery_is_not_recorded_and_is_retried()
    {
        var ct = TestContext.Current.CancellationToken;
        var container = await ContainerAsync();
        await using var webhook = await RecordingWebhook.StartAsync();
        using var http = new HttpClient();
        var ledger = Path.Combine(_dir, "ledger.json");
        var etag = await PutAsync(container, "digits/1.0.0/model.onnx");
        webhook.Refuse = true;
        var watcher = Watcher(container, webhook, ledger, http);
        Assert.Empty(await watcher.PollOnceAsync(ct));
        Assert.False(File.Exists(ledger));
        webhook.Refuse = false;
        Assert.Equal([("digits/1.0.0/model.onnx", etag)], (await watcher.PollOnceAsync(ct)).Select(d => (d.BlobName, d.ETag)));
        Assert.Single(webhook.Events);
    }

    [Fact]
    public void An_unreadable_ledger_says_how_to_recover_without_naming_local_paths()
    {
        var path = Path.Combine(_dir, "delivered.json");
        File.WriteAllText(path, "{not json");
        var error = Assert.Throws<Shared.ConfigurationException>(() => new DeliveryLedger(path));
        Assert.Contains("delete it to re-deliver", error.Message);
        Assert.DoesNotContain(_dir, error.Message);
    }
}

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ProcessHygieneTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("lepton-stack-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_api_key_is_created_once_with_mode_0600()
    {
        var key = ApiKeyFile.LoadOrCreate(_dir);
        var path = Path.Combine(_dir, ApiKeyFile.FileName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.True(key.Length >= 40);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        Assert.Equal(key, ApiKeyFile.LoadOrCreate(_dir));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void Reclaim_stops_a_leftover_child_and_leaves_an_unrelated_process_alone()
    {
        using var leftover = Process.Start(new ProcessStartInfo("sleep", "60"))!;
        using var unrelated = Process.Start(new ProcessStartInfo("sleep", "60"))!;
        try
        {
            PidFiles.Write(_dir, "worker-0", leftover.Id);
            // A pid file whose start time does not match: that pid now belongs to someone else.
            File.WriteAllText(Path.Combine(PidFiles.Folder(_dir), "azurite.pid"), $"{unrelated.Id} 1\n");
            var reclaimed = PidFiles.Reclaim(_dir, NullLogger.Instance);
            Assert.Equal(["worker-0"], reclaimed);
            Assert.True(leftover.WaitForExit(5000));
            Assert.False(unrelated.HasExited);
            Assert.Empty(Directory.GetFiles(PidFiles.Folder(_dir)));
        }
        finally
        {
            unrelated.Kill();
            if (!leftover.HasExited)
            {
                leftover.Kill();
            }
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Reclaim_passes_over_a_zombie_at_once()
    {
        // `sleep 0` exits at once, and the shell that started it becomes `sleep 30`, which never
        // reaps it: a zombie with the start time its pid file recorded, as a child that died with
        // its stack is until its adopter reaps it.
        using var parent = Process.Start(new ProcessStartInfo("sh", ["-c", "sleep 0 & echo $!; exec sleep 30"]) { RedirectStandardOutput = true })!;
        try
        {
            var zombie = int.Parse((await parent.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken))!, System.Globalization.CultureInfo.InvariantCulture);
            for (var i = 0; i < 100 && Posix.State(zombie) != 'Z'; i++)
            {
                await Task.Delay(50, TestContext.Current.CancellationToken);
            }
            Assert.Equal('Z', Posix.State(zombie));
            Assert.True(Posix.IsAlive(zombie));
            Assert.False(Posix.IsRunning(zombie));
            PidFiles.Write(_dir, "worker-0", zombie);
            var clock = Stopwatch.StartNew();
            Assert.Empty(PidFiles.Reclaim(_dir, NullLogger.Instance));
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"reclaim waited {clock.Elapsed} on a zombie");
            Assert.Empty(Directory.GetFiles(PidFiles.Folder(_dir)));
        }
        finally
        {
            parent.Kill();
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_managed_process_is_restarted_after_a_crash_and_drains_on_stop()
    {
        var marker = Path.Combine(_dir, "stopped");
        // A child that records SIGTERM (a graceful stop) and otherwise runs until told.
        var script = $"trap 'echo term > {marker}; exit 0' TERM; while true; do sleep 0.1; done";
        var process = await ManagedProcess.StartAsync(
            "child", _dir, "sh", ["-c", script], new Dictionary<string, string>(),
            _ => Task.FromResult(true), NullLogger.Instance, TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        var first = process.Pid!.Value;
        Assert.True(File.Exists(Path.Combine(PidFiles.Folder(_dir), "child.pid")));
        process.Crash();
        for (var i = 0; i < 100 && (process.Pid == first || process.Pid is null); i++)
        {
            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
        Assert.NotEqual(first, process.Pid);
        Assert.Equal(1, process.Restarts);
        await process.DisposeAsync();
        Assert.True(File.Exists(marker));
        Assert.False(File.Exists(Path.Combine(PidFiles.Folder(_dir), "child.pid")));
    }
}
