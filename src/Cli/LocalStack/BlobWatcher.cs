using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Lepton.Shared.Models;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

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
/// delivered exactly once, across restarts too; a failed delivery is retried on the next poll; a
/// crash between the 2xx and the ledger write re-delivers once, which the lifecycle absorbs (its
/// instance id is derived from the content).
/// </summary>
public sealed class BlobWatcher(
    BlobContainerClient models,
    Uri webhook,
    DeliveryLedger ledger,
    HttpClient http,
    TimeProvider time,
    ILogger<BlobWatcher> log,
    TimeSpan? pollInterval = null) : BackgroundService
{
    private readonly TimeSpan _poll = pollInterval ?? TimeSpan.FromMilliseconds(500);

    /// <summary>Everything this watcher delivered, in order.</summary>
    public List<Delivery> Delivered { get; } = [];

    /// <summary>Delivers every undelivered model blob version, oldest first; returns the 2xx ones.</summary>
    public async Task<IReadOnlyList<Delivery>> PollOnceAsync(CancellationToken cancellationToken)
    {
        var pending = new List<BlobItem>();
        await foreach (var blob in models.GetBlobsAsync(new GetBlobsOptions(), cancellationToken))
        {
            if (IsModelBlob(blob.Name) && !ledger.IsDelivered(blob.Name, ETagOf(blob)))
            {
                pending.Add(blob);
            }
        }
        var delivered = new List<Delivery>();
        foreach (var blob in pending.OrderBy(b => b.Properties.LastModified).ThenBy(b => b.Name, StringComparer.Ordinal))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var etag = ETagOf(blob);
            var account = models.Uri.GetLeftPart(UriPartial.Path)[..^(models.Name.Length + 1)];
            var body = new JsonArray(EventGrid.BlobCreatedEvent(account, models.Name, blob.Name, etag, blob.Properties.ContentLength ?? 0, time.GetUtcNow()));
            using var request = new HttpRequestMessage(HttpMethod.Post, webhook)
            {
                Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
            };
            request.Headers.Add(EventGrid.EventTypeHeader, "Notification");
            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request, cancellationToken);
            }
            catch (HttpRequestException error)
            {
                log.LogWarning("delivery of {Blob} failed ({Error}); retrying on the next poll", blob.Name, error.Message);
                continue;
            }
            using (response)
            {
                if (!response.IsSuccessStatusCode)
                {
                    var text = await response.Content.ReadAsStringAsync(cancellationToken);
                    var excerpt = text[..Math.Min(300, text.Length)];
                    log.LogWarning("the webhook answered {Status} for {Blob}: {Body}; retrying on the next poll", (int)response.StatusCode, blob.Name, excerpt);
                    continue;
                }
                ledger.Record(blob.Name, etag);
                log.LogInformation("delivered BlobCreated models/{Blob} (etag {ETag})", blob.Name, etag);
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
            catch (Exception error)
            {
                // A storage hiccup: keep watching, and say so; nothing was recorded, so nothing is lost.
                log.LogWarning("polling the models container failed ({Error}); retrying", error.Message);
            }
            try
            {
                await Task.Delay(_poll, time, stoppingToken);
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
