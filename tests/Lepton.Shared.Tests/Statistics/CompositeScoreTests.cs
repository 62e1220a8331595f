using System.Text.Json.Nodes;
using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;
using Lepton.Shared.Statistics;
using static Lepton.Shared.Tests.Statistics.Rollups;

namespace Lepton.Shared.Tests.Statistics;

public sealed class CompositeScoreTests
{
    private static readonly CompositeWeights Weights = new() { Latency = 0.5, Resource = 0.2, Error = 0.3 };

    private static WindowRollup Measured() => WindowRollup.Empty("digits", "1.0.0", 0, 300) with
    {
        Requests = 1000,
        RoutedRequests = 1000,
        Errors = 20,
        Rows = 4000,
        LatencyBuckets = BucketsOf(Enumerable.Repeat(40.0, 1000)),
        ComputeMs = 2000.0,
    };

    [Fact]
    public void Composite_score_by_hand()
    {
        var score = CompositeScore.Of(Measured(), Weights);
        // p95 = 50 ms bucket → T = 0.5; 2000 ms / 4000 rows · 1000 = 500 ms per 1k → R = 0.5;
        // 2% errors → E = 2; P = 0.25 + 0.1 + 0.6.
        Assert.Equal(50.0, score.P95Ms);
        Assert.Equal(500.0, score.ComputeMsPer1k);
        Assert.Equal(0.02, score.ErrorRate);
        Assert.Equal((0.5, 0.5, 2.0), (score.T, score.R, score.E));
        Assert.Equal(0.95, score.P, 12);
    }

    [Fact]
    public void From_parts_is_the_formula_the_rollup_score_uses() =>
        // Offline evaluation scores from raw parts; it must agree with the live-traffic score.
        Assert.Equal(CompositeScore.FromParts(50.0, 500.0, 0.02, Weights), CompositeScore.Of(Measured(), Weights));

    [Fact]
    public void The_reference_point_scores_the_sum_of_the_weights() =>
        Assert.Equal(1.0, CompositeScore.FromParts(100.0, 1000.0, 0.01, Weights).P, 12);

    [Fact]
    public void An_idle_version_scores_nan_and_writes_null_for_every_part()
    {
        var idle = CompositeScore.Of(WindowRollup.Empty("digits", "1.0.0", 0, 300));
        Assert.True(double.IsNaN(idle.P));
        var json = JsonNode.Parse(LeptonJson.Serialize(idle))!.AsObject();
        Assert.Equal(["p95_ms", "compute_ms_per_1k", "error_rate", "T", "R", "E", "P"], json.Select(p => p.Key));
        Assert.All(json, p => Assert.Null(p.Value));
    }

    [Fact]
    public void A_p95_past_the_last_bound_makes_t_infinite()
    {
        var slow = Measured() with { LatencyBuckets = BucketsOf(Enumerable.Repeat(10_000.0, 10)) };
        Assert.Equal(double.PositiveInfinity, CompositeScore.Of(slow).T);
    }

    [Theory]
    [InlineData(-1.0, 0.5, 0.5, "composite weights must be three finite numbers ≥ 0")]
    [InlineData(0.0, 0.0, 0.0, "composite weights must not all be 0")]
    [InlineData(double.NaN, 0.5, 0.5, "composite weights must be three finite numbers ≥ 0")]
    public void Bad_weights_are_a_policy_error(double latency, double resource, double error, string words)
    {
        var weights = new CompositeWeights { Latency = latency, Resource = resource, Error = error };
        Assert.Contains(words, Assert.Throws<InvalidPolicyException>(() => CompositeScore.Of(Rollup("1.0.0", 10), weights)).Message);
        Assert.Contains(words, Assert.Throws<InvalidPolicyException>(() => CompositeScore.FromParts(1.0, 1.0, 0.0, weights)).Message);
    }

    [Fact]
    public void Scales_must_be_positive() =>
        Assert.Contains("scales must be > 0", Assert.Throws<InvalidPolicyException>(
            () => CompositeScore.FromParts(1.0, 1.0, 0.0, scales: new CompositeScales { ErrorRate = 0 })).Message);
}
