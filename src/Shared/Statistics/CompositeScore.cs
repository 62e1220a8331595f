using System.Text.Json.Serialization;
using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;

namespace Lepton.Shared.Statistics;

/// <summary>
/// Reference scales that make the composite score's parts unitless, so the weights mean what they
/// say: a version at p95 100 ms, 1 ms of ONNX Runtime time per prediction and 1 % errors scores
/// <c>P = w1 + w2 + w3</c>.
/// </summary>
public sealed record CompositeScales
{
    /// <summary>The scales every report uses.</summary>
    public static readonly CompositeScales Default = new();

    /// <summary>p95 latency (ms) that makes T = 1.</summary>
    public double LatencyMs { get; init; } = 100.0;

    /// <summary>Compute ms per 1,000 predictions that makes R = 1 (1 ms per prediction).</summary>
    public double ComputeMsPer1k { get; init; } = 1000.0;

    /// <summary>Error rate that makes E = 1.</summary>
    public double ErrorRate { get; init; } = 0.01;
}

/// <summary>
/// The seeds' composite score <c>P = w1·T + w2·R + w3·E</c> (lower is better), with its raw parts:
/// <c>T = p95 ms / 100 ms</c>, <c>R = compute ms per 1,000 predictions / 1000 ms</c>,
/// <c>E = error rate / 1 %</c> (<see cref="CompositeScales"/>). One formula for live traffic
/// (<see cref="Of"/>) and the offline evaluation (<see cref="FromParts"/>), so every report scores
/// versions the same way. Parts are NaN when the version saw no requests (or no predictions, for
/// R); a p95 in the overflow bucket makes T infinite (both written as <c>null</c> in JSON).
/// </summary>
public sealed record CompositeScore(
    [property: JsonPropertyName("p95_ms")] double P95Ms,
    [property: JsonPropertyName("compute_ms_per_1k")] double ComputeMsPer1k,
    [property: JsonPropertyName("error_rate")] double ErrorRate,
    [property: JsonPropertyName("T")] double T,
    [property: JsonPropertyName("R")] double R,
    [property: JsonPropertyName("E")] double E,
    [property: JsonPropertyName("P")] double P)
{
    /// <summary>The score from its raw parts; a bad policy (weights or scales) throws <see cref="InvalidPolicyException"/>.</summary>
    public static CompositeScore FromParts(double p95Ms, double computeMsPer1k, double errorRate, CompositeWeights? weights = null, CompositeScales? scales = null)
    {
        weights ??= new CompositeWeights();
        scales ??= CompositeScales.Default;
        Check(weights, scales);
        var t = p95Ms / scales.LatencyMs;
        var r = computeMsPer1k / scales.ComputeMsPer1k;
        var e = errorRate / scales.ErrorRate;
        return new CompositeScore(p95Ms, computeMsPer1k, errorRate, t, r, e, (weights.Latency * t) + (weights.Resource * r) + (weights.Error * e));
    }

    /// <summary>
    /// The score of one version's live traffic in a rollup: T from the histogram's p95, R from
    /// ONNX Runtime compute time per 1,000 predictions, E from failed requests.
    /// </summary>
    public static CompositeScore Of(WindowRollup rollup, CompositeWeights? weights = null, CompositeScales? scales = null)
    {
        weights ??= new CompositeWeights();
        scales ??= CompositeScales.Default;
        Check(weights, scales); // a bad policy is named before the rollup is read
        var p95 = LatencyStatistics.P95FromBuckets(rollup.LatencyBuckets);
        var computePer1k = rollup.Rows > 0 ? rollup.ComputeMs / rollup.Rows * 1000.0 : double.NaN;
        var errorRate = rollup.Requests > 0 ? (double)rollup.Errors / rollup.Requests : double.NaN;
        return FromParts(p95, computePer1k, errorRate, weights, scales);
    }

    /// <summary>Throws <see cref="InvalidPolicyException"/> unless the weights and scales make a score.</summary>
    internal static void Check(CompositeWeights weights, CompositeScales scales)
    {
        double[] w = [weights.Latency, weights.Resource, weights.Error];
        double[] s = [scales.LatencyMs, scales.ComputeMsPer1k, scales.ErrorRate];
        if (!w.All(x => double.IsFinite(x) && x >= 0))
        {
            throw new InvalidPolicyException($"composite weights must be three finite numbers ≥ 0, got ({string.Join(", ", w)})");
        }
        if (!s.All(x => double.IsFinite(x) && x >= 0))
        {
            throw new InvalidPolicyException($"composite scales must be three finite numbers ≥ 0, got ({string.Join(", ", s)})");
        }
        if (w.Sum() <= 0 || s.Min() <= 0)
        {
            throw new InvalidPolicyException(
                $"composite weights must not all be 0 and scales must be > 0, got weights ({string.Join(", ", w)}), scales ({string.Join(", ", s)})");
        }
    }
}

/// <summary>The composite score of the candidate and, when there is one, of production.</summary>
public sealed record CompositeComparison(
    CompositeScore Candidate,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] CompositeScore? Production)
{
    /// <summary>Both scores under the policy's weights.</summary>
    public static CompositeComparison Of(WindowRollup candidate, WindowRollup? production, CompositeWeights? weights = null) =>
        new(CompositeScore.Of(candidate, weights), production is null ? null : CompositeScore.Of(production, weights));
}
