using MathNet.Numerics;

namespace Lepton.Shared.Statistics;

/// <summary>
/// Always-valid evidence that a candidate's error rate exceeds production's beyond a tolerance.
/// </summary>
/// <remarks>
/// <para>
/// The statistic is a <em>universal-inference e-process</em> (Wasserman, Ramdas and Balakrishnan,
/// "Universal inference", PNAS 2020): the likelihood of both arms' error counts under a fixed
/// Jeffreys Beta(½, ½) mixture, divided by the largest likelihood any "no regression" hypothesis
/// reaches. For every null point θ₀ the mixture/L(θ₀) ratio is a nonnegative martingale with mean
/// 1 and the statistic never exceeds it, so Ville's inequality gives
/// <c>P(statistic ever ≥ 1/alpha) ≤ alpha</c>: the test may be looked at after every request,
/// window or step and stopped as soon as it crosses, without the inflation a repeated
/// fixed-horizon test suffers (<see cref="CanarySimulation"/> measures both).
/// </para>
/// <para>
/// It is exact (no normal approximation), so it stays honest at the tiny counts where a clear
/// regression must stop a step early, and it needs only the totals (a Bernoulli likelihood does
/// not depend on the order of the requests), which is all a rollup keeps. The price of that
/// guarantee is sample size: a regression just past the tolerance takes a few times the requests
/// of a single fixed-horizon test.
/// </para>
/// <para>
/// "No regression" is <c>p_c ≤ max(ratio · p_p, p_p + delta)</c>: the candidate must exceed both
/// the relative and the absolute tolerance before it counts as worse. The Jeffreys prior is
/// minimax-regret for a Bernoulli rate and is not tuned to any particular error level.
/// </para>
/// </remarks>
public static class ErrorRateEProcess
{
    private const double PriorA = 0.5;
    private const double PriorB = 0.5;

    // 64 halvings pass float precision (2^-52 of the interval): the constrained maximum is exact.
    private const int Bisections = 64;

    private static readonly double LogPriorNorm = SpecialFunctions.BetaLn(PriorA, PriorB);

    /// <summary>
    /// Natural log of the e-process for "candidate error rate regressed", from cumulative totals.
    /// No validation: callers pass counts from a rollup (see <see cref="ErrorRateEvidence.Test(long, long, long, long, double, double, double)"/>).
    /// </summary>
    public static double LogEValue(long candidateErrors, long candidateRequests, long productionErrors, long productionRequests, double maxRatio, double maxDelta)
    {
        var counts = new Counts(candidateErrors, candidateRequests, productionErrors, productionRequests);
        var logMixture = SpecialFunctions.BetaLn(counts.Xc + PriorA, counts.Nc - counts.Xc + PriorB)
            + SpecialFunctions.BetaLn(counts.Xp + PriorA, counts.Np - counts.Xp + PriorB)
            - (2.0 * LogPriorNorm);
        var pcHat = counts.Nc > 0 ? counts.Xc / counts.Nc : 0.0;
        var ppHat = counts.Np > 0 ? counts.Xp / counts.Np : 0.0;
        var inNull = pcHat <= Math.Max(maxRatio * ppHat, ppHat + maxDelta);
        // Outside the null the constrained maximum lies on one of the two boundary lines; most
        // looks in a healthy canary are inside it, so only the others pay for the search.
        var logNull = inNull
            ? LogLikelihood(counts, pcHat, ppHat)
            : Math.Max(MaxOnLine(counts, slope: maxRatio, offset: 0.0), MaxOnLine(counts, slope: 1.0, offset: maxDelta));
        return logMixture - logNull;
    }

    private readonly record struct Counts(double Xc, double Nc, double Xp, double Np);

    private static double LogLikelihood(Counts c, double pc, double pp) =>
        XLogY(c.Xc, pc) + XLog1PY(c.Nc - c.Xc, -pc) + XLogY(c.Xp, pp) + XLog1PY(c.Np - c.Xp, -pp);

    /// <summary>
    /// Largest log-likelihood on the line <c>p_c = slope·q + offset</c>, <c>p_p = q</c>. The
    /// log-likelihood is concave along the line, so its derivative falls monotonically and
    /// bisection on the derivative finds the maximum; the derivative is only evaluated strictly
    /// inside the interval, where no rate is 0 or 1.
    /// </summary>
    private static double MaxOnLine(Counts c, double slope, double offset)
    {
        var hiQ = Math.Min(1.0, (1.0 - offset) / slope);
        double lo = 0.0, hi = hiQ;
        for (var i = 0; i < Bisections; i++)
        {
            var q = 0.5 * (lo + hi);
            var pc = (slope * q) + offset;
            var slopeAtQ = (slope * (Over(c.Xc, pc) - Over(c.Nc - c.Xc, 1.0 - pc))) + (Over(c.Xp, q) - Over(c.Np - c.Xp, 1.0 - q));
            if (slopeAtQ > 0)
            {
                lo = q;
            }
            else
            {
                hi = q;
            }
        }
        var best = LogLikelihood(c, (slope * (0.5 * (lo + hi))) + offset, 0.5 * (lo + hi));
        best = Math.Max(best, LogLikelihood(c, offset, 0.0));
        return Math.Max(best, LogLikelihood(c, (slope * hiQ) + offset, hiQ));
    }

    // A count of 0 contributes nothing to the derivative even where its rate rounds to 0 or 1.
    private static double Over(double num, double den) => num != 0 ? num / den : 0.0;

    // 0·log 0 = 0, so zero-error and zero-request arms need no special case (scipy's xlogy).
    private static double XLogY(double x, double y) => x == 0 ? 0.0 : x * Math.Log(y);

    private static double XLog1PY(double x, double y) => x == 0 ? 0.0 : x * SpecialFunctions.Log1p(y);
}
