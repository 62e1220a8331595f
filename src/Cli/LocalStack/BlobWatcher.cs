using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Lepton.Shared.Models;
using Lepton.Shared.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Lepton.Cli.LocalStack;

/// <summary>
/// Blob name → ETag of the version last delivered, persisted in one JSON file that is rewritten
/// atomically (a temporary file renamed into place) only after the webhook answered 2xx.
/// </summary>
public sealed class DeliveryLedger
{
    private readonly string _path;
    private readonly Dictionary<string, string> _delivered;
    private readonly Lock _lock = new();

    public DeliveryLedger(string path)
    {
        _path = path;
        _delivered = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            return;
        }
        try
        {
            var data = JsonNode.Parse(File.ReadAllText(path))?["delivered"] as JsonObject ?? [];
            foreach (var (name, etag) in data)
            {
                _delivered[name] = etag?.GetValue<string>() ?? "";
            }
        }
        catch (Exception error) when (error is JsonException or InvalidOperationException or IOException)
        {
            throw new Shared.ConfigurationException(
                $"the watcher's ledger {Path.GetFileName(path)} in the data folder is unreadable; delete it to re-deliver every model blob (the lifecycle ignores duplicates)");
        }
    }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _delivered.Count;
            }
        }
    }

    public bool IsDelivered(string name, string etag)
    {
        lock (_lock)
        {
            return _delivered.TryGetValue(name, out var known) && known == etag;
        }
    }

    public void Record(string name, string etag)
    {
        lock (_lock)
        {
            _delivered[name] = etag;
            var json = new JsonObject { ["delivered"] = new JsonObject(_delivered.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))) };
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);
            var temporary = _path + ".tmp";
            File.WriteAllText(temporary, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            File.Move(temporary, _path, overwrite: true); // a crash leaves the old or the new ledger
        }
    }
}

/// <summary>One delivered event: the blob version and the webhook's answer.</summary>
public sealed record Delivery(string BlobName, string ETag, int Status);

/// <summary>
/// Turns each new <c>models/{model}/{version}/model.onnx</c> blob version into the Event Grid
/// <c>BlobCreated</c> call Azure makes: Azurite publishes no events, so the local stack polls the
/// container and POSTs the same event to the same webhook. Each blob version (name + ETag) is
/// delivered exactly once, across restarts and storage outages too: the ledger is written only after
/// the webhook answered 2xx, so an upload the webhook could not act on (storage away, a non-2xx
/// answer, no answer in time) is delivered again on a later poll; a crash between the 2xx and the
/// ledger write re-delivers once, which the lifecycle absorbs (its instance id is derived from the
/// content). Listing goes through a <see cref="StorageGuard"/> (a deadline per poll; while storage is
/// away the circuit paces the tries); each webhook call through a Polly pipeline (a timeout per
/// attempt, retries with exponential backoff and jitter on transport errors, 408, 429 and 5xx).
/// </summary>
public sealed class BlobWatcher : BackgroundService
{
    private readonly BlobContainerClient _models;
    private readonly Uri _webhook;
    private readonly DeliveryLedger _ledger;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILogger<BlobWatcher> _log;
    private readonly TimeSpan _poll;
    private readonly StorageGuard _guard;
    private readonly ResiliencePipeline<HttpResponseMessage> _delivery;

    public BlobWatcher(
        BlobContainerClient models,
        Uri webhook,
        DeliveryLedger ledger,
        HttpClient http,
        TimeProvider time,
        ILogger<BlobWatcher> log,
        TimeSpan? pollInterval = null,
        StorageGuard? guard = null,
        WebhookDelivery? delivery = null)
    {
        _models = models;
        _webhook = webhook;
        _ledger = ledger;
        _http = http;
        _time = time;
        _log = log;
        _poll = pollInterval ?? TimeSpan.FromMilliseconds(500);
        _guard = guard ?? new StorageGuard("watcher", new StorageGuardOptions(), time, log);
        _delivery = (delivery ?? new WebhookDelivery()).Pipeline(time, log);
    }

    /// <summary>Everything this watcher delivered, in order.</summary>
    public List<Delivery> Delivered { get; } = [];

