using System.Text.Json.Serialization;

namespace Lepton.Shared.Policies;

/// <summary>How a candidate is exposed to traffic.</summary>
public enum Strategy
{
    /// <summary>Stepped weights, each step judged.</summary>
    Canary,

    /// <summary>Warm everywhere, then 100 % at once for a judged bake window.</summary>
    BlueGreen,

    /// <summary>A fixed split for a duration, a report, no automatic promotion.</summary>
    AbTest,

    /// <summary>Mirrored traffic only, a report, no automatic promotion.</summary>
    ShadowOnly,
}

/// <summary>Weights of the composite score <c>P = w1·T + w2·R + w3·E</c> (DESIGN.md §5).</summary>
public sealed record CompositeWeights
{
    public double Latency { get; init; } = 0.5;

    public double Resource { get; init; } = 0.2;

    public double Error { get; init; } = 0.3;
}

/// <summary>Tolerances of the offline evaluation gate (candidate vs production on the dataset).</summary>
public sealed record EvaluationGate
{
    public int Shards { get; init; } = 4;

    /// <summary>Absolute accuracy drop tolerated (classification).</summary>
    public double MaxAccuracyDrop { get; init; } = 0.01;

    /// <summary>Absolute macro-F1 drop tolerated (classification).</summary>
    public double MaxF1Drop { get; init; } = 0.02;

    /// <summary>Relative MSE increase tolerated (regression).</summary>
    public double MaxMseIncrease { get; init; } = 0.05;

    /// <summary>Candidate / production fastest-full-batch latency ratio tolerated...</summary>
    public double MaxLatencyRatio { get; init; } = 2.0;

    /// <summary>...unless slower by less than this (sub-ms noise is not a regression).</summary>
    public double MinLatencyDeltaMs { get; init; } = 1.0;
}

/// <summary>The statistical part of the rollout policy (DESIGN.md §5).</summary>
public sealed record CanaryThresholds
{
    /// <summary>Level of the always-valid error-rate test (and the flip-rate test).</summary>
    public double Alpha { get; init; } = 0.05;

    /// <summary>Tolerated candidate/production error-rate ratio.</summary>
    public double MaxErrorRateRatio { get; init; } = 1.5;

    /// <summary>Absolute tolerance: 0 % vs 0.1 % is not a rollback.</summary>
    public double MaxErrorRateDelta { get; init; } = 0.005;

    [JsonPropertyName("max_p95_latency_ratio")]
    public double MaxP95LatencyRatio { get; init; } = 1.5;

    /// <summary>
    /// ...and slower by at least this much at p95: a 3x ratio on 0.1 ms is scheduler jitter, not
    /// a regression (the evaluation gate has the same floor).
    /// </summary>
    [JsonPropertyName("min_p95_latency_delta_ms")]
    public double MinP95LatencyDeltaMs { get; init; } = 1.0;

    public double LatencyAlpha { get; init; } = 0.01;

    /// <summary>Per version per step; fewer → <c>insufficient_evidence</c>.</summary>
    public int MinRequests { get; init; } = 200;

    /// <summary>Sample-ratio-mismatch chi-square level (strict: it runs at every look).</summary>
    public double SrmAlpha { get; init; } = 0.001;

    /// <summary>Shadow top-1 agreement floor.</summary>
    public double MinAgreement { get; init; } = 0.95;

    /// <summary>Population stability index ceiling.</summary>
    public double MaxPsi { get; init; } = 0.2;

    /// <summary>Throws <see cref="InvalidPolicyException"/> naming the first bad field.</summary>
    public CanaryThresholds Validate()
    {
        OpenUnit("alpha", Alpha, "a significance level such as 0.05");
        OpenUnit("latency_alpha", LatencyAlpha, "a significance level such as 0.01");
        OpenUnit("srm_alpha", SrmAlpha, "a significance level such as 0.001");
        Finite("max_error_rate_ratio", MaxErrorRateRatio);
        if (MaxErrorRateRatio < 1)
        {
            throw new InvalidPolicyException(
                $"thresholds.max_error_rate_ratio must be ≥ 1 (1 = no tolerance), got {MaxErrorRateRatio}; "
                + "below 1 an unchanged version would count as a regression");
        }
        Finite("max_error_rate_delta", MaxErrorRateDelta);
        if (MaxErrorRateDelta is < 0 or >= 1)
        {
            throw new InvalidPolicyException(
                $"thresholds.max_error_rate_delta must be in [0, 1) (an absolute error-rate difference such as 0.005), got {MaxErrorRateDelta}");
        }
        Finite("max_p95_latency_ratio", MaxP95LatencyRatio);
        if (MaxP95LatencyRatio < 1)
        {
            throw new InvalidPolicyException(
                $"thresholds.max_p95_latency_ratio must be ≥ 1 (e.g. 1.5 = 50% slower), got {MaxP95LatencyRatio}");
        }
        Finite("min_p95_latency_delta_ms", MinP95LatencyDeltaMs);
        if (MinP95LatencyDeltaMs < 0)
        {
            throw new InvalidPolicyException(
                $"thresholds.min_p95_latency_delta_ms must be ≥ 0 (milliseconds; 0 = ratio only), got {MinP95LatencyDeltaMs}");
        }
        if (MinRequests < 1)
        {
            throw new InvalidPolicyException($"thresholds.min_requests must be ≥ 1 (e.g. 200), got {MinRequests}");
        }
        Finite("min_agreement", MinAgreement);
        if (MinAgreement is < 0 or > 1)
        {
            throw new InvalidPolicyException(
                $"thresholds.min_agreement must be in [0, 1] (a fraction such as 0.95), got {MinAgreement}");
        }
        Finite("max_psi", MaxPsi);
        if (MaxPsi <= 0)
        {
            throw new InvalidPolicyException($"thresholds.max_psi must be > 0 (0.1 = minor shift, 0.2 = major), got {MaxPsi}");
        }
        return this;
    }

