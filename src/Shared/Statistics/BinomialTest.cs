namespace Lepton.Shared.Statistics;

/// <summary>
/// Exact binomial tests of "the success probability is <c>p</c>", as
/// <c>scipy.stats.binomtest</c> computes them. Exact because the canary judges small counts (a
/// handful of flips among a few dozen shadow pairs, a few discordant labels) where a normal
/// approximation would be off.
/// </summary>
public static class BinomialTest
{
    /// <summary>The most trials these tests accept (the binomial PMF is evaluated with 32-bit counts).</summary>
    public const long MaxTrials = int.MaxValue;

    /// <summary>One-sided p-value of <paramref name="successes"/> of <paramref name="trials"/> against "probability ≤ <paramref name="p"/>": <c>P(X ≥ k)</c>.</summary>
    public static double Greater(long successes, long trials, double p)
    {
        Check(successes, trials, p);
        return Distributions.BinomialSf(successes - 1, trials, p);
    }

    /// <summary>
    /// Two-sided p-value: the probability of every outcome no more likely than the one observed
    /// (with scipy's relative tolerance of 1e-7, so outcomes equally likely up to rounding count).
    /// The other tail is found by binary search on the PMF from the mode outwards, as scipy does.
    /// </summary>
    public static double TwoSided(long successes, long trials, double p)
    {
        Check(successes, trials, p);
        long k = successes, n = trials;
        var d = Distributions.BinomialPmf(k, n, p);
        const double RelativeError = 1 + 1e-7;
        var mode = p * n;
        double pValue;
        if (k == mode)
        {
            pValue = 1.0;
        }
        else if (k < mode)
        {
            var ix = SearchPmf(x => -Distributions.BinomialPmf(x, n, p), -d * RelativeError, (long)Math.Ceiling(mode), n);
            // Outcomes from the mode up to n that are no more likely than k; ix itself when equal.
            var y = n - ix + (d * RelativeError == Distributions.BinomialPmf(ix, n, p) ? 1 : 0);
            pValue = Distributions.BinomialCdf(k, n, p) + Distributions.BinomialSf(n - y, n, p);
        }
        else
        {
            var ix = SearchPmf(x => Distributions.BinomialPmf(x, n, p), d * RelativeError, 0, (long)Math.Floor(mode));
            var y = ix + 1;
            pValue = Distributions.BinomialCdf(y - 1, n, p) + Distributions.BinomialSf(k - 1, n, p);
        }
        return Math.Min(1.0, pValue);
    }

    /// <summary>The index <c>i</c> in <c>[lo, hi]</c> with <c>a(i) ≤ d &lt; a(i + 1)</c>, for <c>a</c> ascending there.</summary>
    private static long SearchPmf(Func<long, double> a, double d, long lo, long hi)
    {
        while (lo < hi)
        {
            var mid = lo + ((hi - lo) / 2);
            var value = a(mid);
            if (value < d)
            {
                lo = mid + 1;
            }
            else if (value > d)
            {
                hi = mid - 1;
            }
            else
            {
                return mid;
            }
        }
        return a(lo) <= d ? lo : lo - 1;
    }

    private static void Check(long successes, long trials, double p)
    {
        if (trials < 1 || trials > MaxTrials)
        {
            throw new InvalidInputException($"a binomial test needs 1..{MaxTrials} trials, got {trials}");
        }
        if (successes < 0 || successes > trials)
        {
            throw new InvalidInputException($"successes must be in 0..{trials} (the number of trials), got {successes}");
        }
        if (!(p >= 0 && p <= 1))
        {
            throw new InvalidInputException($"the success probability must be in [0, 1], got {p}");
        }
    }
}
