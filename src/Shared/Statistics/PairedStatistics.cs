using System.Text.Json.Serialization;
using MathNet.Numerics.Statistics;

namespace Lepton.Shared.Statistics;

/// <summary>The top-1 flip rate of shadow pairs against the policy's ceiling.</summary>
/// <param name="Pairs">Pairs compared.</param>
/// <param name="Flips">Pairs whose top-1 class differs.</param>
/// <param name="FlipRate">Flips / pairs (0 without pairs).</param>
/// <param name="MaxFlipRate">The ceiling, <c>1 − min_agreement</c>.</param>
/// <param name="PValue">One-sided exact binomial p of "flip rate ≤ ceiling".</param>
/// <param name="Exceeds"><c>PValue &lt; alpha</c>.</param>
/// <remarks>Its JSON has the keys these statistics have in a decision's checks.</remarks>
public sealed record FlipRateResult(
    [property: JsonPropertyName("shadow_pairs")] long Pairs,
    [property: JsonPropertyName("shadow_flips")] long Flips,
    double FlipRate,
    double MaxFlipRate,
    [property: JsonPropertyName("flip_p_value")] double PValue,
    [property: JsonPropertyName("flip_exceeds")] bool Exceeds)
{
    /// <summary>Share of pairs on which the two versions agree.</summary>
    public double Agreement => 1.0 - FlipRate;
}

/// <summary>Sum of positive ranks and the one-sided p that the candidate is slower.</summary>
public readonly record struct WilcoxonResult(double Statistic, double PValue);

/// <summary>McNemar's test on labelled predictions of two models (A = production, B = candidate).</summary>
/// <param name="N">Labelled examples.</param>
/// <param name="AccuracyA">Share A got right.</param>
/// <param name="AccuracyB">Share B got right.</param>
/// <param name="B01">A wrong and B right.</param>
/// <param name="B10">A right and B wrong.</param>
/// <param name="PValue">Exact two-sided McNemar p: whether the accuracies differ, not which is higher.</param>
public sealed record McNemarResult(
    long N,
    double AccuracyA,
    double AccuracyB,
    [property: JsonPropertyName("b01")] long B01,
    [property: JsonPropertyName("b10")] long B10,
    double PValue);

/// <summary>
/// Paired statistics: candidate and production answering the <em>same</em> requests (shadow
/// traffic or labelled data), which is far more sensitive than comparing two independent samples.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><b>Top-1 flip rate</b>: without labels a flip cannot be called right or wrong, so the
/// question is only "do they disagree more than the policy allows (<c>1 − min_agreement</c>)?": an
/// exact one-sided binomial test, so a handful of noisy pairs does not roll back a version whose
/// point estimate dips under the floor.</item>
/// <item><b>McNemar's test</b> where labels exist: only the discordant pairs carry information
/// about which model is more accurate; the exact binomial form is valid at any count.</item>
/// <item><b>Paired latency by Wilcoxon signed-rank</b> on candidate − production differences: it
/// removes the per-request variation both versions share, and ranks keep a few slow outliers from
/// dominating.</item>
/// <item><b>Score shift by the population stability index</b> over the score bins, with epsilon
/// smoothing so an empty bin does not make it infinite (0.1 is the customary "minor", 0.2 the
/// "major" shift).</item>
/// </list>
/// </remarks>
public static class PairedStatistics
{
    /// <summary>Smallest bin share the PSI uses: a bin empty on one side counts as 0.01 % of it.</summary>
    public const double PsiEpsilon = 1e-4;

    /// <summary>Up to this many non-zero differences (and without ties) the Wilcoxon null is enumerated exactly.</summary>
    public const int WilcoxonExactMaxN = 50;

