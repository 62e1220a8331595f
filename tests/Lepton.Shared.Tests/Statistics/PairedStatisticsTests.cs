using CsCheck;
using Lepton.Shared.Metrics;
using Lepton.Shared.Statistics;
using MathNet.Numerics.Distributions;
using MathNet.Numerics.Statistics;
using static Lepton.Shared.Tests.Statistics.Rollups;

namespace Lepton.Shared.Tests.Statistics;

public sealed class PairedStatisticsTests
{
    // --- McNemar ---------------------------------------------------------------------------------

    [Fact]
    public void McNemar_exact_by_hand()
    {
        // 0 vs 5 discordant pairs: two-sided exact p = 2 · 0.5⁵.
        Vectors.AssertClose(0.0625, PairedStatistics.McNemar(0, 5), "0 vs 5");
        // 1 vs 6: 2 · (1 + 7) / 2⁷.
        Vectors.AssertClose(16.0 / 128, PairedStatistics.McNemar(1, 6), "1 vs 6");
        Assert.Equal(1.0, PairedStatistics.McNemar(0, 0));
        Assert.Equal(1.0, PairedStatistics.McNemar(7, 7));
    }

    [Fact]
    public void McNemar_agrees_with_the_chi_square_form_at_large_counts()
    {
        const long B01 = 420, B10 = 520;
        var chi2 = Math.Pow(Math.Abs(B01 - B10) - 1, 2) / (B01 + B10);
        Assert.Equal(1 - ChiSquared.CDF(1, chi2), PairedStatistics.McNemar(B01, B10), 0.05 * PairedStatistics.McNemar(B01, B10));
    }

    [Fact]
    public void McNemar_refuses_negative_counts() =>
        Assert.Contains("b10 must be a whole number ≥ 0", Assert.Throws<InvalidInputException>(() => PairedStatistics.McNemar(3, -1)).Message);

    [Fact]
    public void McNemar_is_symmetric_a_probability_and_monotone() =>
        Gen.Select(Gen.Long[0, 500], Gen.Long[0, 500]).Sample((b01, b10) =>
        {
            var p = PairedStatistics.McNemar(b01, b10);
            Assert.InRange(p, 0.0, 1.0);
            Vectors.AssertClose(p, PairedStatistics.McNemar(b10, b01), "swapped");
            // Moving one discordant pair from the smaller side to the larger never raises p.
            var (lo, hi) = (Math.Min(b01, b10), Math.Max(b01, b10));
            if (lo > 0)
            {
                Assert.True(PairedStatistics.McNemar(lo - 1, hi + 1) <= p + 1e-12);
            }
        }, iter: 300);

    [Fact]
    public void The_two_sided_binomial_test_sums_every_outcome_no_more_likely_than_the_observed_one() =>
        // The definition scipy's search implements, summed outright over all n + 1 outcomes.
        Gen.Int[1, 300].SelectMany(n => Gen.Select(Gen.Int[0, n], Gen.Int[0, 4]).Select((k, pick) => (n, k, pick))).Sample((n, k, pick) =>
        {
            var p = new[] { 0.1, 0.3, 0.5, 0.77, 0.95 }[pick];
            var d = Binomial.PMF(p, n, k);
            var expected = Math.Min(1.0, Enumerable.Range(0, n + 1).Select(i => Binomial.PMF(p, n, i)).Where(x => x <= d * (1 + 1e-7)).Sum());
            var got = BinomialTest.TwoSided(k, n, p);
            Assert.True(Math.Abs(got - expected) <= Math.Max(1e-7 * expected, 1e-12), $"n={n} k={k} p={p}: {got} vs {expected}");
        }, iter: 300);

    [Fact]
    public void McNemar_from_predictions_counts_the_discordant_pairs()
    {
        int[] y = [0, 1, 2, 3, 4, 5, 6, 7];
        int[] a = [0, 1, 2, 3, 9, 9, 9, 7]; // A wrong at 4, 5, 6
        int[] b = [0, 9, 2, 3, 4, 5, 9, 7]; // B wrong at 1, 6
        var result = PairedStatistics.McNemarFromPredictions(y, a, b);
        Assert.Equal(2, result.B01); // A wrong, B right: 4, 5
        Assert.Equal(1, result.B10); // A right, B wrong: 1
        Assert.Equal(5.0 / 8, result.AccuracyA);
        Assert.Equal(6.0 / 8, result.AccuracyB);
        Assert.Equal(PairedStatistics.McNemar(2, 1), result.PValue);
        Assert.Equal(8, result.N);
        Assert.Equal("""{"n":8,"accuracy_a":0.625,"accuracy_b":0.75,"b01":2,"b10":1,"p_value":1}""", LeptonJson.Serialize(result));
    }