    private static void Finite(string name, double value)
    {
        if (!double.IsFinite(value))
        {
            throw new InvalidPolicyException($"thresholds.{name} must be a finite number, got {value}");
        }
    }

    private static void OpenUnit(string name, double value, string example)
    {
        Finite(name, value);
        if (value is <= 0 or >= 1)
        {
            throw new InvalidPolicyException($"thresholds.{name} must be in (0, 1) ({example}), got {value}");
        }
    }
}

/// <summary>
/// Every knob of one version's rollout; durations in seconds, weights in basis points (10 000 =
/// 100 %). Defaults live here; <see cref="PolicyResolver"/> layers the manifest's and an HTTP
/// start's overrides on top and validates every field.
/// </summary>
public sealed record Policy
{
    public const int BasisPoints = 10_000;

    public static readonly IReadOnlyList<int> DefaultStepsBp = [100, 500, 2500, 5000, 10_000];

    public Strategy Strategy { get; init; } = Strategy.Canary;

    /// <summary>Canary weights; strictly increasing, ending at 10 000.</summary>
    public IReadOnlyList<int> StepsBp { get; init; } = DefaultStepsBp;

    public double WindowS { get; init; } = 300;

    /// <summary>Early look inside a window: a clear regression stops it (≤ <see cref="WindowS"/>).</summary>
    public double CheckIntervalS { get; init; } = 60;

    /// <summary>Windows added per step on <c>insufficient_evidence</c> or <c>invalid</c>; then roll back.</summary>
    public int MaxExtensions { get; init; } = 3;

    public CanaryThresholds Thresholds { get; init; } = new();

    /// <summary><c>null</c>: decided by the SemVer bump (minor and major shadow).</summary>
    public bool? Shadow { get; init; }

    public int ShadowFractionBp { get; init; } = 1000;

    public double ShadowDurationS { get; init; } = 600;

    /// <summary><c>null</c>: decided by the SemVer bump (major needs approval).</summary>
    public bool? ApprovalRequired { get; init; }

    /// <summary>Approval (and <c>ab_test</c>/<c>shadow_only</c> decision) timeout.</summary>
    public double ApprovalTimeoutS { get; init; } = 86_400;

    public int AbSplitBp { get; init; } = 5000;

    public double AbDurationS { get; init; } = 3600;

    /// <summary>After promotion: the previous production is kept for instant rollback (also the blue-green window).</summary>
    public double BakeS { get; init; } = 300;

    public double WarmupTimeoutS { get; init; } = 600;

    public double WarmupPollS { get; init; } = 10;

    /// <summary>A replica with an older heartbeat no longer counts as live.</summary>
    public double HeartbeatMaxAgeS { get; init; } = 30;

    /// <summary>Waiting for another version of the model to leave shadow/canary.</summary>
    public double SlotWaitTimeoutS { get; init; } = 3600;

    public double SlotPollS { get; init; } = 60;

    /// <summary>Activity retries (storage hiccups): first interval.</summary>
    public double RetryIntervalS { get; init; } = 5;

    public int RetryAttempts { get; init; } = 3;

    public CompositeWeights CompositeWeights { get; init; } = new();

    public EvaluationGate Evaluation { get; init; } = new();

    public bool Equals(Policy? other) =>
        other is not null && LeptonJson.Serialize(this) == LeptonJson.Serialize(other);

    public override int GetHashCode() => LeptonJson.Serialize(this).GetHashCode(StringComparison.Ordinal);
}

/// <summary>The path a version takes, derived from the policy and the SemVer bump.</summary>
public sealed record RolloutPlan(
    Bump Bump,
    Strategy Strategy,
    bool CompareToProduction,
    bool Shadow,
    bool Approval,
    bool DirectPromotion)
{
    /// <summary>Initial → promote; patch → canary; minor → shadow, canary; major → shadow, approval, canary.</summary>
    public static RolloutPlan For(Policy policy, Bump bump)
    {
        if (bump == Bump.Initial)
        {
            return new RolloutPlan(bump, policy.Strategy, false, false, false, true);
        }
        var shadow = policy.Shadow ?? bump is Bump.Minor or Bump.Major;
        if (policy.Strategy == Strategy.ShadowOnly)
        {
            shadow = true;
        }
        var approval = policy.ApprovalRequired ?? bump == Bump.Major;
        return new RolloutPlan(bump, policy.Strategy, true, shadow, approval, false);
    }
}
