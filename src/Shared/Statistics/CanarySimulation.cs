using MathNet.Numerics.Distributions;
using MathNet.Numerics.Random;
using MathNet.Numerics.Statistics;

namespace Lepton.Shared.Statistics;

/// <summary>
/// Cumulative totals at every look of one simulated request stream (index = look).
/// </summary>
public sealed record SimulatedCounts(long[] CandidateErrors, long[] CandidateRequests, long[] ProductionErrors, long[] ProductionRequests)
{
    /// <summary>How many times the stream was looked at.</summary>
    public int Looks => CandidateErrors.Length;
}

/// <summary>What a set of simulated streams did under one procedure.</summary>
/// <param name="Streams">Streams simulated.</param>
/// <param name="RollbackRate">Share of streams rolled back within the horizon: the false-rollback rate where the rates are within the tolerance, the power where they are not.</param>
/// <param name="MedianRequests">Median requests (both versions) until the rollback, over the streams rolled back (NaN if none).</param>
/// <param name="P90Requests">90th percentile of the same.</param>
/// <param name="MedianCandidateRequests">Median requests the candidate had served at the rollback.</param>
public sealed record SimulationOutcome(int Streams, double RollbackRate, double MedianRequests, double P90Requests, double MedianCandidateRequests);

/// <summary>
/// Seeded request streams for measuring the canary's error test: random routing at the candidate's
/// share, Bernoulli errors at each version's rate, the cumulative totals looked at every
/// <c>lookEvery</c> requests and judged by the same <see cref="ErrorRateEProcess"/> the decision
/// runs. The tests use it to show the false-rollback rate under peeking stays below alpha while a
/// naive repeated z-test's does not; a benchmark uses it to measure the requests needed to catch a
/// regression. Deterministic by seed (each stream has its own Mersenne Twister seeded from the
/// master seed in stream order, so results do not depend on how streams are scheduled).
/// </summary>
public static class CanarySimulation
{
    /// <summary>
    /// Simulates <paramref name="streams"/> streams of <paramref name="requests"/> requests each,
    /// looked at every <paramref name="lookEvery"/> requests (<c>requests / lookEvery</c> looks).
    /// </summary>
    public static IReadOnlyList<SimulatedCounts> SimulateCounts(
        double productionRate,
        double candidateRate,
        double candidateShare,
        int streams,
        int requests,
        int lookEvery,
        int seed)
    {
        CheckProbability("production_rate", productionRate);
        CheckProbability("candidate_rate", candidateRate);
        CheckProbability("candidate_share", candidateShare);
        if (streams < 1 || lookEvery < 1 || requests < lookEvery)
        {
            throw new InvalidInputException(
                $"a simulation needs streams ≥ 1, look_every ≥ 1 and requests ≥ look_every, got {streams}, {lookEvery}, {requests}");
        }
        var master = new MersenneTwister(seed, threadSafe: false);
        var seeds = Enumerable.Range(0, streams).Select(_ => master.Next()).ToArray();
        var looks = requests / lookEvery;
        var result = new SimulatedCounts[streams];
        Parallel.For(0, streams, i =>
        {
            var rng = new MersenneTwister(seeds[i], threadSafe: false);
            var stream = new SimulatedCounts(new long[looks], new long[looks], new long[looks], new long[looks]);
            long xc = 0, nc = 0, xp = 0, np = 0;
            for (var look = 0; look < looks; look++)
            {
                var toCandidate = Binomial.Sample(rng, candidateShare, lookEvery);
                var toProduction = lookEvery - toCandidate;
                nc += toCandidate;
                np += toProduction;
                xc += Binomial.Sample(rng, candidateRate, toCandidate);
                xp += Binomial.Sample(rng, productionRate, toProduction);
                (stream.CandidateErrors[look], stream.CandidateRequests[look]) = (xc, nc);
                (stream.ProductionErrors[look], stream.ProductionRequests[look]) = (xp, np);
            }
            result[i] = stream;
        });
        return result;
    }