    [Fact]
    public void McNemar_from_predictions_refuses_mismatched_inputs()
    {
        Assert.Contains("at least one labelled example", Assert.Throws<InvalidInputException>(() => PairedStatistics.McNemarFromPredictions<int>([], [], [])).Message);
        Assert.Contains("same length", Assert.Throws<InvalidInputException>(() => PairedStatistics.McNemarFromPredictions([1, 2], [1], [1, 2])).Message);
    }

    // --- flip rate -------------------------------------------------------------------------------

    [Fact]
    public void The_flip_rate_test_is_the_exact_binomial_upper_tail()
    {
        var result = PairedStatistics.FlipRateTest(400, 30, maxFlipRate: 0.05);
        var tail = Enumerable.Range(30, 400 - 30 + 1).Sum(k => Binomial.PMF(0.05, 400, k));
        Vectors.AssertClose(tail, result.PValue, "P(X ≥ 30)");
        Assert.Equal(0.075, result.FlipRate);
        Assert.Equal(0.925, result.Agreement);
        Assert.True(result.Exceeds); // 7.5% over 400 pairs is clearly above 5%
    }

    [Fact]
    public void A_few_noisy_pairs_do_not_count_as_disagreement()
    {
        // 2 flips in 20 pairs: agreement 90% < 95%, but that happens by chance 26% of the time.
        var result = PairedStatistics.FlipRateTest(20, 2, maxFlipRate: 0.05);
        Assert.False(result.Exceeds);
        Assert.True(result.PValue > 0.2);
    }

    [Fact]
    public void Flip_rate_edges_and_bad_input()
    {
        Assert.Equal(1.0, PairedStatistics.FlipRateTest(0, 0, maxFlipRate: 0.05).PValue);
        Assert.True(PairedStatistics.FlipRateTest(10, 1, maxFlipRate: 0.0).Exceeds);
        Assert.False(PairedStatistics.FlipRateTest(10, 0, maxFlipRate: 0.0).Exceeds);
        Assert.Equal(1.0, PairedStatistics.FlipRateTest(10, 10, maxFlipRate: 1.0).PValue);
        Assert.Contains("flips (4) cannot exceed pairs (3)", Assert.Throws<InvalidInputException>(() => PairedStatistics.FlipRateTest(3, 4, 0.05)).Message);
        Assert.Contains("max_flip_rate must be in", Assert.Throws<InvalidInputException>(() => PairedStatistics.FlipRateTest(3, 1, 1.5)).Message);
        Assert.Contains("alpha in (0, 1)", Assert.Throws<InvalidInputException>(() => PairedStatistics.FlipRateTest(3, 1, 0.05, alpha: 0)).Message);
    }

    // --- Wilcoxon --------------------------------------------------------------------------------

    [Fact]
    public void Small_samples_use_the_exact_null_distribution()
    {
        double[] small = [1.5, 2.25, -0.5, 3.0, 0.75, 4.0, -1.25];
        var (statistic, p) = PairedStatistics.WilcoxonPairedLatency(small);
        // Enumerate all 2⁷ sign patterns of the ranks 1..7: P(T⁺ ≥ observed) under the null.
        var ranks = small.Select(Math.Abs).ToArray().Ranks(RankDefinition.Average);
        var observed = small.Select((d, i) => d > 0 ? ranks[i] : 0).Sum();
        var atLeast = Enumerable.Range(0, 1 << 7).Count(mask => Enumerable.Range(0, 7).Where(i => (mask & (1 << i)) != 0).Sum(i => ranks[i]) >= observed);
        Assert.Equal(observed, statistic);
        Vectors.AssertClose(atLeast / 128.0, p, "exact p");
    }

