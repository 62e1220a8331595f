using CsCheck;
using Lepton.Shared.Statistics;
using MathNet.Numerics.Distributions;

namespace Lepton.Shared.Tests.Statistics;

public sealed class SampleRatioMismatchTests
{
    [Fact]
    public void Chi_square_by_hand()
    {
        var (chi2, p) = SampleRatioMismatch.Test(1080, 8920, 1000);
        // 80²/1000 + 80²/9000 = 6.4 + 0.7111…
        Vectors.AssertClose(6.4 + (6400.0 / 9000), chi2, "chi2");
        Vectors.AssertClose(1 - ChiSquared.CDF(1, chi2), p, "p");
    }

    [Fact]
    public void Edges_at_no_traffic_and_the_exact_zero_and_full_weights()
    {
        Assert.Equal(new SampleRatioResult(0.0, 1.0), SampleRatioMismatch.Test(0, 0, 2500));
        Assert.Equal(new SampleRatioResult(0.0, 1.0), SampleRatioMismatch.Test(0, 500, 0));
        Assert.Equal(new SampleRatioResult(double.PositiveInfinity, 0.0), SampleRatioMismatch.Test(3, 500, 0));
        Assert.Equal(new SampleRatioResult(0.0, 1.0), SampleRatioMismatch.Test(500, 0, 10_000));
        Assert.Equal(new SampleRatioResult(double.PositiveInfinity, 0.0), SampleRatioMismatch.Test(500, 1, 10_000));
    }

    [Theory]
    [InlineData(1, 1, 10_001, "weight_bp must be a whole number of basis points in 0..10000, got 10001")]
    [InlineData(1, 1, -5, "weight_bp must be a whole number of basis points")]
    [InlineData(-1, 1, 100, "candidate routed requests must be a whole number ≥ 0")]
    [InlineData(1, -1, 100, "production routed requests must be a whole number ≥ 0")]
    public void Bad_input_is_named(long candidate, long production, int weightBp, string words) =>
        Assert.Contains(words, Assert.Throws<InvalidInputException>(() => SampleRatioMismatch.Test(candidate, production, weightBp)).Message);

    [Fact]
    public void Srm_is_symmetric_and_a_probability() =>
        Gen.Select(Gen.Long[0, 3000], Gen.Long[0, 3000], Gen.Int[1, 9999]).Sample((c, p, w) =>
        {
            var result = SampleRatioMismatch.Test(c, p, w);
            var swapped = SampleRatioMismatch.Test(p, c, 10_000 - w);
            Assert.InRange(result.PValue, 0.0, 1.0);
            Assert.True(result.Chi2 >= 0);
            Vectors.AssertClose(result.Chi2, swapped.Chi2, "chi2 swapped");
            Vectors.AssertClose(result.PValue, swapped.PValue, "p swapped");
        }, iter: 300);
}