    /// <summary>The e-process's log e-value at every look of <paramref name="stream"/>.</summary>
    public static double[] LogEValues(SimulatedCounts stream, double maxRatio, double maxDelta)
    {
        var logE = new double[stream.Looks];
        for (var look = 0; look < stream.Looks; look++)
        {
            logE[look] = ErrorRateEProcess.LogEValue(
                stream.CandidateErrors[look], stream.CandidateRequests[look], stream.ProductionErrors[look], stream.ProductionRequests[look], maxRatio, maxDelta);
        }
        return logE;
    }

    /// <summary>Index of the first look whose e-value reaches <c>1/alpha</c>; −1 if none.</summary>
    public static int FirstCrossing(ReadOnlySpan<double> logE, double alpha)
    {
        var threshold = Math.Log(1.0 / alpha);
        for (var look = 0; look < logE.Length; look++)
        {
            if (logE[look] >= threshold)
            {
                return look;
            }
        }
        return -1;
    }

    /// <summary>
    /// The look at which the always-valid test (as <see cref="CanaryAnalysis.DecideCanaryStep"/>
    /// runs it) first rolls the stream back; −1 if it never does. Stops at the first crossing.
    /// </summary>
    public static int FirstRollback(SimulatedCounts stream, double maxRatio, double maxDelta, double alpha)
    {
        var threshold = Math.Log(1.0 / alpha);
        for (var look = 0; look < stream.Looks; look++)
        {
            var logE = ErrorRateEProcess.LogEValue(
                stream.CandidateErrors[look], stream.CandidateRequests[look], stream.ProductionErrors[look], stream.ProductionRequests[look], maxRatio, maxDelta);
            if (logE >= threshold)
            {
                return look;
            }
        }
        return -1;
    }

    /// <summary>
    /// The contrast, used by no decision: the first look at which a fixed-horizon one-sided
    /// two-proportion z-test at <paramref name="alpha"/> (pooled variance, no tolerance) would roll
    /// back, when it is repeated at every look; −1 if never. Repeating it inflates its
    /// false-rollback rate far beyond alpha.
    /// </summary>
    public static int FirstNaiveZTestRollback(SimulatedCounts stream, double alpha)
    {
        var critical = -Normal.InvCDF(0, 1, alpha);
        for (var look = 0; look < stream.Looks; look++)
        {
            double xc = stream.CandidateErrors[look], xp = stream.ProductionErrors[look];
            double nc = Math.Max(stream.CandidateRequests[look], 1), np = Math.Max(stream.ProductionRequests[look], 1);
            var pooled = (xc + xp) / (nc + np);
            var se = Math.Sqrt(pooled * (1 - pooled) * ((1 / nc) + (1 / np)));
            var z = se > 0 ? ((xc / nc) - (xp / np)) / se : 0.0;
            if (z > critical)
            {
                return look;
            }
        }
        return -1;
    }

    /// <summary>
    /// Rollback rate and requests-to-rollback of <paramref name="streams"/>, given the first
    /// rollback look of each (−1 for none) and the look interval they were simulated with.
    /// </summary>
    public static SimulationOutcome Summarize(IReadOnlyList<SimulatedCounts> streams, IReadOnlyList<int> firstRollbackLooks, int lookEvery)
    {
        if (streams.Count != firstRollbackLooks.Count || streams.Count == 0)
        {
            throw new InvalidInputException($"one first-rollback look per stream is needed, got {firstRollbackLooks.Count} for {streams.Count} streams");
        }
        var total = new List<double>();
        var onCandidate = new List<double>();
        for (var i = 0; i < streams.Count; i++)
        {
            var look = firstRollbackLooks[i];
            if (look >= 0)
            {
                total.Add((look + 1.0) * lookEvery);
                onCandidate.Add(streams[i].CandidateRequests[look]);
            }
        }
        if (total.Count == 0)
        {
            return new SimulationOutcome(streams.Count, 0.0, double.NaN, double.NaN, double.NaN);
        }
        return new SimulationOutcome(
            streams.Count,
            (double)total.Count / streams.Count,
            total.Median(),
            total.QuantileCustom(0.9, QuantileDefinition.R7),
            onCandidate.Median());
    }

    private static void CheckProbability(string name, double value)
    {
        if (!(value >= 0 && value <= 1))
        {
            throw new InvalidInputException($"{name} must be a probability in [0, 1], got {value}");
        }
    }
}
