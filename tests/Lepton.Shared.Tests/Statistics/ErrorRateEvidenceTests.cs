using CsCheck;
using Lepton.Shared.Statistics;
using MathNet.Numerics;
using MathNet.Numerics.Distributions;

namespace Lepton.Shared.Tests.Statistics;

public sealed class ErrorRateEvidenceTests
{
    [Fact]
    public void Rates_inside_the_tolerance_give_no_evidence()
    {
        // 1.2% vs 1%: above production, but under max(1.5·1%, 1% + 0.5%) = 1.5%.
        var result = ErrorRateEvidence.Test(120, 10_000, 100, 10_000, alpha: 0.05, maxRatio: 1.5, maxDelta: 0.005);
        Assert.Equal(1.0, result.PValue);
        Assert.False(result.Regression);
        Assert.Equal(0.015, result.ToleratedRate, 12);
        Assert.Equal(0.012, result.CandidateRate);
        Assert.Equal(0.01, result.ProductionRate);
    }

    [Fact]
    public void A_clear_regression_is_caught_with_few_samples()
    {
        // 30/150 = 20% against 0.2% in production: a step should stop long before 200 requests.
        var result = ErrorRateEvidence.Test(30, 150, 20, 10_000, alpha: 0.05, maxRatio: 1.5, maxDelta: 0.005);
        Assert.True(result.Regression);
        Assert.True(result.PValue < 1e-6, $"p = {result.PValue}");
        Assert.Equal(Math.Exp(-result.LogEValue), result.PValue);
    }

    [Fact]
    public void The_absolute_tolerance_spares_tiny_rates()
    {
        // 0.3% vs 0%: infinitely worse by ratio, but inside the 0.5% absolute tolerance.
        Assert.False(ErrorRateEvidence.Test(60, 20_000, 0, 20_000, alpha: 0.05, maxRatio: 1.5, maxDelta: 0.005).Regression);
        Assert.True(ErrorRateEvidence.Test(60, 20_000, 0, 20_000, alpha: 0.05, maxRatio: 1.5, maxDelta: 0.0).Regression);
    }

    [Fact]
    public void Without_production_data_no_regression_can_be_shown() =>
        // Even 100% failures: with no baseline the null "production fails as often" cannot be refuted.
        Assert.False(ErrorRateEvidence.Test(500, 500, 0, 0, alpha: 0.05, maxRatio: 1.5, maxDelta: 0.005).Regression);

    [Theory]
    [InlineData(12, 100, 3, 300, 1.5, 0.005)]
    [InlineData(9, 40, 10, 200, 1.0, 0.0)]
    [InlineData(5, 50, 1, 60, 2.0, 0.02)]
    public void The_e_value_is_the_mixture_over_a_brute_force_null_maximum(int xc, int nc, int xp, int np, double ratio, double delta)
    {
        var expected = LogJeffreysMarginal(xc, nc) + LogJeffreysMarginal(xp, np) - BruteForceNullMaximum(xc, nc, xp, np, ratio, delta);
        var got = ErrorRateEProcess.LogEValue(xc, nc, xp, np, ratio, delta);
        // The grid's maximum can only fall short of the true one, so ours may be a hair lower.
        Assert.InRange(got, expected - 2e-3, expected + 1e-9);
    }

    [Theory]
    [InlineData(5, 4, 0, 10, "errors cannot exceed requests")]
    [InlineData(0, 10, 11, 10, "errors cannot exceed requests")]
    [InlineData(-1, 4, 0, 10, "candidate errors must be a whole number ≥ 0, got -1")]
    [InlineData(1, 4, 0, -2, "production requests must be a whole number ≥ 0")]
    public void Impossible_counts_are_refused(long xc, long nc, long xp, long np, string words)
    {
        var error = Assert.Throws<InvalidInputException>(() => ErrorRateEvidence.Test(xc, nc, xp, np, alpha: 0.05, maxRatio: 1.5, maxDelta: 0.005));
        Assert.Contains(words, error.Message);
    }

    [Theory]
    [InlineData(5.0, 1.5, 0.005, "thresholds.alpha")]
    [InlineData(0.05, 0.9, 0.005, "thresholds.max_error_rate_ratio")]
    [InlineData(0.05, 1.5, -0.1, "thresholds.max_error_rate_delta")]
    [InlineData(0.05, double.NaN, 0.005, "thresholds.max_error_rate_ratio must be a finite number")]
    public void A_bad_level_or_tolerance_is_a_policy_error(double alpha, double ratio, double delta, string words) =>
        Assert.Contains(words, Assert.Throws<InvalidPolicyException>(() => ErrorRateEvidence.Test(1, 10, 1, 10, alpha, ratio, delta)).Message);

    private static readonly Gen<(long Xc, long Nc, long Xp, long Np)> CountPairs =
        Gen.Select(Gen.Long[1, 3000], Gen.Long[1, 3000])
            .SelectMany((nc, np) => Gen.Select(Gen.Long[0, nc], Gen.Long[0, np]).Select((xc, xp) => (xc, nc, xp, np)));

