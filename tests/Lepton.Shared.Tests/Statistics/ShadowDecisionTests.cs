using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;
using Lepton.Shared.Statistics;
using MathNet.Numerics.Distributions;
using static Lepton.Shared.Tests.Statistics.Rollups;

namespace Lepton.Shared.Tests.Statistics;

public sealed class ShadowDecisionTests
{
    private static readonly CanaryThresholds Defaults = new();

    private static WindowRollup Shadow(
        string version, int pairs, long flips = 0, long errors = 0, double medianMs = 6.0, double[]? diffs = null, long[]? scores = null, int seed = 0)
    {
        var latencies = LogNormalMs(Seeded(seed), Math.Log(medianMs), 0.3, pairs);
        return WindowRollup.Empty("digits", version, 0, 300) with
        {
            Requests = pairs,
            RoutedRequests = 0,
            Errors = errors,
            Rows = pairs,
            LatencyBuckets = BucketsOf(latencies),
            ShadowPairs = version == "1.0.0" ? 0 : pairs,
            ShadowFlips = flips,
            ScoreBinCounts = scores ?? Enumerable.Repeat(100L, WindowRollup.ScoreBins).ToArray(),
            PairedLatencyDiffMs = diffs ?? [],
        };
    }

    private static double[] NormalDiffs(int seed, double mean, double sd) => Normal.Samples(Seeded(seed), mean, sd).Take(256).ToArray();

    [Fact]
    public void A_healthy_shadow_passes()
    {
        var candidate = Shadow("1.1.0", 1000, flips: 20, diffs: NormalDiffs(9, 0, 1));
        var production = Shadow("1.0.0", 1000, seed: 1);
        var d = CanaryAnalysis.DecideShadow(candidate, production, Defaults);
        Assert.Equal(Verdict.Promote, d.Verdict);
        Assert.StartsWith("shadow passed: agreement 98.0% over 1000 pairs", d.Reason);
        Assert.Equal(Verdict.Continue, CanaryAnalysis.DecideShadow(candidate, production, Defaults, final: false).Verdict);
        Assert.StartsWith("shadow looks healthy so far", CanaryAnalysis.DecideShadow(candidate, production, Defaults, final: false).Reason);
        Assert.NotNull(d.Checks.FlipPValue);
        Assert.NotNull(d.Checks.Psi);
        Assert.NotNull(d.Checks.PairedWilcoxonP);
        Assert.NotNull(d.Checks.ErrorPValue);
        Assert.NotNull(d.Checks.P95Ratio);
        Assert.Equal(256, d.Checks.PairedLatencySamples);
        Assert.Null(d.Checks.WeightBp); // a shadow has no weight
        Assert.DoesNotContain("NaN", LeptonJson.Serialize(d));
    }

    [Fact]
    public void Shadow_rolls_back_on_flips()
    {
        var d = CanaryAnalysis.DecideShadow(Shadow("1.1.0", 1000, flips: 150), Shadow("1.0.0", 1000), Defaults);
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.Contains("agrees with production on 85.0% of 1000 paired requests", d.Reason);
        Assert.True(d.Checks.FlipExceeds);
    }

    [Fact]
    public void Shadow_rolls_back_on_paired_latency()
    {
        var candidate = Shadow("1.1.0", 1000, medianMs: 20.0, diffs: NormalDiffs(2, 14.0, 3.0));
        var d = CanaryAnalysis.DecideShadow(candidate, Shadow("1.0.0", 1000), Defaults);
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.Contains("slower on the same requests", d.Reason);
        Assert.Contains("median paired difference +1", d.Reason);
        Assert.Contains("(Wilcoxon p=", d.Reason);
        Assert.True(d.Checks.PairedWilcoxonP < 1e-10);
    }

    [Fact]
    public void Shadow_rolls_back_on_a_score_shift()
    {
        var d = CanaryAnalysis.DecideShadow(Shadow("1.1.0", 1000, scores: [0, 0, 0, 0, 0, 0, 0, 0, 500, 500]), Shadow("1.0.0", 1000), Defaults);
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.Contains("PSI", d.Reason);
    }

    [Fact]
    public void Shadow_rolls_back_on_errors_even_early()
    {
        var d = CanaryAnalysis.DecideShadow(Shadow("1.1.0", 80, errors: 30), Shadow("1.0.0", 80), Defaults);
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.Contains("error rate", d.Reason);
    }

    [Fact]
    public void Shadow_without_enough_pairs_is_insufficient()
    {
        var production = Shadow("1.0.0", 100);
        var none = CanaryAnalysis.DecideShadow(WindowRollup.Empty("digits", "1.1.0", 0, 300), production, Defaults);
        Assert.Equal(Verdict.InsufficientEvidence, none.Verdict);
        Assert.Contains("no shadow pairs", none.Reason);
        Assert.Equal("""{"shadow_pairs":0}""", LeptonJson.Serialize(none.Checks));
        var few = CanaryAnalysis.DecideShadow(Shadow("1.1.0", 50), production, Defaults);
        Assert.Equal(Verdict.InsufficientEvidence, few.Verdict);
        Assert.Contains("50 < 200", few.Reason);
    }

    [Fact]
    public void Shadow_latency_falls_back_to_the_histograms_without_paired_samples()
    {
        var d = CanaryAnalysis.DecideShadow(Shadow("1.1.0", 1000, medianMs: 20.0), Shadow("1.0.0", 1000), Defaults);
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.Contains("Mann-Whitney p=", d.Reason);
        Assert.Equal(0, d.Checks.PairedLatencySamples);
        Assert.True(double.IsNaN(d.Checks.PairedLatencyMedianDiffMs!.Value));
        Assert.Contains("\"paired_latency_median_diff_ms\":null", LeptonJson.Serialize(d.Checks));
    }

    [Fact]
    public void Shadow_checks_carry_the_composite_score_of_both_versions()
    {
        var d = CanaryAnalysis.DecideShadow(Shadow("1.1.0", 1000), Shadow("1.0.0", 1000), Defaults);
        Assert.NotNull(d.Checks.Composite!.Production);
        Assert.Equal(CompositeScore.Of(Shadow("1.1.0", 1000)), d.Checks.Composite.Candidate);
    }
}