    /// <summary>
    /// Is the top-1 flip rate significantly above <paramref name="maxFlipRate"/>? Exact one-sided
    /// binomial (<c>scipy.stats.binomtest(flips, pairs, max_flip_rate, alternative="greater")</c>);
    /// with a ceiling of 0 any flip refutes "never flips".
    /// </summary>
    public static FlipRateResult FlipRateTest(long pairs, long flips, double maxFlipRate, double alpha = 0.05)
    {
        ErrorRateEvidence.CheckCount("pairs", pairs);
        ErrorRateEvidence.CheckCount("flips", flips);
        if (flips > pairs)
        {
            throw new InvalidInputException($"flips ({flips}) cannot exceed pairs ({pairs}); pass one rollup's counts");
        }
        if (!(maxFlipRate >= 0 && maxFlipRate <= 1) || !(alpha > 0 && alpha < 1))
        {
            throw new InvalidInputException(
                $"max_flip_rate must be in [0, 1] and alpha in (0, 1), got {maxFlipRate}, {alpha}");
        }
        if (pairs == 0)
        {
            return new FlipRateResult(0, 0, 0.0, maxFlipRate, 1.0, false);
        }
        var p = maxFlipRate == 0 ? (flips > 0 ? 0.0 : 1.0) : BinomialTest.Greater(flips, pairs, maxFlipRate);
        return new FlipRateResult(pairs, flips, (double)flips / pairs, maxFlipRate, p, p < alpha);
    }

    /// <summary>Two-sided exact McNemar p-value from the two discordant counts (1 when there are none).</summary>
    public static double McNemar(long b01, long b10)
    {
        ErrorRateEvidence.CheckCount("b01", b01);
        ErrorRateEvidence.CheckCount("b10", b10);
        return b01 + b10 == 0 ? 1.0 : BinomialTest.TwoSided(b01, b01 + b10, 0.5);
    }

    /// <summary>McNemar on labelled predictions of two models (A = production, B = candidate).</summary>
    public static McNemarResult McNemarFromPredictions<T>(IReadOnlyList<T> yTrue, IReadOnlyList<T> predA, IReadOnlyList<T> predB)
    {
        if (yTrue.Count != predA.Count || yTrue.Count != predB.Count)
        {
            throw new InvalidInputException(
                $"y_true, pred_a and pred_b must be flat arrays of the same length, got {yTrue.Count}, {predA.Count} and {predB.Count}");
        }
        if (yTrue.Count == 0)
        {
            throw new InvalidInputException("McNemar needs at least one labelled example; the dataset is empty");
        }
        var comparer = EqualityComparer<T>.Default;
        long aRight = 0, bRight = 0, b01 = 0, b10 = 0;
        for (var i = 0; i < yTrue.Count; i++)
        {
            var a = comparer.Equals(predA[i], yTrue[i]);
            var b = comparer.Equals(predB[i], yTrue[i]);
            aRight += a ? 1 : 0;
            bRight += b ? 1 : 0;
            b01 += !a && b ? 1 : 0;
            b10 += a && !b ? 1 : 0;
        }
        double n = yTrue.Count;
        return new McNemarResult(yTrue.Count, aRight / n, bRight / n, b01, b10, McNemar(b01, b10));
    }

    /// <summary>
    /// Wilcoxon signed-rank test that paired differences (candidate − production, ms) are
    /// positive: (sum of positive ranks, one-sided p), as <c>scipy.stats.wilcoxon(d,
    /// alternative="greater")</c>. Zero differences are dropped (Wilcoxon's convention); the null
    /// distribution is exact for up to <see cref="WilcoxonExactMaxN"/> differences without ties,
    /// otherwise the normal approximation with the tie correction (no continuity correction);
    /// p = 1 with no non-zero difference.
    /// </summary>
    public static WilcoxonResult WilcoxonPairedLatency(ReadOnlySpan<double> diffsMs)
    {
        var nonzero = new List<double>(diffsMs.Length);
        foreach (var d in diffsMs)
        {
            if (!double.IsFinite(d))
            {
                throw new InvalidInputException("paired latency differences must be a flat list of finite numbers (ms)");
            }
            if (d != 0)
            {
                nonzero.Add(d);
            }
        }
        var n = nonzero.Count;
        if (n == 0)
        {
            return new WilcoxonResult(0.0, 1.0);
        }
        // Ties in |d| share the mean of their ranks (scipy's rankdata) and enter the variance.
        var magnitudes = nonzero.Select(Math.Abs).ToArray();
        var ranks = magnitudes.Ranks(RankDefinition.Average);
        var tieGroups = magnitudes.GroupBy(m => m).Select(g => g.Count()).Where(t => t > 1).ToList();
        double rPlus = 0;
        for (var i = 0; i < n; i++)
        {
            if (nonzero[i] > 0)
            {
                rPlus += ranks[i];
            }
        }
        if (n <= WilcoxonExactMaxN && tieGroups.Count == 0)
        {
            return new WilcoxonResult(rPlus, ExactSignedRankSf(n, (int)rPlus));
        }
        double count = n;
        var mean = count * (count + 1.0) * 0.25;
        var variance = count * (count + 1.0) * ((2.0 * count) + 1.0);
        double tieCorrection = 0;
        foreach (var t in tieGroups)
        {
            tieCorrection += t * (((double)t * t) - 1.0);
        }
        variance -= 0.5 * tieCorrection;
        var z = (rPlus - mean) / Math.Sqrt(variance / 24);
        return new WilcoxonResult(rPlus, Distributions.NormalSf(z));
    }

