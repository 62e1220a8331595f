using System.Text.Json;
using System.Text.Json.Nodes;
using Lepton.Shared.Metrics;

namespace Lepton.Shared.Reports;

/// <summary>Requests, errors and latency percentiles of one version over one window (or a step's windows).</summary>
public sealed record WindowSummary(long Requests, long RoutedRequests, long Errors, long Nonfinite, double ErrorRate, double P50Ms, double P95Ms)
{
    public static readonly WindowSummary Empty = new(0, 0, 0, 0, 0, 0, 0);

    public static WindowSummary Of(WindowRollup? rollup) => rollup is null || rollup.Requests == 0
        ? Empty
        : new WindowSummary(
            rollup.Requests,
            rollup.RoutedRequests,
            rollup.Errors,
            rollup.Nonfinite,
            (double)rollup.Errors / rollup.Requests,
            BucketPercentileMs(rollup.LatencyBuckets, 50),
            BucketPercentileMs(rollup.LatencyBuckets, 95));

    /// <summary>
    /// Upper bound (ms) of the histogram bucket holding the <paramref name="q"/>-th percentile; 0
    /// when empty. The open last bucket has no upper bound, so the last finite one stands for it.
    /// </summary>
    public static double BucketPercentileMs(IReadOnlyList<long> buckets, double q)
    {
        var total = buckets.Sum();
        if (total == 0)
        {
            return 0;
        }
        var bounds = LatencyHistogram.BoundsMs;
        var lastFinite = bounds[^2];
        var target = q / 100.0 * total;
        long running = 0;
        for (var i = 0; i < buckets.Count; i++)
        {
            running += buckets[i];
            if (running >= target)
            {
                return double.IsFinite(bounds[i]) ? bounds[i] : lastFinite;
            }
        }
        return lastFinite;
    }
}

/// <summary>
/// The JSON documents stored at <c>reports/{model}/{version}/{stage}.json</c>: <c>evaluation</c>,
/// <c>shadow</c> and <c>canary</c> each get their own, and each carries the composite score of
/// every version it covers under <c>composite</c> (DESIGN §5). Documents are strict JSON: NaN and
/// infinities (an idle version, a p95 past the last bucket) are written as <c>null</c>.
/// </summary>
public static class StageReports
{
    public const int Schema = 1;

    /// <summary>A stage's document: <paramref name="body"/>'s members after the common header.</summary>
    public static JsonObject Document(string model, string version, string stage, string outcome, string reason, JsonObject body)
    {
        var document = new JsonObject
        {
            ["schema"] = Schema,
            ["model"] = model,
            ["version"] = version,
            ["stage"] = stage,
            ["outcome"] = outcome,
            ["reason"] = reason,
        };
        foreach (var (key, value) in body)
        {
            document[key] = StrictJson(value?.DeepClone());
        }
        return document;
    }

    /// <summary>Any value as a JSON node under Lepton's conventions (snake_case, NaN as null).</summary>
    public static JsonNode? ToNode<T>(T value) => JsonSerializer.SerializeToNode(value, LeptonJson.Options);

    /// <summary><paramref name="node"/> with every non-finite number replaced by <c>null</c>.</summary>
    public static JsonNode? StrictJson(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var key in obj.Select(p => p.Key).ToList())
                {
                    obj[key] = StrictJson(obj[key]?.DeepClone());
                }
                return obj;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    array[i] = StrictJson(array[i]?.DeepClone());
                }
                return array;
            case JsonValue value when value.TryGetValue<double>(out var number) && !double.IsFinite(number):
                return null;
            case JsonValue value when value.TryGetValue<float>(out var single) && !float.IsFinite(single):
                return null;
            default:
                return node;
        }
    }
}