    [Fact]
    public void Large_or_tied_samples_use_the_tie_corrected_normal_approximation()
    {
        var rng = Seeded(4);
        var large = Normal.Samples(rng, 0.3, 1.0).Take(256).Select(x => Math.Round(x, 1)).ToArray(); // rounding makes ties
        var nonzero = large.Where(d => d != 0).ToArray();
        var ranks = nonzero.Select(Math.Abs).ToArray().Ranks(RankDefinition.Average);
        var rPlus = nonzero.Select((d, i) => d > 0 ? ranks[i] : 0).Sum();
        double n = nonzero.Length;
        var ties = nonzero.Select(Math.Abs).GroupBy(x => x).Sum(g => g.Count() * ((double)g.Count() * g.Count() - 1));
        var sigma = Math.Sqrt(((n * (n + 1) * ((2 * n) + 1)) - (0.5 * ties)) / 24);
        var (statistic, p) = PairedStatistics.WilcoxonPairedLatency(large);
        Assert.Equal(rPlus, statistic);
        Vectors.AssertClose(1 - Normal.CDF(0, 1, (rPlus - (n * (n + 1) / 4)) / sigma), p, "approx p");
    }

    [Fact]
    public void Wilcoxon_by_hand_and_degenerate_inputs()
    {
        // All five differences positive: W⁺ = 15 and exact p = 1 / 2⁵.
        Assert.Equal(new WilcoxonResult(15.0, 1.0 / 32), PairedStatistics.WilcoxonPairedLatency([1.0, 2.0, 3.0, 4.0, 5.0]));
        Assert.Equal(new WilcoxonResult(0.0, 1.0), PairedStatistics.WilcoxonPairedLatency([]));
        Assert.Equal(new WilcoxonResult(0.0, 1.0), PairedStatistics.WilcoxonPairedLatency([0.0, 0.0]));
        Assert.Contains("finite numbers", Assert.Throws<InvalidInputException>(() => PairedStatistics.WilcoxonPairedLatency([1.0, double.NaN])).Message);
    }

    [Fact]
    public void Wilcoxon_p_is_a_probability_and_a_sign_flip_mirrors_it() =>
        Gen.Double[-50, 50].Select(x => Math.Round(x, 2)).Array[0, 80].Sample(diffs =>
        {
            var (statistic, p) = PairedStatistics.WilcoxonPairedLatency(diffs);
            var mirrored = PairedStatistics.WilcoxonPairedLatency(diffs.Select(d => -d).ToArray());
            Assert.InRange(p, 0.0, 1.0);
            Assert.True(statistic >= 0);
            // One-sided p-values of a statistic and its mirror image cover everything at least once.
            Assert.True(p + mirrored.PValue >= 1.0 - 1e-9);
        }, iter: 200);

    // --- PSI -------------------------------------------------------------------------------------

    [Fact]
    public void Psi_by_hand()
    {
        // Shares 0.5/0.5 vs 0.25/0.75: (0.25 − 0.5)·ln(0.5) + (0.75 − 0.5)·ln(1.5).
        Vectors.AssertClose((-0.25 * Math.Log(0.5)) + (0.25 * Math.Log(1.5)), PairedStatistics.PopulationStabilityIndex([50, 50], [25, 75]), "psi");
        Assert.Equal(0.0, PairedStatistics.PopulationStabilityIndex([10, 20, 30], [20, 40, 60]), 12);
    }

    [Fact]
    public void Psi_is_finite_with_an_empty_bin()
    {
        var psi = PairedStatistics.PopulationStabilityIndex([100, 0], [50, 50]);
        Assert.True(double.IsFinite(psi));
        Assert.True(psi > 1.0);
    }

    [Theory]
    [InlineData(new long[] { 1, 2 }, new long[] { 1, 2, 3 }, "same length")]
    [InlineData(new long[] { 0, 0 }, new long[] { 1, 2 }, "at least one observation")]
    [InlineData(new long[] { 1, -2 }, new long[] { 1, 2 }, "finite numbers ≥ 0")]
    [InlineData(new long[] { 5 }, new long[] { 5 }, "length ≥ 2")]
    public void Psi_refuses_bad_bins(long[] expected, long[] actual, string words) =>
        Assert.Contains(words, Assert.Throws<InvalidInputException>(() => PairedStatistics.PopulationStabilityIndex(expected, actual)).Message);

    private static readonly Gen<long[]> Bins = Gen.Long[0, 1000].Array[WindowRollup.ScoreBins].Where(b => b.Any(x => x > 0));

    [Fact]
    public void Psi_is_non_negative_and_symmetric() =>
        Gen.Select(Bins, Bins).Sample((e, a) =>
        {
            var psi = PairedStatistics.PopulationStabilityIndex(e, a);
            Assert.True(psi >= 0);
            Vectors.AssertClose(psi, PairedStatistics.PopulationStabilityIndex(a, e), "swapped");
            Assert.Equal(0.0, PairedStatistics.PopulationStabilityIndex(e, e), 12);
        }, iter: 300);
}