    /// <summary>
    /// PSI = Σ (a − e)·ln(a / e) over bin shares, each share floored at <paramref name="epsilon"/>
    /// and renormalised. Symmetric in its arguments and ≥ 0; 0.1 is a minor, 0.2 a major shift.
    /// </summary>
    public static double PopulationStabilityIndex(ReadOnlySpan<long> expectedBins, ReadOnlySpan<long> actualBins, double epsilon = PsiEpsilon)
    {
        if (expectedBins.Length != actualBins.Length || expectedBins.Length < 2)
        {
            throw new InvalidInputException(
                $"PSI needs two flat lists of bin counts of the same length ≥ 2, got {expectedBins.Length} and {actualBins.Length} bins");
        }
        double expectedTotal = 0, actualTotal = 0;
        for (var i = 0; i < expectedBins.Length; i++)
        {
            if (expectedBins[i] < 0 || actualBins[i] < 0)
            {
                throw new InvalidInputException("PSI bin counts must be finite numbers ≥ 0");
            }
            expectedTotal += expectedBins[i];
            actualTotal += actualBins[i];
        }
        if (expectedTotal == 0 || actualTotal == 0)
        {
            throw new InvalidInputException("PSI needs at least one observation on each side; wait for traffic");
        }
        var pe = FlooredShares(expectedBins, expectedTotal, epsilon);
        var pa = FlooredShares(actualBins, actualTotal, epsilon);
        double psi = 0;
        for (var i = 0; i < pe.Length; i++)
        {
            psi += (pa[i] - pe[i]) * Math.Log(pa[i] / pe[i]);
        }
        return psi;
    }

    private static double[] FlooredShares(ReadOnlySpan<long> bins, double total, double epsilon)
    {
        var shares = new double[bins.Length];
        double sum = 0;
        for (var i = 0; i < bins.Length; i++)
        {
            shares[i] = Math.Max(bins[i] / total, epsilon);
            sum += shares[i];
        }
        for (var i = 0; i < shares.Length; i++)
        {
            shares[i] /= sum;
        }
        return shares;
    }

    /// <summary>
    /// <c>P(T⁺ ≥ k)</c> under the null for <paramref name="n"/> differences without ties: the
    /// number of subsets of 1..n with sum ≥ k over 2ⁿ, counted exactly (n ≤ 50 keeps every count
    /// below 2⁵³, so the division is the only rounding).
    /// </summary>
    private static double ExactSignedRankSf(int n, int k)
    {
        var maxSum = n * (n + 1) / 2;
        var counts = new long[maxSum + 1];
        counts[0] = 1;
        for (var rank = 1; rank <= n; rank++)
        {
            for (var s = (rank * (rank + 1) / 2); s >= rank; s--)
            {
                counts[s] += counts[s - rank];
            }
        }
        long tail = 0;
        for (var s = Math.Max(k, 0); s <= maxSum; s++)
        {
            tail += counts[s];
        }
        return Math.Clamp(tail / Math.Pow(2, n), 0.0, 1.0);
    }
}
