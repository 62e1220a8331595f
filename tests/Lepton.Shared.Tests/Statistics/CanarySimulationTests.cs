using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;
using Lepton.Shared.Statistics;
using MathNet.Numerics.Distributions;
using MathNet.Numerics.Statistics;
using static Lepton.Shared.Tests.Statistics.Rollups;

namespace Lepton.Shared.Tests.Statistics;

/// <summary>
/// Seeded streams through the same e-process code the canary decision runs: the false-rollback
/// rate under peeking, and the requests needed to catch a doubled error rate. The Monte-Carlo
/// slack is three standard errors of a rate at alpha. A naive fixed-horizon z-test peeked at as
/// often shows that the simulation does detect a procedure whose false-rollback rate is inflated.
/// </summary>
public sealed class CanarySimulationTests
{
    private const double Alpha = 0.05;
    private const int Streams = 400;
    private const int LookEvery = 100; // the orchestrator peeks at the totals every 100 requests
    private const int Peeks = 100;

    private static double Slack(int n, double rate = Alpha) => 3.0 * Math.Sqrt(rate * (1 - rate) / n);

    // The figures docs/notes/statistics.md quotes (shown in the test's output).
    private static void Report(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    private static IReadOnlyList<SimulatedCounts> Healthy(double candidateRate) => CanarySimulation.SimulateCounts(
        productionRate: 0.01, candidateRate: candidateRate, candidateShare: 0.5, streams: Streams, requests: Peeks * LookEvery, lookEvery: LookEvery, seed: 1);

    [Theory]
    // No tolerance at all and equal rates: the hardest case for "equal is not worse".
    [InlineData(0.01, 1.0, 0.0)]
    // Default tolerances, candidate exactly at the tolerated boundary (least favourable).
    [InlineData(0.015, 1.5, 0.005)]
    public void The_false_rollback_rate_under_100_peeks_stays_below_alpha(double candidateRate, double ratio, double delta)
    {
        var streams = Healthy(candidateRate);
        var firsts = streams.Select(s => CanarySimulation.FirstRollback(s, ratio, delta, Alpha)).ToArray();
        var outcome = CanarySimulation.Summarize(streams, firsts, LookEvery);
        Assert.Equal(Peeks, streams[0].Looks);
        Report($"ratio {ratio}, delta {delta}, candidate {candidateRate:P1} vs 1%: false-rollback rate {outcome.RollbackRate:F4} over {Peeks} looks of {Streams} streams");
        Assert.True(outcome.RollbackRate <= Alpha + Slack(Streams), $"false-rollback rate {outcome.RollbackRate:F4} over {Peeks} looks");
        // The early-stopping search and the full e-value path agree on where each stream crosses.
        Assert.Equal(firsts, streams.Select(s => CanarySimulation.FirstCrossing(CanarySimulation.LogEValues(s, ratio, delta), Alpha)));
    }

    [Fact]
    public void A_naive_repeated_z_test_is_inflated_so_the_simulation_can_tell()
    {
        var streams = Healthy(0.01);
        var naive = CanarySimulation.Summarize(streams, streams.Select(s => CanarySimulation.FirstNaiveZTestRollback(s, Alpha)).ToArray(), LookEvery);
        var valid = CanarySimulation.Summarize(streams, streams.Select(s => CanarySimulation.FirstRollback(s, 1.0, 0.0, Alpha)).ToArray(), LookEvery);
        Report($"equal 1% rates, {Peeks} looks of {Streams} streams: naive z-test {naive.RollbackRate:F3}, always-valid {valid.RollbackRate:F4}");
        Assert.True(naive.RollbackRate > Alpha + Slack(Streams), $"naive z-test peeked {Peeks} times: false-rollback rate {naive.RollbackRate:F3}");
        Assert.True(valid.RollbackRate <= Alpha, $"always-valid test on the same streams: {valid.RollbackRate:F3}");
    }

    [Fact]
    public void A_doubled_error_rate_is_caught_and_zero_tolerance_catches_it_sooner()
    {
        const int Few = 100, Every = 500;
        var streams = CanarySimulation.SimulateCounts(
            productionRate: 0.01, candidateRate: 0.02, candidateShare: 0.5, streams: Few, requests: 300_000, lookEvery: Every, seed: 2);
        var thresholds = new CanaryThresholds();
        var tolerant = CanarySimulation.Summarize(
            streams, streams.Select(s => CanarySimulation.FirstRollback(s, thresholds.MaxErrorRateRatio, thresholds.MaxErrorRateDelta, thresholds.Alpha)).ToArray(), Every);
        Assert.True(tolerant.RollbackRate >= 0.95, $"caught {tolerant.RollbackRate:P0}");
        Report($"1% -> 2% at a 50% split, default tolerance: caught {tolerant.RollbackRate:P0}, median {tolerant.MedianRequests} requests "
            + $"({tolerant.MedianCandidateRequests} on the candidate), p90 {tolerant.P90Requests}");
        // Zero tolerance catches the same regression far sooner: the tolerance is what costs time.
        var strict = CanarySimulation.Summarize(streams, streams.Select(s => CanarySimulation.FirstRollback(s, 1.0, 0.0, Alpha)).ToArray(), Every);
        Report($"same streams, zero tolerance: caught {strict.RollbackRate:P0}, median {strict.MedianRequests} requests");
        Assert.True(strict.MedianRequests < tolerant.MedianRequests, $"strict median {strict.MedianRequests} vs {tolerant.MedianRequests}");
        Assert.InRange(tolerant.MedianCandidateRequests, 0.3 * tolerant.MedianRequests, 0.7 * tolerant.MedianRequests);
    }

    [Fact]
    public void Simulations_are_deterministic_by_seed()
    {
        IReadOnlyList<SimulatedCounts> Run(int seed) => CanarySimulation.SimulateCounts(0.01, 0.02, 0.3, streams: 20, requests: 2000, lookEvery: 100, seed: seed);
        var (a, b, c) = (Run(7), Run(7), Run(8));
        Assert.Equal(a.SelectMany(s => s.CandidateErrors.Concat(s.CandidateRequests).Concat(s.ProductionErrors)), b.SelectMany(s => s.CandidateErrors.Concat(s.CandidateRequests).Concat(s.ProductionErrors)));
        Assert.NotEqual(a.SelectMany(s => s.CandidateErrors), c.SelectMany(s => s.CandidateErrors));
        foreach (var s in a)
        {
            // Cumulative totals: every look adds exactly look_every requests, errors never exceed requests.
            for (var look = 0; look < s.Looks; look++)
            {
                Assert.Equal((look + 1) * 100L, s.CandidateRequests[look] + s.ProductionRequests[look]);
                Assert.InRange(s.CandidateErrors[look], 0, s.CandidateRequests[look]);
                Assert.InRange(s.ProductionErrors[look], 0, s.ProductionRequests[look]);
            }
        }
    }

    [Fact]
    public void Summaries_count_rollbacks_and_requests_to_them()
    {
        var streams = CanarySimulation.SimulateCounts(0.0, 1.0, 0.5, streams: 4, requests: 400, lookEvery: 100, seed: 3);
        var outcome = CanarySimulation.Summarize(streams, [0, 1, -1, 3], 100);
        Assert.Equal(0.75, outcome.RollbackRate);
        Assert.Equal(200, outcome.MedianRequests); // 100, 200, 400
        Assert.Equal(new[] { 100.0, 200.0, 400.0 }.QuantileCustom(0.9, QuantileDefinition.R7), outcome.P90Requests);
        Assert.True(double.IsNaN(CanarySimulation.Summarize(streams, [-1, -1, -1, -1], 100).MedianRequests));
        Assert.Contains("look_every", Assert.Throws<InvalidInputException>(() => CanarySimulation.SimulateCounts(0.01, 0.01, 0.5, 1, 50, 100, 1)).Message);
        Assert.Contains("candidate_share", Assert.Throws<InvalidInputException>(() => CanarySimulation.SimulateCounts(0.01, 0.01, 1.5, 1, 100, 100, 1)).Message);
    }

    [Fact]
    public void Decide_canary_step_end_to_end_on_healthy_and_regressed_streams()
    {
        var rng = Seeded(3);
        const int StreamCount = 40, Looks = 30; // 3,000 requests per stream at a 25% weight
        var healthy = Enumerable.Range(0, StreamCount).Select(_ => StreamDecisions(rng, 0.01, Looks, 2500)).ToList();
        var rollbacks = healthy.Count(v => v.Contains(Verdict.Rollback)) / (double)StreamCount;
        var invalid = healthy.Count(v => v.Contains(Verdict.Invalid)) / (double)StreamCount;
        Assert.True(rollbacks <= Alpha + Slack(StreamCount), $"healthy streams rolled back: {rollbacks:F3}");
        // 30 SRM looks at 0.001 each bound the false-invalid rate by 3% (a union bound).
        Assert.True(invalid <= 0.03 + Slack(StreamCount, 0.03), $"healthy streams invalid: {invalid:F3}");
        // Early looks say insufficient_evidence, later ones continue: the step extends, then passes.
        var finished = healthy.Where(v => v.Count == Looks).ToList();
        Assert.True(finished.Count >= StreamCount - 2);
        Assert.All(finished, v => Assert.Equal((Verdict.InsufficientEvidence, Verdict.Continue), (v[0], v[^1])));

        var broken = Enumerable.Range(0, 20).Select(_ => StreamDecisions(rng, 0.10, Looks, 2500)).ToList();
        Assert.All(broken, v => Assert.Equal(Verdict.Rollback, v[^1]));
        // A tenfold regression stops the step before its minimum sample size would even allow a pass.
        Assert.True(broken.Select(v => v.Count * LookEvery * 0.25).Median() < new CanaryThresholds().MinRequests);
    }

    /// <summary>DecideCanaryStep at every look of one stream; stops at the first rollback or invalid verdict.</summary>
    private static List<Verdict> StreamDecisions(Random rng, double candidateRate, int looks, int weightBp)
    {
        var thresholds = new CanaryThresholds();
        var candidate = WindowRollup.Empty("digits", "1.1.0", 0, 300);
        var production = WindowRollup.Empty("digits", "1.0.0", 0, 300);
        var verdicts = new List<Verdict>();
        for (var look = 0; look < looks; look++)
        {
            var toCandidate = Binomial.Sample(rng, weightBp / 10_000.0, LookEvery);
            var toProduction = LookEvery - toCandidate;
            candidate = candidate.Merge(Window("1.1.0", toCandidate, Binomial.Sample(rng, candidateRate, toCandidate), rng));
            production = production.Merge(Window("1.0.0", toProduction, Binomial.Sample(rng, 0.01, toProduction), rng));
            var verdict = CanaryAnalysis.DecideCanaryStep(candidate, production, weightBp, thresholds, finalStep: false).Verdict;
            verdicts.Add(verdict);
            if (verdict is Verdict.Rollback or Verdict.Invalid)
            {
                break;
            }
        }
        return verdicts;
    }

    private static WindowRollup Window(string version, int requests, int errors, Random rng) =>
        WindowRollup.Empty("digits", version, 0, 300) with
        {
            Requests = requests,
            RoutedRequests = requests,
            Errors = errors,
            Rows = requests,
            LatencyBuckets = BucketsOf(LogNormalMs(rng, Math.Log(8.0), 0.4, requests)),
        };
}
