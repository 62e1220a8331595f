using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lepton.Shared;

namespace Lepton.Cli.LocalStack;

/// <summary>The blob a <c>Microsoft.Storage.BlobCreated</c> event is about.</summary>
public sealed record BlobCreated(string Container, string BlobName, string Url, string ETag, long ContentLength);

/// <summary>
/// Event Grid's <c>Microsoft.Storage.BlobCreated</c> events as Azure delivers them to a blob
/// trigger with the Event Grid source: <c>POST /runtime/webhooks/blobs?functionName=Host.Functions.&lt;name&gt;</c>,
/// first a subscription-validation handshake, then notifications carrying a JSON array of events.
/// The local watcher builds the same events and the local host parses them the same way.
/// </summary>
public static class EventGrid
{
    public const string BlobCreatedType = "Microsoft.Storage.BlobCreated";
    public const string SubscriptionValidationType = "Microsoft.EventGrid.SubscriptionValidationEvent";
    public const string EventTypeHeader = "aeg-event-type";
    public const string WebhookPath = "/runtime/webhooks/blobs";
    private const string SubjectPrefix = "/blobServices/default/containers/";

    /// <summary>The <c>functionName</c> query value the Functions host expects for a blob trigger.</summary>
    public static string FunctionKey(string functionName) => $"Host.Functions.{functionName}";

    /// <summary>One event in Event Grid's schema, as a storage account publishes it.</summary>
    public static JsonObject BlobCreatedEvent(string accountUrl, string container, string blobName, string etag, long contentLength, DateTimeOffset at) => new()
    {
        ["id"] = Guid.NewGuid().ToString(),
        ["topic"] = "/subscriptions/local/resourceGroups/local/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
        ["subject"] = $"{SubjectPrefix}{container}/blobs/{blobName}",
        ["eventType"] = BlobCreatedType,
        ["eventTime"] = at.ToString("O", CultureInfo.InvariantCulture),
        ["dataVersion"] = "",
        ["metadataVersion"] = "1",
        ["data"] = new JsonObject
        {
            ["api"] = "PutBlockList",
            ["requestId"] = Guid.NewGuid().ToString(),
            ["eTag"] = etag,
            ["contentType"] = "application/octet-stream",
            ["contentLength"] = contentLength,
            ["blobType"] = "BlockBlob",
            ["url"] = $"{accountUrl.TrimEnd('/')}/{container}/{blobName}",
            ["sequencer"] = "0",
            ["storageDiagnostics"] = new JsonObject { ["batchId"] = Guid.NewGuid().ToString() },
        },
    };

    /// <summary>The events of a webhook body (a JSON array, or one object).</summary>
    public static IReadOnlyList<JsonObject> ParseEvents(string body)
    {
        JsonNode? data;
        try
        {
            data = JsonNode.Parse(body.Length == 0 ? "null" : body);
        }
        catch (JsonException)
        {
            throw new InvalidInputException("the Event Grid body is not JSON; send an array of events");
        }
        return data switch
        {
            JsonObject one => [one],
            JsonArray many when many.All(e => e is JsonObject) => many.Cast<JsonObject>().ToList(),
            _ => throw new InvalidInputException("the Event Grid body must be a JSON array of event objects"),
        };
    }

    /// <summary>The handshake's validation code when this is a subscription validation request.</summary>
    public static string? ValidationCode(IReadOnlyList<JsonObject> events)
    {
        foreach (var e in events.Where(e => Text(e["eventType"]) == SubscriptionValidationType))
        {
            return Text(e["data"]?["validationCode"]) is { Length: > 0 } code
                ? code
                : throw new InvalidInputException("the subscription validation event has no data.validationCode");
        }
        return null;
    }

    /// <summary>The blob an event is about; <c>null</c> for other event types; malformed ones throw.</summary>
    public static BlobCreated? BlobCreatedOf(JsonObject e)
    {
        if (Text(e["eventType"]) != BlobCreatedType)
        {
            return null;
        }
        var subject = Text(e["subject"]);
        if (!subject.StartsWith(SubjectPrefix, StringComparison.Ordinal))
        {
            throw new InvalidInputException($"BlobCreated event has subject '{subject}'; expected '{SubjectPrefix}<container>/blobs/<name>'");
        }
        var rest = subject[SubjectPrefix.Length..];
        var split = rest.IndexOf("/blobs/", StringComparison.Ordinal);
        if (split <= 0 || split + 7 >= rest.Length)
        {
            throw new InvalidInputException($"BlobCreated event subject '{subject}' names no container and blob");
        }
        if (e["data"] is not JsonObject data)
        {
            throw new InvalidInputException("BlobCreated event has no data object");
        }
        var length = data["contentLength"] is JsonValue v && v.TryGetValue<long>(out var n) ? n : 0;
        return new BlobCreated(rest[..split], rest[(split + 7)..], Text(data["url"]), Text(data["eTag"]), length);
    }

    private static string Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";
}
