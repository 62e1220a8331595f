using System.Text.Json.Nodes;
using Lepton.Shared.Lifecycle;
using Lepton.Testing;

namespace Lepton.Functions.Tests.Lifecycle;

/// <summary>Patch versions through the canary: promoted, or rolled back early on a regression, with the reports to show for it.</summary>
public sealed class CanaryTests(AzuriteFixture azurite) : Scenario(azurite)
{
    [Fact(Timeout = 180_000)]
    public async Task A_patch_goes_through_the_canary_steps_and_is_promoted()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();

        var outcome = await RunAsync("1.0.1", Good);

        AssertOutcome("production", outcome);
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.1", (string?)null, 0), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        Assert.Equal(Stage.Superseded, (await Host.Registry.GetVersionAsync(Model, "1.0.0", Token)).Stage);
        var moves = await TransitionsAsync("1.0.1");
        Assert.Contains(("evaluating", "canary"), moves);
        Assert.Contains(("canary", "production"), moves);
        Assert.Equal([0, 5000, 10000], await CandidateWeightsAsync("1.0.1")); // pre-warm, then the steps
        Assert.Equal(["canary.json", "canary.png", "evaluation.json"], (await Host.Store.ListReportsAsync(Model, "1.0.1", Token)).Order(StringComparer.Ordinal));
        var canary = await ReportAsync("1.0.1", "canary");
        var steps = canary["steps"]!.AsArray();
        Assert.Contains(steps, s => s!["verdict"]!.GetValue<string>() == "continue" && s["weight_bp"]!.GetValue<int>() == 5000);
        Assert.Equal("promote", steps[^1]!["verdict"]!.GetValue<string>());
        Assert.All(steps, s => Assert.Equal("canary", s!["kind"]!.GetValue<string>()));
        // The composite score of both versions is in every report (DESIGN §5), evaluation included.
        var evaluation = await ReportAsync("1.0.1", "evaluation");
        foreach (var report in new[] { canary, evaluation })
        {
            Assert.True(report["composite"]!["candidate"]!["P"]!.GetValue<double>() > 0);
            Assert.True(report["composite"]!["production"]!["P"]!.GetValue<double>() > 0);
        }
        // Below 100 % production is judged on its own traffic in the same window.
        Assert.Equal("same_window", steps[0]!["baseline"]!["source"]!.GetValue<string>());
    }

    [Fact(Timeout = 180_000)]
    public async Task A_latency_regression_rolls_back()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        replica.Behaviour["1.0.1"] = new Behaviour { LatencyMs = 180 };

        var outcome = await RunAsync("1.0.1", Good);

        AssertOutcome("rolled_back", outcome);
        Assert.Contains("p95", outcome.Reason, StringComparison.Ordinal);
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)null, 0), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        Assert.Equal(("canary", "rolled_back"), (await TransitionsAsync("1.0.1"))[^1]);
        Assert.Equal("rolled_back", (await ReportAsync("1.0.1", "canary"))["outcome"]!.GetValue<string>());
    }

    [Fact(Timeout = 180_000)]
    public async Task An_error_regression_rolls_back_at_the_first_step()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        replica.Behaviour["1.0.1"] = new Behaviour { ErrorRate = 0.3 };

        var outcome = await RunAsync("1.0.1", Good);

        AssertOutcome("rolled_back", outcome);
        Assert.StartsWith("canary at 50%: candidate error rate", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(Stage.RolledBack, (await Host.Registry.GetVersionAsync(Model, "1.0.1", Token)).Stage);
        Assert.DoesNotContain(10000, await CandidateWeightsAsync("1.0.1"));
    }

    [Fact(Timeout = 180_000)]
    public async Task An_error_regression_only_at_full_weight_is_judged_against_the_earlier_steps()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        // Healthy at 50 %; fails 30 % of requests once it takes all the traffic.
        replica.Behaviour["1.0.1"] = new Behaviour { ErrorRateAtFullWeight = 0.3 };

        var outcome = await RunAsync("1.0.1", Good);

        AssertOutcome("rolled_back", outcome);
        Assert.StartsWith("canary at 100%: candidate error rate 30.0%", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("production baseline: its own traffic during step 1 (50%)", outcome.Reason, StringComparison.Ordinal);
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)null, 0), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        var report = await ReportAsync("1.0.1", "canary");
        Assert.Equal(outcome.Reason, report["reason"]!.GetValue<string>());
        var steps = report["steps"]!.AsArray();
        var half = steps.Where(s => s!["weight_bp"]!.GetValue<int>() == 5000).ToList();
        Assert.Equal("continue", half[^1]!["verdict"]!.GetValue<string>());
        Assert.All(half, s => Assert.Equal("same_window", s!["baseline"]!["source"]!.GetValue<string>()));
        var last = steps[^1]!;
        Assert.Equal((10000, "rollback"), (last["weight_bp"]!.GetValue<int>(), last["verdict"]!.GetValue<string>()));
        // The report says what production was compared with, and carries production's numbers.
        Assert.Equal("earlier_steps", last["baseline"]!["source"]!.GetValue<string>());
        Assert.True(last["baseline"]!["requests"]!.GetValue<long>() > 0);
        Assert.Equal(last["baseline"]!["requests"]!.GetValue<long>(), last["production"]!["requests"]!.GetValue<long>());
        Assert.True(last["composite"]!["production"]!["P"]!.GetValue<double>() < last["composite"]!["candidate"]!["P"]!.GetValue<double>());
    }

    [Fact(Timeout = 180_000)]
    public async Task Too_little_traffic_extends_the_step_then_rolls_back()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var sha = await UploadAsync("1.0.1", Good);
        var instance = await StartAsync("1.0.1", sha, Fast(("thresholds", new JsonObject { ["min_requests"] = 1_000_000 })));

        var extending = await Host.WaitStatusAsync(instance, s => s.Reason.Contains("extending the window", StringComparison.Ordinal));
        Assert.Equal("insufficient_evidence", extending.Decision);
        var outcome = await Host.WaitDoneAsync(instance);

        AssertOutcome("rolled_back", outcome);
        Assert.Contains("insufficient_evidence after 2 extension(s): too few requests", outcome.Reason, StringComparison.Ordinal);
        var steps = (await ReportAsync("1.0.1", "canary"))["steps"]!.AsArray()
            .Where(s => s!["verdict"]!.GetValue<string>() == "insufficient_evidence")
            .Select(s => s!["candidate"]!["requests"]!.GetValue<long>())
            .ToList();
        Assert.True(steps[^1] > steps[0], "evidence accumulates over the step's extensions");
    }

    [Fact(Timeout = 180_000)]
    public async Task A_routing_that_ignores_the_weights_is_a_sample_ratio_mismatch_and_never_promotes()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        // The router sends the candidate 80 % of what its weight says. With 200 requests per
        // version needed to pass, every window big enough to pass shows the mismatch.
        replica.Behaviour["1.0.1"] = new Behaviour { CandidateShareSkew = 0.8 };
        var sha = await UploadAsync("1.0.1", Good);
        var instance = await StartAsync("1.0.1", sha, Fast(("thresholds", new JsonObject { ["min_requests"] = 200 })));

        var outcome = await Host.WaitDoneAsync(instance);

        AssertOutcome("rolled_back", outcome);
        Assert.StartsWith("canary at 50%: ", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("after 2 extension(s)", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal("1.0.0", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
        var steps = (await ReportAsync("1.0.1", "canary"))["steps"]!.AsArray();
        Assert.DoesNotContain(steps, s => s!["verdict"]!.GetValue<string>() is "promote" or "continue");
        var invalid = steps.First(s => s!["verdict"]!.GetValue<string>() == "invalid")!;
        Assert.Contains("sample-ratio mismatch: the candidate got 40.00%", invalid["reason"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(invalid["checks"]!["srm_p"]!.GetValue<double>() < 0.001);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_replica_that_never_warms_times_out_and_rolls_back_before_any_traffic()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        replica.NeverWarm["1.0.1"] = 0;

        var outcome = await RunAsync("1.0.1", Good, Fast(("warmup_timeout_s", 1.5)));

        AssertOutcome("rolled_back", outcome);
        Assert.Contains("not warm after 1.5s", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("sim-1", outcome.Reason, StringComparison.Ordinal);
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)null, 0), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        var record = await Host.Registry.GetVersionAsync(Model, "1.0.1", Token);
        Assert.Equal((Stage.RolledBack, outcome.Reason), (record.Stage, record.Reason));
        Assert.Equal([("evaluating", "canary"), ("canary", "rolled_back")], (await TransitionsAsync("1.0.1"))[^2..]);
        // It was only ever named at 0 % (pre-warm), never given traffic, and then taken off.
        Assert.Equal([0], await CandidateWeightsAsync("1.0.1"));
        var report = await ReportAsync("1.0.1", "canary");
        Assert.Equal(("rolled_back", outcome.Reason, 0), (report["outcome"]!.GetValue<string>(), report["reason"]!.GetValue<string>(), report["steps"]!.AsArray().Count));
    }

    [Fact(Timeout = 180_000)]
    public async Task Blue_green_switches_all_traffic_at_once()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();

        var outcome = await RunAsync("1.0.1", Good, Fast(("strategy", "blue_green"), ("bake_s", 1.0)));

        AssertOutcome("production", outcome);
        Assert.Equal([0, 10000], await CandidateWeightsAsync("1.0.1")); // pre-warm, then everything at once
        Assert.Equal("blue_green passed all 1 step(s)", outcome.Reason);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_regression_in_the_blue_green_bake_rolls_back_against_the_traffic_before_the_switch()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        replica.Behaviour["1.0.1"] = new Behaviour { ErrorRateAtFullWeight = 0.3 };

        var outcome = await RunAsync("1.0.1", Good, Fast(("strategy", "blue_green"), ("bake_s", 1.0)));

        AssertOutcome("rolled_back", outcome);
        Assert.StartsWith("canary at 100%: candidate error rate 30.0%", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("production baseline: its traffic in the", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal("1.0.0", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
        Assert.Equal(Stage.Production, (await Host.Registry.GetVersionAsync(Model, "1.0.0", Token)).Stage);
        var last = (await ReportAsync("1.0.1", "canary"))["steps"]!.AsArray()[^1]!;
        Assert.Equal("before_switch", last["baseline"]!["source"]!.GetValue<string>());
    }

    [Fact(Timeout = 180_000)]
    public async Task A_less_accurate_patch_fails_the_evaluation_gate()
    {
        await SeedProductionAsync();

        var outcome = await RunAsync("1.0.1", Cli.Samples.SampleDatasets.WeakClassifier(Digits.Train));

        AssertOutcome("rejected", outcome);
        Assert.Contains("evaluation gate failed: accuracy regressed", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(("evaluating", "rejected"), (await TransitionsAsync("1.0.1"))[^1]);
        var report = await ReportAsync("1.0.1", "evaluation");
        Assert.Equal("failed", report["outcome"]!.GetValue<string>());
        Assert.True(report["production"]!["accuracy"]!.GetValue<double>() > report["candidate"]!["accuracy"]!.GetValue<double>());
    }

    [Fact(Timeout = 180_000)]
    public async Task A_shape_incompatible_minor_is_rejected_with_the_differences()
    {
        await SeedProductionAsync();

        var outcome = await RunAsync("1.1.0", Cli.Samples.SampleDatasets.NarrowerInput(Digits.Train));

        AssertOutcome("rejected", outcome);
        Assert.Contains("incompatible with the production version", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("'input' shape changed", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal("1.0.0", (await Host.Registry.GetRoutesAsync(Model, Token)).Production);
        Assert.Equal(("validating", "rejected"), (await TransitionsAsync("1.1.0"))[^1]);
    }
}