    /// <summary>
    /// Delivers every undelivered model blob version, oldest first; returns the 2xx ones. Throws
    /// <see cref="Shared.StorageUnavailableException"/> when the container cannot be listed.
    /// </summary>
    public async Task<IReadOnlyList<Delivery>> PollOnceAsync(CancellationToken cancellationToken)
    {
        var pending = await _guard.RunAsync(ListUndeliveredAsync, cancellationToken);
        var delivered = new List<Delivery>();
        foreach (var blob in pending.OrderBy(b => b.Properties.LastModified).ThenBy(b => b.Name, StringComparer.Ordinal))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var etag = ETagOf(blob);
            var account = _models.Uri.GetLeftPart(UriPartial.Path)[..^(_models.Name.Length + 1)];
            var body = new JsonArray(EventGrid.BlobCreatedEvent(account, _models.Name, blob.Name, etag, blob.Properties.ContentLength ?? 0, _time.GetUtcNow())).ToJsonString();
            HttpResponseMessage response;
            try
            {
                response = await _delivery.ExecuteAsync(
                    async (state, token) =>
                    {
                        using var request = new HttpRequestMessage(HttpMethod.Post, state.Webhook)
                        {
                            Content = new StringContent(state.Body, Encoding.UTF8, "application/json"),
                        };
                        request.Headers.Add(EventGrid.EventTypeHeader, "Notification");
                        return await state.Http.SendAsync(request, token);
                    },
                    (Webhook: _webhook, Body: body, Http: _http),
                    cancellationToken);
            }
            catch (Exception error) when (!cancellationToken.IsCancellationRequested && error is HttpRequestException or TimeoutRejectedException or OperationCanceledException)
            {
                _log.LogWarning("delivery of {Blob} failed ({Error}); retrying on the next poll", blob.Name, error.Message);
                continue;
            }
            using (response)
            {
                if (!response.IsSuccessStatusCode)
                {
                    var text = await response.Content.ReadAsStringAsync(cancellationToken);
                    var excerpt = text[..Math.Min(300, text.Length)];
                    _log.LogWarning("the webhook answered {Status} for {Blob}: {Body}; retrying on the next poll", (int)response.StatusCode, blob.Name, excerpt);
                    continue;
                }
                _ledger.Record(blob.Name, etag);
                _log.LogInformation("delivered BlobCreated models/{Blob} (etag {ETag})", blob.Name, etag);
                var delivery = new Delivery(blob.Name, etag, (int)response.StatusCode);
                delivered.Add(delivery);
                lock (Delivered)
                {
                    Delivered.Add(delivery);
                }
            }
        }
        return delivered;
    }

    private async Task<List<BlobItem>> ListUndeliveredAsync(CancellationToken cancellationToken)
    {
        var pending = new List<BlobItem>();
        await foreach (var blob in _models.GetBlobsAsync(new GetBlobsOptions(), cancellationToken))
        {
            if (IsModelBlob(blob.Name) && !_ledger.IsDelivered(blob.Name, ETagOf(blob)))
            {
                pending.Add(blob);
            }
        }
        return pending;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await PollOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Shared.StorageUnavailableException)
            {
                // The guard logs the outage once and paces the tries; nothing was recorded, so
                // nothing is lost: every undelivered upload is listed again once storage answers.
            }
            catch (Exception error)
            {
                // Keep watching, and say so; nothing was recorded, so nothing is lost.
                _log.LogWarning("polling the models container failed ({Error}); retrying", error.Message);
            }
            try
            {
                await Task.Delay(_poll, _time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Whether a blob name is a model upload (<c>{model}/{version}/model.onnx</c>).</summary>
    public static bool IsModelBlob(string name)
    {
        var parts = name.Split('/');
        return parts.Length == 3 && parts[2] == ModelStore.ModelFile;
    }

    // Listings and property reads quote ETags differently; Event Grid sends them bare.
    private static string ETagOf(BlobItem blob) => blob.Properties.ETag?.ToString().Trim('"') ?? "";
}

/// <summary>
/// How the watcher calls the webhook, where the Azure SDK's retry does not reach: each attempt
/// bounded by <see cref="AttemptTimeout"/>, up to <see cref="Retries"/> more attempts after a
/// transport error, a timeout, or a 408, 429 or 5xx answer, with exponential backoff and jitter
/// from <see cref="FirstDelay"/>. What is still undelivered after that waits for the next poll.
/// </summary>
public sealed record WebhookDelivery
{
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public int Retries { get; init; } = 2;

    public TimeSpan FirstDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    public ResiliencePipeline<HttpResponseMessage> Pipeline(TimeProvider time, ILogger log) =>
        new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = Retries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = FirstDelay,
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>()
                    .HandleResult(r => (int)r.StatusCode is 408 or 429 or >= 500),
                OnRetry = args =>
                {
                    // The answer being retried is not read by anyone: release its connection.
                    args.Outcome.Result?.Dispose();
                    if (log.IsEnabled(LogLevel.Debug))
                    {
                        log.LogDebug("webhook attempt {Attempt} failed ({Outcome}); retrying in {Delay}", args.AttemptNumber + 1,
                            args.Outcome.Exception?.Message ?? ((int)args.Outcome.Result!.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture), args.RetryDelay);
                    }
                    return default;
                },
            })
            .AddTimeout(AttemptTimeout)
            .Build();
}
