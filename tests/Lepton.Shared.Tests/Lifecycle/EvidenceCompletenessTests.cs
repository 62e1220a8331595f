using System.Text.Json.Nodes;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;
using Lepton.Shared.Statistics;
using Lepton.Shared.Workers;

namespace Lepton.Shared.Tests.Lifecycle;

/// <summary>A step's evidence is complete only when every replica that served during it is in the rows of its generation, on time.</summary>
public sealed class EvidenceCompletenessTests
{
    private const string Model = "digits";
    private const long Generation = 7;
    private static readonly DateTimeOffset ClockStart = DateTimeOffset.FromUnixTimeSeconds(1_000);
    private static readonly DateTimeOffset Now = ClockStart.AddSeconds(20);
    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);

    private static Heartbeat Beat(string replica, DateTimeOffset at, long? generation = Generation, bool draining = false, string model = Model) => new()
    {
        Replica = replica,
        Url = "http://r",
        Provider = "CPUExecutionProvider",
        At = at,
        Draining = draining,
        RouteGenerations = generation is { } g ? new Dictionary<string, long> { [model] = g } : new Dictionary<string, long>(),
    };

    private static StoredRollup Row(string replica, long generation = Generation, DateTimeOffset? written = null) => new(
        new WindowRollup { Model = Model, Version = "1.0.1", Replica = replica, WindowStart = 1_000, WindowSeconds = 10, RouteGeneration = generation, Requests = 10 },
        written ?? Now.AddSeconds(-1));

    private static IReadOnlyList<string> Gaps(IReadOnlyList<Heartbeat> beats, params StoredRollup[] rows) =>
        EvidenceCompleteness.Gaps(Model, Generation, ClockStart, Now, MaxAge, beats, rows);

    [Fact]
    public void Every_live_replica_in_the_generations_rows_is_complete_evidence()
    {
        Assert.Empty(Gaps([Beat("a", Now), Beat("b", Now.AddSeconds(-2))], Row("a"), Row("b")));
    }

    [Fact]
    public void A_live_replica_without_rows_of_the_generation_is_missing()
    {
        // Its rows of the previous generation (the previous step's traffic) do not count.
        var gaps = Gaps([Beat("a", Now), Beat("b", Now)], Row("a"), Row("b", generation: Generation - 1));
        Assert.Equal(["replica b wrote no rollups under route generation 7"], gaps);
    }

    [Fact]
    public void A_replica_that_has_not_applied_the_generation_or_has_moved_past_it_is_missing()
    {
        var gaps = Gaps([Beat("a", Now, generation: 6), Beat("b", Now, generation: 8)], Row("a"), Row("b"));
        Assert.Equal(["replica a still applies route generation 6 (the step's is 7)", "replica b applies route generation 8: the routes changed after the step's (7) were written"], gaps);
    }

    [Fact]
    public void A_replica_that_went_silent_during_the_step_may_hold_unwritten_rollups()
    {
        var gaps = Gaps([Beat("a", Now), Beat("b", ClockStart.AddSeconds(3))], Row("a"), Row("b"));
        Assert.Equal(["replica b stopped reporting 17s ago, during the step: its rollups may be missing or late"], gaps);
    }

    [Fact]
    public void A_live_replica_whose_rollups_stopped_arriving_is_late()
    {
        var gaps = Gaps([Beat("a", Now)], Row("a", written: Now.AddSeconds(-9)));
        Assert.Equal(["replica a last wrote rollups 9s ago while it reports as live: its rollups are late"], gaps);
    }

    [Fact]
    public void Replicas_gone_before_the_step_draining_or_serving_other_models_do_not_count()
    {
        var gaps = Gaps(
            [Beat("a", Now), Beat("gone", ClockStart.AddSeconds(-30)), Beat("drain", Now, draining: true), Beat("other", Now, model: "other-model")],
            Row("a"));
        Assert.Empty(gaps);
        Assert.Equal(["no live replica serves digits"], Gaps([Beat("gone", ClockStart.AddSeconds(-30))]));
    }

    private static readonly Policy Policy = PolicyResolver.Resolve(new JsonObject { ["thresholds"] = new JsonObject { ["min_requests"] = 50 } });

    private static WindowRollup Totals(string version, long requests, long errors = 0)
    {
        var buckets = new long[LatencyHistogram.Count];
        buckets[LatencyHistogram.IndexOf(4)] = requests;
        return new WindowRollup
        {
            Model = Model,
            Version = version,
            Replica = "*",
            WindowStart = 1_000,
            WindowSeconds = 1,
            RouteGeneration = Generation,
            Requests = requests,
            RoutedRequests = requests,
            Errors = errors,
            Rows = requests,
            LatencyBuckets = buckets,
            LatencySumMs = 4.0 * requests,
        };
    }

    [Fact]
    public void Evidence_with_a_gap_is_never_a_pass_but_a_regression_it_shows_still_rolls_back()
    {
        var request = new WindowRequest(Model, "1.0.1", "1.0.0", 1_000, 1_020, 5000, true, WindowKind.Canary, Policy, null) { Generation = Generation };
        var healthy = new Dictionary<string, WindowRollup> { ["1.0.1"] = Totals("1.0.1", 500), ["1.0.0"] = Totals("1.0.0", 500) };
        string[] gap = ["replica b wrote no rollups under route generation 7"];

        Assert.Equal(Verdict.Promote, WindowJudging.Judge(request, healthy, null).Verdict);
        var incomplete = WindowJudging.Judge(request, healthy, null, gap);
        Assert.Equal(Verdict.InsufficientEvidence, incomplete.Verdict);
        Assert.StartsWith("evidence incomplete: replica b wrote no rollups under route generation 7; the step extends", incomplete.Reason, StringComparison.Ordinal);
        Assert.Equal(gap, incomplete.Gaps);

        var failing = new Dictionary<string, WindowRollup> { ["1.0.1"] = Totals("1.0.1", 500, errors: 150), ["1.0.0"] = Totals("1.0.0", 500) };
        Assert.Equal(Verdict.Rollback, WindowJudging.Judge(request, failing, null, gap).Verdict);

        var thin = new Dictionary<string, WindowRollup> { ["1.0.1"] = Totals("1.0.1", 5), ["1.0.0"] = Totals("1.0.0", 5) };
        var short_ = WindowJudging.Judge(request, thin, null, gap);
        Assert.Equal(Verdict.InsufficientEvidence, short_.Verdict);
        Assert.EndsWith("; evidence incomplete: replica b wrote no rollups under route generation 7", short_.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_step_reads_its_own_generation_from_before_its_clock_started()
    {
        var request = new WindowRequest(Model, "1.0.1", "1.0.0", 5_000, 5_010, 5000, false, WindowKind.Canary, Policy, null) { Generation = 9 };
        var (start, end, generations) = request.Evidence();
        Assert.Equal((5_000 - WindowRollup.MaxWindowSeconds, 5_010L), (start, end));
        Assert.True(generations!.Includes(9));
        Assert.False(generations.Includes(8));
        Assert.Null((request with { Generation = 0 }).Evidence().Generations);
        Assert.True(GenerationSelection.Before(9).Includes(8));
        Assert.False(GenerationSelection.Before(9).Includes(9));
    }
}
