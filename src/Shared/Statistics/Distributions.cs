using MathNet.Numerics;
using MathNet.Numerics.Distributions;

namespace Lepton.Shared.Statistics;

/// <summary>
/// Tail probabilities in the forms that stay accurate where the canary needs them: far in the tail
/// (a clear regression has p around 1e-70, and <c>1 − CDF</c> would round that to 0) and at small
/// counts. Each mirrors the scipy routine the reference called, so the test vectors match.
/// </summary>
internal static class Distributions
{
    private const double Sqrt1Over2 = 0.70710678118654752440;

    /// <summary>Standard normal <c>P(Z ≤ a)</c>, as cephes' <c>ndtr</c> (scipy's <c>norm.cdf</c>).</summary>
    public static double NormalCdf(double a)
    {
        if (double.IsNaN(a))
        {
            return double.NaN;
        }
        var x = a * Sqrt1Over2;
        var z = Math.Abs(x);
        if (z < Sqrt1Over2)
        {
            return 0.5 + (0.5 * SpecialFunctions.Erf(x));
        }
        // erfc keeps full relative precision in the tail, where 1 − erf would cancel to 0.
        var y = 0.5 * SpecialFunctions.Erfc(z);
        return x > 0 ? 1.0 - y : y;
    }

    /// <summary>Standard normal survival function <c>P(Z &gt; z)</c> (scipy's <c>norm.sf</c>).</summary>
    public static double NormalSf(double z) => NormalCdf(-z);

    /// <summary>Chi-square survival function with one degree of freedom: <c>erfc(√(x/2))</c>.</summary>
    public static double ChiSquare1Sf(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }
        return x <= 0 ? 1.0 : SpecialFunctions.Erfc(Math.Sqrt(0.5 * x));
    }

    /// <summary>Binomial <c>P(X ≤ k)</c> through the regularized incomplete beta function.</summary>
    public static double BinomialCdf(long k, long n, double p)
    {
        if (k < 0)
        {
            return 0.0;
        }
        if (k >= n)
        {
            return 1.0;
        }
        return SpecialFunctions.BetaRegularized(n - k, k + 1, 1.0 - p);
    }

    /// <summary>Binomial <c>P(X &gt; k)</c> through the regularized incomplete beta function.</summary>
    public static double BinomialSf(long k, long n, double p)
    {
        if (k < 0)
        {
            return 1.0;
        }
        if (k >= n)
        {
            return 0.0;
        }
        return SpecialFunctions.BetaRegularized(k + 1, n - k, p);
    }

    /// <summary>Binomial <c>P(X = k)</c>.</summary>
    public static double BinomialPmf(long k, long n, double p) => Binomial.PMF(p, checked((int)n), checked((int)k));
}
