using Lepton.Shared.Statistics;

namespace Lepton.Shared.Tests.Statistics;

/// <summary>
/// The tail probabilities behind every p-value, against scipy (1.10) outputs, far into the tail
/// where <c>1 − CDF</c> would have rounded to 0.
/// </summary>
public sealed class DistributionsTests
{
    [Theory]
    [InlineData(-3.0, 0.9986501019683699)]
    [InlineData(0.3, 0.3820885778110474)]
    [InlineData(5.0, 2.866515718791933e-07)]
    [InlineData(10.0, 7.61985302416047e-24)]
    [InlineData(20.0, 2.7536241186061556e-89)]
    [InlineData(30.0, 4.906713927147908e-198)]
    [InlineData(37.0, 5.7255712225239266e-300)]
    public void Normal_survival_keeps_its_relative_precision_in_the_tail(double z, double expected) =>
        Vectors.AssertClose(expected, Distributions.NormalSf(z), $"norm.sf({z})");

    [Theory]
    [InlineData(0.5, 0.47950012218695337)]
    [InlineData(10.0, 0.001565402258002549)]
    [InlineData(100.0, 1.5239706048320995e-23)]
    [InlineData(400.0, 5.507248237212379e-89)]
    [InlineData(1000.0, 1.7958327848007363e-219)]
    public void Chi_square_survival_with_one_degree_of_freedom(double x, double expected) =>
        Vectors.AssertClose(expected, Distributions.ChiSquare1Sf(x), $"chi2.sf({x}, 1)");

    [Theory]
    [InlineData(0, 10, 0.3, 0.028247524900000005, 0.9717524751, 0.0388396033)]
    [InlineData(3, 100, 0.05, 0.2578386591160152, 0.7421613408839848, 0.4918246751011835)]
    [InlineData(40, 200, 0.1, 0.9999927782979444, 7.221702055561456e-06, 2.5423728692234954e-05)]
    [InlineData(1, 41, 0.5, 1.9099388737231493e-11, 0.9999999999809006, 3.8198777474462986e-11)]
    [InlineData(900, 1000, 0.5, 1.0, 7.427818096436323e-163, 1.3403435580012363e-161)]
    [InlineData(12, 30, 0.77, 1.4927447189390491e-05, 0.9999850725528107, 1.4927447189390491e-05)]
    public void Binomial_tails_and_the_two_sided_test(int k, int n, double p, double cdf, double sf, double twoSided)
    {
        Vectors.AssertClose(cdf, Distributions.BinomialCdf(k, n, p), "binom.cdf");
        Vectors.AssertClose(sf, Distributions.BinomialSf(k, n, p), "binom.sf");
        Vectors.AssertClose(twoSided, BinomialTest.TwoSided(k, n, p), "binomtest two-sided");
        Vectors.AssertClose(sf + Distributions.BinomialPmf(k, n, p), BinomialTest.Greater(k, n, p), "binomtest greater");
    }

    [Theory]
    [InlineData(-1, 10, 0.5, "successes must be in 0..10")]
    [InlineData(11, 10, 0.5, "successes must be in 0..10")]
    [InlineData(0, 0, 0.5, "a binomial test needs 1..")]
    [InlineData(1, 10, 1.5, "the success probability must be in [0, 1]")]
    public void Binomial_tests_refuse_impossible_arguments(long k, long n, double p, string words) =>
        Assert.Contains(words, Assert.Throws<InvalidInputException>(() => BinomialTest.TwoSided(k, n, p)).Message);
}
