using System.Text.Json.Serialization;

namespace Lepton.Shared.Statistics;

/// <summary>What one look at a canary (or shadow) step concludes; JSON names are snake_case.</summary>
public enum Verdict
{
    /// <summary>The step passed; go on to the next weight.</summary>
    Continue,

    /// <summary>The final step (or the shadow phase) passed.</summary>
    Promote,

    /// <summary>A regression was shown; take the candidate out of traffic.</summary>
    Rollback,

    /// <summary>Too few samples to judge; the step extends (bounded by the policy).</summary>
    InsufficientEvidence,

    /// <summary>Sample-ratio mismatch: routing did not do what it was told, so the window is not judged.</summary>
    Invalid,
}

/// <summary>A verdict, the sentence a user reads, and every statistic computed on the way.</summary>
public sealed record CanaryDecision(Verdict Verdict, string Reason, CanaryChecks Checks);

/// <summary>
/// Every statistic a canary or shadow decision computed, flat, under the reference's JSON keys
/// (<c>srm_p</c>, <c>error_p_value</c>, <c>p95_ratio</c>, …). A check that did not run is absent
/// (<c>null</c> here, left out of the JSON), so a report shows how far the decision got; NaN and
/// infinities (an empty or overflowing histogram) are written as <c>null</c> by
/// <see cref="LeptonJson.Options"/>.
/// </summary>
public sealed record CanaryChecks
{
    private const JsonIgnoreCondition Absent = JsonIgnoreCondition.WhenWritingNull;

    /// <summary>The step's candidate weight (canary only).</summary>
    [JsonIgnore(Condition = Absent)]
    public int? WeightBp { get; init; }

    [JsonIgnore(Condition = Absent)]
    public long? CandidateRequests { get; init; }

    [JsonIgnore(Condition = Absent)]
    public long? ProductionRequests { get; init; }

    [JsonIgnore(Condition = Absent)]
    public long? CandidateRouted { get; init; }

    [JsonIgnore(Condition = Absent)]
    public long? ProductionRouted { get; init; }

    /// <summary><c>P = w1·T + w2·R + w3·E</c> of both versions, for the reports.</summary>
    [JsonIgnore(Condition = Absent)]
    public CompositeComparison? Composite { get; init; }

    [JsonIgnore(Condition = Absent)]
    [JsonPropertyName("srm_chi2")]
    public double? SrmChi2 { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? SrmP { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? CandidateErrorRate { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? ProductionErrorRate { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? ToleratedErrorRate { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? ErrorLogEValue { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? ErrorPValue { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? ErrorAlpha { get; init; }

    [JsonIgnore(Condition = Absent)]
    public bool? ErrorRegression { get; init; }

    [JsonIgnore(Condition = Absent)]
    [JsonPropertyName("candidate_p95_ms")]
    public double? CandidateP95Ms { get; init; }

    [JsonIgnore(Condition = Absent)]
    [JsonPropertyName("production_p95_ms")]
    public double? ProductionP95Ms { get; init; }

    [JsonIgnore(Condition = Absent)]
    [JsonPropertyName("p95_ratio")]
    public double? P95Ratio { get; init; }

    [JsonIgnore(Condition = Absent)]
    [JsonPropertyName("p95_delta_ms")]
    public double? P95DeltaMs { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? LatencyMwuU { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? LatencyMwuP { get; init; }

    [JsonIgnore(Condition = Absent)]
    public long? ShadowPairs { get; init; }

    [JsonIgnore(Condition = Absent)]
    public long? ShadowFlips { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? Agreement { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? FlipRate { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? MaxFlipRate { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? FlipPValue { get; init; }

    [JsonIgnore(Condition = Absent)]
    public bool? FlipExceeds { get; init; }

    /// <summary>Population stability index of the candidate's score bins against production's.</summary>
    [JsonIgnore(Condition = Absent)]
    public double? Psi { get; init; }

    [JsonIgnore(Condition = Absent)]
    public int? PairedLatencySamples { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? PairedLatencyMedianDiffMs { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? PairedWilcoxonStat { get; init; }

    [JsonIgnore(Condition = Absent)]
    public double? PairedWilcoxonP { get; init; }

    /// <summary>These checks with the error-rate test's results.</summary>
    public CanaryChecks With(ErrorRateEvidence e) => this with
    {
        CandidateErrorRate = e.CandidateRate,
        ProductionErrorRate = e.ProductionRate,
        ToleratedErrorRate = e.ToleratedRate,
        ErrorLogEValue = e.LogEValue,
        ErrorPValue = e.PValue,
        ErrorAlpha = e.Alpha,
        ErrorRegression = e.Regression,
    };

    /// <summary>These checks with the latency comparison's results.</summary>
    public CanaryChecks With(LatencyComparison l) => this with
    {
        CandidateP95Ms = l.CandidateP95Ms,
        ProductionP95Ms = l.ProductionP95Ms,
        P95Ratio = l.P95Ratio,
        P95DeltaMs = l.P95DeltaMs,
        LatencyMwuU = l.MannWhitney.U,
        LatencyMwuP = l.MannWhitney.PValue,
    };

    /// <summary>These checks with the shadow flip-rate test's results.</summary>
    public CanaryChecks With(FlipRateResult f) => this with
    {
        ShadowPairs = f.Pairs,
        ShadowFlips = f.Flips,
        Agreement = f.Agreement,
        FlipRate = f.FlipRate,
        MaxFlipRate = f.MaxFlipRate,
        FlipPValue = f.PValue,
        FlipExceeds = f.Exceeds,
    };
}