    private static readonly (double Ratio, double Delta)[] ToleranceChoices = [(1.0, 0.0), (1.5, 0.005), (2.0, 0.01), (3.0, 0.05)];

    private static readonly Gen<(double Ratio, double Delta)> Tolerances = Gen.Int[0, ToleranceChoices.Length - 1].Select(i => ToleranceChoices[i]);

    [Fact]
    public void The_p_value_is_a_probability_and_monotone_in_the_error_counts() =>
        Gen.Select(CountPairs, Tolerances).Sample((c, t) =>
        {
            double P(long xc, long xp) => ErrorRateEvidence.Test(xc, c.Nc, xp, c.Np, 0.05, t.Ratio, t.Delta).PValue;
            var here = P(c.Xc, c.Xp);
            Assert.InRange(here, 0.0, 1.0);
            // Monotone below the degenerate edge where every candidate request failed: there the
            // null explains p_c = 1 through p_p = 1/ratio, and the production count moves that point.
            if (c.Xc + 1 < c.Nc)
            {
                // More candidate errors never weaken the evidence...
                Assert.True(P(c.Xc + 1, c.Xp) <= here + 1e-12);
                // ...and more production errors never strengthen it.
                if (c.Xp < c.Np)
                {
                    Assert.True(P(c.Xc, c.Xp + 1) >= here - 1e-12);
                }
            }
        }, iter: 200);

    [Fact]
    public void A_looser_tolerance_never_strengthens_the_evidence() =>
        CountPairs.Sample(c =>
            ErrorRateEvidence.Test(c.Xc, c.Nc, c.Xp, c.Np, 0.05, 1.5, 0.005).PValue
            >= ErrorRateEvidence.Test(c.Xc, c.Nc, c.Xp, c.Np, 0.05, 1.2, 0.001).PValue - 1e-12, iter: 200);

    [Fact]
    public void No_null_point_explains_the_data_better_than_the_computed_maximum() =>
        // Any point of the null bounds the e-value from above; the search must not miss a better one.
        Gen.Select(CountPairs, Tolerances, Gen.Double[0, 1], Gen.Double[0, 1]).Sample((c, t, u, v) =>
        {
            double xc = c.Xc, nc = c.Nc, xp = c.Xp, np = c.Np;
            if (xc / nc <= Math.Max(t.Ratio * xp / np, (xp / np) + t.Delta))
            {
                return; // only data outside the null exercise the constrained search
            }
            // A null point near the data, on or just inside the boundary, where the maximum usually is.
            var pp = Math.Clamp((xp / np) + ((u - 0.5) * 0.04), 0.0, 1.0);
            var pc = (1.0 - (0.01 * v)) * Math.Min(1.0, Math.Max(t.Ratio * pp, pp + t.Delta));
            var logMixture = SpecialFunctions.BetaLn(xc + 0.5, nc - xc + 0.5) + SpecialFunctions.BetaLn(xp + 0.5, np - xp + 0.5)
                - (2 * SpecialFunctions.BetaLn(0.5, 0.5));
            var logLikelihood = LogLikelihood(xc, nc, xp, np, pc, pp);
            Assert.True(ErrorRateEProcess.LogEValue(c.Xc, c.Nc, c.Xp, c.Np, t.Ratio, t.Delta) <= logMixture - logLikelihood + 1e-9);
        }, iter: 300);

    // Direct numerical integral of the Beta(1/2, 1/2) mixture, independent of BetaLn.
    private static double LogJeffreysMarginal(int x, int n)
    {
        const int Points = 400_001;
        const double Lo = 1e-9, Hi = 1 - 1e-9;
        var h = (Hi - Lo) / (Points - 1);
        double sum = 0;
        for (var i = 0; i < Points; i++)
        {
            var p = Lo + (i * h);
            var density = Beta.PDF(0.5, 0.5, p) * Math.Exp(LogLikelihood(x, n, 0, 0, p, 0.5));
            sum += (i == 0 || i == Points - 1 ? 0.5 : 1.0) * density;
        }
        return Math.Log(sum * h);
    }

    private static double BruteForceNullMaximum(int xc, int nc, int xp, int np, double ratio, double delta)
    {
        var best = double.NegativeInfinity;
        for (var i = 0; i <= 2000; i++)
        {
            var pc = i / 2000.0;
            for (var j = 0; j <= 2000; j++)
            {
                var pp = j / 2000.0;
                if (pc <= Math.Max(ratio * pp, pp + delta) + 1e-12)
                {
                    best = Math.Max(best, LogLikelihood(xc, nc, xp, np, pc, pp));
                }
            }
        }
        return best;
    }

    private static double LogLikelihood(double xc, double nc, double xp, double np, double pc, double pp) =>
        Term(xc, pc) + Term(nc - xc, 1 - pc) + Term(xp, pp) + Term(np - xp, 1 - pp);

    private static double Term(double count, double p) => count == 0 ? 0.0 : count * Math.Log(p);
}
