using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Lepton.Shared.Models;

/// <summary>What a model predicts; picks the evaluation metrics.</summary>
public enum ModelTask
{
    Classification,
    Regression,
}

/// <summary>Per-model dynamic batching settings for the worker.</summary>
public sealed record Batching(int MaxBatchSize = 32, double MaxDelayMs = 2.0)
{
    public const int MaxAllowedBatchSize = 4096;

    public const double MaxAllowedDelayMs = 1000;
}

/// <summary>
/// The optional <c>lepton.json</c> uploaded beside a model. Unknown keys are refused (a typo like
/// <c>"polcy"</c> would otherwise be silently ignored) and every error names the field.
/// </summary>
public sealed record Manifest
{
    public const string FileName = "lepton.json";

    /// <summary>Largest manifest accepted.</summary>
    public const int MaxBytes = 256 * 1024;

    private static readonly string[] Keys = ["batching", "breaking", "dataset", "labels", "metadata", "policy", "task"];

    public ModelTask Task { get; init; } = ModelTask.Classification;

    /// <summary>Dataset name: the blob <c>datasets/{model}/{dataset}.npz</c>; <c>null</c> skips evaluation.</summary>
    public string? Dataset { get; init; }

    public IReadOnlyList<string> Labels { get; init; } = [];

    /// <summary>Policy overrides (validated when the lifecycle resolves the policy).</summary>
    public JsonObject Policy { get; init; } = [];

    public Batching Batching { get; init; } = new();

    /// <summary>A major version that declares an incompatible signature on purpose.</summary>
    public bool Breaking { get; init; }

    /// <summary>Free-form metadata (owner, ticket…), kept as given.</summary>
    public JsonObject Metadata { get; init; } = [];

    /// <summary>Parses and validates a manifest, throwing <see cref="InvalidManifestException"/> with the reason.</summary>
    public static Manifest Parse(ReadOnlySpan<byte> raw)
    {
        if (raw.Length > MaxBytes)
        {
            throw new InvalidManifestException($"{FileName} is larger than {MaxBytes} bytes");
        }
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(raw);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidManifestException($"{FileName} is not UTF-8 text");
        }
        return Parse(text);
    }

    public static Manifest Parse(string text)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException error)
        {
            throw new InvalidManifestException(
                $"{FileName} is not valid JSON: line {(error.LineNumber ?? 0) + 1}, position {(error.BytePositionInLine ?? 0) + 1}");
        }
        if (root is not JsonObject data)
        {
            throw new InvalidManifestException($"{FileName} must be a JSON object");
        }
        var unknown = data.Select(p => p.Key).Where(k => !Keys.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
        {
            throw new InvalidManifestException(
                $"{FileName} has unknown keys {string.Join(", ", unknown)}; allowed: {string.Join(", ", Keys)}");
        }
        return new Manifest
        {
            Task = ParseTask(data["task"]),
            Dataset = ParseDataset(data["dataset"]),
            Labels = ParseLabels(data["labels"]),
            Policy = Object(data["policy"], "policy"),
            Batching = ParseBatching(data["batching"]),
            Breaking = Bool(data["breaking"], "breaking"),
            Metadata = Object(data["metadata"], "metadata"),
        };
    }

    /// <summary>The manifest as the JSON document stored beside the model.</summary>
    public JsonObject ToJson() => new()
    {
        ["task"] = Task == ModelTask.Regression ? "regression" : "classification",
        ["dataset"] = Dataset,
        ["labels"] = new JsonArray(Labels.Select(l => (JsonNode?)JsonValue.Create(l)).ToArray()),
        ["policy"] = Policy.DeepClone(),
        ["batching"] = new JsonObject
        {
            ["max_batch_size"] = Batching.MaxBatchSize,
            ["max_delay_ms"] = Batching.MaxDelayMs,
        },
        ["breaking"] = Breaking,
        ["metadata"] = Metadata.DeepClone(),
    };

    public byte[] ToUtf8Bytes() => Encoding.UTF8.GetBytes(ToJson().ToJsonString(LeptonJson.Indented));

    private static ModelTask ParseTask(JsonNode? node) => node switch
    {
        null => ModelTask.Classification,
        JsonValue v when v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() == "classification" => ModelTask.Classification,
        JsonValue v when v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() == "regression" => ModelTask.Regression,
        _ => throw new InvalidManifestException($"{FileName}: task must be 'classification' or 'regression', got {node.ToJsonString()}"),
    };

    private static string? ParseDataset(JsonNode? node)
    {
        if (node is null)
        {
            return null;
        }
        // Dataset names become blob names, so they follow the model-name grammar.
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String && ModelName.IsValid(v.GetValue<string>()))
        {
            return v.GetValue<string>();
        }
        throw new InvalidManifestException(
            $"{FileName}: dataset must be a name of lowercase letters, digits and hyphens (the blob datasets/<model>/<dataset>.npz), got {Short(node)}");
    }

    private static string[] ParseLabels(JsonNode? node)
    {
        if (node is null)
        {
            return [];
        }
        if (node is JsonArray array && array.All(i => i is JsonValue v && v.GetValueKind() == JsonValueKind.String))
        {
            return array.Select(i => i!.GetValue<string>()).ToArray();
        }
        throw new InvalidManifestException($"{FileName}: labels must be a list of strings");
    }

    private static JsonObject Object(JsonNode? node, string name) => node switch
    {
        null => [],
        JsonObject obj => (JsonObject)obj.DeepClone(),
        _ => throw new InvalidManifestException($"{FileName}: {name} must be a JSON object"),
    };

    private static bool Bool(JsonNode? node, string name) => node switch
    {
        null => false,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        _ => throw new InvalidManifestException($"{FileName}: {name} must be true or false, got {Short(node)}"),
    };

    private static Batching ParseBatching(JsonNode? node)
    {
        var data = Object(node, "batching");
        var unknown = data.Select(p => p.Key).Where(k => k is not ("max_batch_size" or "max_delay_ms")).ToList();
        if (unknown.Count > 0)
        {
            throw new InvalidManifestException($"{FileName}: batching has unknown keys {string.Join(", ", unknown)}");
        }
        var defaults = new Batching();
        var size = defaults.MaxBatchSize;
        if (data["max_batch_size"] is { } sizeNode)
        {
            var text = sizeNode.ToJsonString();
            if (sizeNode.GetValueKind() != JsonValueKind.Number || text.Contains('.', StringComparison.Ordinal)
                || !int.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out size)
                || size is < 1 or > Batching.MaxAllowedBatchSize)
            {
                throw new InvalidManifestException($"{FileName}: batching.max_batch_size must be 1..{Batching.MaxAllowedBatchSize}");
            }
        }
        var delay = defaults.MaxDelayMs;
        if (data["max_delay_ms"] is { } delayNode)
        {
            if (delayNode.GetValueKind() != JsonValueKind.Number
                || !double.TryParse(delayNode.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture, out delay)
                || delay is < 0 or > Batching.MaxAllowedDelayMs)
            {
                throw new InvalidManifestException($"{FileName}: batching.max_delay_ms must be 0..{Batching.MaxAllowedDelayMs}");
            }
        }
        return new Batching(size, delay);
    }

    private static string Short(JsonNode? node)
    {
        var text = node?.ToJsonString() ?? "null";
        return text.Length > 80 ? text[..80] + "…" : text;
    }

    public bool Equals(Manifest? other) => other is not null && ToJson().ToJsonString() == other.ToJson().ToJsonString();

    public override int GetHashCode() => ToJson().ToJsonString().GetHashCode(StringComparison.Ordinal);
}
