using Lepton.Shared.Metrics;
using MathNet.Numerics.Distributions;
using MathNet.Numerics.Random;

namespace Lepton.Shared.Tests.Statistics;

/// <summary>Rollups and histograms for the statistics tests, from explicit latencies.</summary>
internal static class Rollups
{
    public static long[] BucketsOf(IEnumerable<double> latenciesMs)
    {
        var counts = new long[LatencyHistogram.Count];
        foreach (var ms in latenciesMs)
        {
            counts[LatencyHistogram.IndexOf(ms)]++;
        }
        return counts;
    }

    /// <summary>A version's totals: every request at 4 ms unless latencies are given; rows = requests.</summary>
    public static WindowRollup Rollup(string version, long requests, long errors = 0, long? routed = null, IEnumerable<double>? latenciesMs = null)
    {
        var latencies = latenciesMs?.ToArray() is { Length: > 0 } given ? given : Enumerable.Repeat(4.0, (int)requests).ToArray();
        return WindowRollup.Empty("digits", version, 0, 300) with
        {
            Requests = requests,
            RoutedRequests = routed ?? requests,
            Errors = errors,
            Rows = requests,
            LatencyBuckets = BucketsOf(latencies),
            LatencySumMs = latencies.Sum(),
            ComputeMs = 0.5 * requests,
        };
    }

    /// <summary><paramref name="n"/> log-normal latencies (ms) from a seeded generator.</summary>
    public static double[] LogNormalMs(Random rng, double mu, double sigma, int n) => LogNormal.Samples(rng, mu, sigma).Take(n).ToArray();

    public static Random Seeded(int seed) => new MersenneTwister(seed, threadSafe: false);
}
