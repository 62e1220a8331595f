using Lepton.Shared.Policies;

namespace Lepton.Shared.Statistics;

/// <summary>Chi-square of the routed split and its p-value.</summary>
public readonly record struct SampleRatioResult(double Chi2, double PValue);

/// <summary>
/// Sample-ratio mismatch: did the router split traffic the way the configured weight says? If it
/// did not, every other comparison of the window is biased (a routing bug, a replica on a stale
/// route table), so the canary calls such a window <c>invalid</c> instead of judging it.
/// </summary>
public static class SampleRatioMismatch
{
    /// <summary>
    /// Pearson chi-square (1 df) of the routed counts against <paramref name="weightBp"/> basis
    /// points to the candidate. At 0 % or 100 % the expected count of one side is 0 and the test is
    /// exact: any request on the side that should get none is a mismatch (chi-square ∞, p 0).
    /// </summary>
    public static SampleRatioResult Test(long candidateRouted, long productionRouted, int weightBp)
    {
        ErrorRateEvidence.CheckCount("candidate routed requests", candidateRouted);
        ErrorRateEvidence.CheckCount("production routed requests", productionRouted);
        CheckWeight(weightBp);
        var total = (double)candidateRouted + productionRouted;
        if (total == 0)
        {
            return new SampleRatioResult(0.0, 1.0);
        }
        var share = (double)weightBp / Policy.BasisPoints;
        var expectedCandidate = total * share;
        var expectedProduction = total * (1 - share);
        if (expectedCandidate == 0 || expectedProduction == 0)
        {
            var exact = (expectedCandidate != 0 || candidateRouted == 0) && (expectedProduction != 0 || productionRouted == 0);
            return exact ? new SampleRatioResult(0.0, 1.0) : new SampleRatioResult(double.PositiveInfinity, 0.0);
        }
        var chi2 = (Square(candidateRouted - expectedCandidate) / expectedCandidate)
            + (Square(productionRouted - expectedProduction) / expectedProduction);
        return new SampleRatioResult(chi2, Distributions.ChiSquare1Sf(chi2));
    }

    /// <summary>Throws unless <paramref name="weightBp"/> is a weight in 0..10 000 basis points.</summary>
    public static void CheckWeight(int weightBp)
    {
        if (weightBp is < 0 or > Policy.BasisPoints)
        {
            throw new InvalidInputException(
                $"weight_bp must be a whole number of basis points in 0..{Policy.BasisPoints}, got {weightBp}");
        }
    }

    private static double Square(double x) => x * x;
}
