using System.Diagnostics;
using System.Globalization;
using Lepton.Shared.Policies;
using Lepton.Shared.Statistics;

namespace Lepton.Bench;

/// <summary>
/// Canary power: the false-rollback rate under peeking, and the requests needed to catch an error
/// regression, with the very code the canary decision runs (<see cref="CanarySimulation"/> over
/// the always-valid e-process), against a naive fixed-horizon z-test peeked just as often.
/// Seeded request streams (random routing at the canary weight, Bernoulli errors), a look every
/// <c>look_every</c> requests.
/// </summary>
internal static class CanaryPower
{
    private sealed record Scenario(string Label, double ProductionRate, double CandidateRate, double CandidateShare, int Requests, int LookEvery, double? MaxRatio = null, double? MaxDelta = null, bool Naive = false);

    private static readonly Scenario[] Scenarios =
    [
        new("equal 1% vs 1%, zero tolerance", 0.01, 0.01, 0.5, 20_000, 100, 1.0, 0.0),
        new("equal 1% vs 1%, default tolerance", 0.01, 0.01, 0.5, 20_000, 100),
        new("1.5% vs 1% (at the tolerance)", 0.01, 0.015, 0.5, 20_000, 100),
        new("equal 1% vs 1%, naive z-test", 0.01, 0.01, 0.5, 20_000, 100, Naive: true),
        new("2x: 2% vs 1%, 50% split", 0.01, 0.02, 0.5, 400_000, 500),
        new("2x: 2% vs 1%, 50%, zero tolerance", 0.01, 0.02, 0.5, 100_000, 100, 1.0, 0.0),
        new("4x: 4% vs 1%, 10% split", 0.01, 0.04, 0.1, 100_000, 100),
        new("25x: 5% vs 0.2%, 1% split", 0.002, 0.05, 0.01, 200_000, 100),
    ];

    public static int Run(string[] args)
    {
        var quick = args.Contains("--quick");
        var (nullStreams, powerStreams) = quick ? (1000, 100) : (10_000, 1000);
        var defaults = new CanaryThresholds();
        Console.WriteLine($"canary power: alpha {defaults.Alpha}, default tolerance max({defaults.MaxErrorRateRatio}x, +{defaults.MaxErrorRateDelta}); "
            + $"streams: {nullStreams} (equal rates), {powerStreams} (regressions)");
        Console.WriteLine($"{"scenario",-38} {"looks",9} {"rollback",9} {"median req",11} {"p90 req",9} {"on cand.",9}");
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Scenarios.Length; i++)
        {
            var s = Scenarios[i];
            var equal = s.CandidateRate == s.ProductionRate;
            var streams = CanarySimulation.SimulateCounts(s.ProductionRate, s.CandidateRate, s.CandidateShare, equal ? nullStreams : powerStreams, s.Requests, s.LookEvery, seed: 1000 + i);
            var ratio = s.MaxRatio ?? defaults.MaxErrorRateRatio;
            var delta = s.MaxDelta ?? defaults.MaxErrorRateDelta;
            var first = streams.Select(stream => s.Naive
                ? CanarySimulation.FirstNaiveZTestRollback(stream, defaults.Alpha)
                : CanarySimulation.FirstRollback(stream, ratio, delta, defaults.Alpha)).ToList();
            var outcome = CanarySimulation.Summarize(streams, first, s.LookEvery);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{s.Label,-38} {$"{s.Requests / s.LookEvery}x{s.LookEvery}",9} {outcome.RollbackRate,9:F4} {Show(outcome.MedianRequests),11} {Show(outcome.P90Requests),9} {Show(outcome.MedianCandidateRequests),9}"));
        }
        Console.WriteLine($"rollback = share of streams rolled back within the horizon (the false-rollback rate where the rates are equal; compare with alpha); {clock.Elapsed.TotalSeconds:0} s");
        return 0;
    }

    private static string Show(double value) => double.IsNaN(value) ? "—" : value.ToString("0", CultureInfo.InvariantCulture);
}
