using System.Text.Json.Serialization;
using Lepton.Shared.Policies;

namespace Lepton.Shared.Statistics;

/// <summary>
/// Evidence that the candidate's error rate exceeds production's beyond the tolerance, from the
/// always-valid e-process (<see cref="ErrorRateEProcess"/>). Pass the cumulative totals at every
/// look; rejecting whenever <see cref="PValue"/> ≤ <see cref="Alpha"/> keeps the false-rollback
/// probability ≤ alpha over all looks together.
/// </summary>
/// <param name="CandidateRate">Candidate errors / requests (0 without requests).</param>
/// <param name="ProductionRate">Production errors / requests (0 without requests).</param>
/// <param name="ToleratedRate"><c>max(ratio · production, production + delta)</c> at the observed rates.</param>
/// <param name="LogEValue">Natural log of the e-value.</param>
/// <param name="PValue">Always valid: <c>min(1, 1/e)</c>, valid at any look however many were taken.</param>
/// <param name="Alpha">The level the verdict used.</param>
/// <param name="Regression"><c>PValue ≤ Alpha</c>.</param>
public sealed record ErrorRateEvidence(
    [property: JsonPropertyName("candidate_error_rate")] double CandidateRate,
    [property: JsonPropertyName("production_error_rate")] double ProductionRate,
    [property: JsonPropertyName("tolerated_error_rate")] double ToleratedRate,
    [property: JsonPropertyName("error_log_e_value")] double LogEValue,
    [property: JsonPropertyName("error_p_value")] double PValue,
    [property: JsonPropertyName("error_alpha")] double Alpha,
    [property: JsonPropertyName("error_regression")] bool Regression)
{
    /// <summary>
    /// Always-valid test of "candidate error rate &gt; max(ratio · production, production + delta)".
    /// Counts must be ≥ 0 with errors ≤ requests; the levels are validated as the policy's are.
    /// </summary>
    public static ErrorRateEvidence Test(
        long candidateErrors,
        long candidateRequests,
        long productionErrors,
        long productionRequests,
        double alpha,
        double maxRatio,
        double maxDelta)
    {
        CheckCount("candidate errors", candidateErrors);
        CheckCount("candidate requests", candidateRequests);
        CheckCount("production errors", productionErrors);
        CheckCount("production requests", productionRequests);
        if (candidateErrors > candidateRequests || productionErrors > productionRequests)
        {
            throw new InvalidInputException(
                $"errors cannot exceed requests (candidate {candidateErrors}/{candidateRequests}, production "
                + $"{productionErrors}/{productionRequests}); pass counts from the same rollup");
        }
        new CanaryThresholds { Alpha = alpha, MaxErrorRateRatio = maxRatio, MaxErrorRateDelta = maxDelta }.Validate();
        var logE = ErrorRateEProcess.LogEValue(candidateErrors, candidateRequests, productionErrors, productionRequests, maxRatio, maxDelta);
        var candidateRate = candidateRequests > 0 ? (double)candidateErrors / candidateRequests : 0.0;
        var productionRate = productionRequests > 0 ? (double)productionErrors / productionRequests : 0.0;
        var pValue = logE <= 0 ? 1.0 : Math.Exp(-logE);
        return new ErrorRateEvidence(
            candidateRate,
            productionRate,
            Math.Max(maxRatio * productionRate, productionRate + maxDelta),
            logE,
            pValue,
            alpha,
            pValue <= alpha);
    }

    /// <summary>The same test at the policy's level and tolerances.</summary>
    public static ErrorRateEvidence Test(long candidateErrors, long candidateRequests, long productionErrors, long productionRequests, CanaryThresholds thresholds) =>
        Test(candidateErrors, candidateRequests, productionErrors, productionRequests, thresholds.Alpha, thresholds.MaxErrorRateRatio, thresholds.MaxErrorRateDelta);

    internal static void CheckCount(string name, long value)
    {
        if (value < 0)
        {
            throw new InvalidInputException($"{name} must be a whole number ≥ 0, got {value}");
        }
    }
}
