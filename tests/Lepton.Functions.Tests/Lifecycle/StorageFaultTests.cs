using Lepton.Shared.Lifecycle;
using Lepton.Testing;

namespace Lepton.Functions.Tests.Lifecycle;

/// <summary>
/// The lifecycle never decides on missing evidence: storage stopped (connections refused) or
/// stalled (SIGSTOP) during a canary, and a replica whose rollups never arrive. Each test stops or
/// stalls storage, so this class has an Azurite of its own (the assembly's shared one must keep
/// answering the other tests), and the control plane short storage timeouts, so a fault surfaces
/// in seconds.
/// </summary>
public sealed class StorageFaultTests() : Scenario(new AzuriteFixture())
{
    protected override IReadOnlyDictionary<string, string?> HostSettings { get; } = new Dictionary<string, string?>
    {
        ["LEPTON_STORAGE_TIMEOUT_S"] = "0.5",
        ["LEPTON_STORAGE_RETRIES"] = "1",
    };

    public override async ValueTask InitializeAsync()
    {
        await Azurite.InitializeAsync();
        await base.InitializeAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await Azurite.DisposeAsync();
    }

    /// <summary>Asserts the weights <paramref name="version"/> was given only ever rose and never reached <paramref name="below"/>.</summary>
    private async Task AssertNeverFlappedAsync(string version, int below)
    {
        var weights = await CandidateWeightsAsync(version);
        Assert.NotEmpty(weights);
        Assert.True(weights.Zip(weights.Skip(1)).All(p => p.First <= p.Second), $"the candidate's weight went down and up again: {string.Join(", ", weights)}");
        Assert.All(weights, w => Assert.True(w < below, $"the candidate reached {w} bp: {string.Join(", ", weights)}"));
    }

    [Fact(Timeout = 240_000)]
    public async Task Storage_that_stays_down_during_a_canary_ends_it_rolled_back_at_zero_percent_never_promoted()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        var instance = await StartAsync("1.0.1", await UploadAsync("1.0.1", Good), Fast(("window_s", 3.0), ("check_interval_s", 0.5)));
        await Host.WaitStatusAsync(instance, s => s.Stage == Stage.Canary && s.WeightBp == 5000);

        await Azurite.Azurite.StopAsync();
        // The look's activity failed after its retries: the run now waits for storage to write its rollback.
        var waiting = await Host.WaitStatusAsync(instance, s => s.WaitingFor?.StartsWith("storage, to write", StringComparison.Ordinal) == true, timeoutS: 90);
        Assert.Equal(Stage.Canary, waiting.Stage);
        await Azurite.Azurite.RestartAsync();
        var outcome = await Host.WaitDoneAsync(instance, timeoutS: 90);

        AssertOutcome("rolled_back", outcome);
        Assert.StartsWith("storage unavailable during canary", outcome.Reason, StringComparison.Ordinal);
        var record = await Host.Registry.GetVersionAsync(Model, "1.0.1", Token);
        Assert.Equal((Stage.RolledBack, outcome.Reason), (record.Stage, record.Reason));
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.0", (string?)null, 0), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        Assert.Equal(Stage.Production, (await Host.Registry.GetVersionAsync(Model, "1.0.0", Token)).Stage);
        await AssertNeverFlappedAsync("1.0.1", below: 10000);
        Assert.DoesNotContain(await Host.Registry.HistoryAsync(Model, "1.0.1", Token), e => e.To == "production");
    }

    [Fact(Timeout = 240_000)]
    public async Task A_storage_stall_inside_a_canary_step_is_waited_out_and_moves_no_traffic_while_it_lasts()
    {
        await SeedProductionAsync();
        await using var replica = Replica().Start();
        // Enough retries to outlast the stall; extensions for the looks whose evidence the stall made late.
        var instance = await StartAsync(
            "1.0.1", await UploadAsync("1.0.1", Good),
            Fast(("window_s", 3.0), ("check_interval_s", 0.5), ("retry_attempts", 12), ("retry_interval_s", 1.0), ("max_extensions", 6)));
        await Host.WaitStatusAsync(instance, s => s.Stage == Stage.Canary && s.WeightBp == 5000);
        // The status is published after the step's routes write; its audit event may trail it by a moment.
        var before = await CandidateWeightsAsync("1.0.1");
        for (var tries = 0; !before.Contains(5000) && tries < 100; tries++)
        {
            await Task.Delay(100, Token);
            before = await CandidateWeightsAsync("1.0.1");
        }

        Azurite.Azurite.Pause();
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(3), Token); // the stall itself: there is no signal for "storage hangs"
        }
        finally
        {
            Azurite.Azurite.Resume();
        }
        Assert.Equal(before, await CandidateWeightsAsync("1.0.1")); // nothing moved while storage hung
        var outcome = await Host.WaitDoneAsync(instance, timeoutS: 120);

        AssertOutcome("production", outcome);
        var weights = await CandidateWeightsAsync("1.0.1");
        Assert.True(weights.Zip(weights.Skip(1)).All(p => p.First <= p.Second), $"the candidate's weight went down and up again: {string.Join(", ", weights)}");
        Assert.Equal(10000, weights[^1]);
    }

    [Fact(Timeout = 240_000)]
    public async Task A_replica_whose_rollups_never_arrive_makes_every_look_insufficient_evidence_never_a_pass()
    {
        await SeedProductionAsync();
        await using var writing = Replica().Start();
        await using var silent = new SimulatedReplica(
            new Shared.Registry.ModelRegistry(Azurite.Clients, TimeProvider.System), new Shared.Workers.WorkerDirectory(Azurite.Clients), new Shared.Metrics.MetricsStore(Azurite.Clients), Model)
        {
            Replica = $"sim-2-{Model}",
            WritesRollups = false, // it serves and heartbeats, but its rollups are lost
        }.Start();

        var outcome = await Host.WaitDoneAsync(await StartAsync("1.0.1", await UploadAsync("1.0.1", Good), Fast(("window_s", 1.0))), timeoutS: 120);

        AssertOutcome("rolled_back", outcome);
        Assert.Contains($"replica sim-2-{Model} wrote no rollups under route generation", outcome.Reason, StringComparison.Ordinal);
        var looks = (await ReportAsync("1.0.1", "canary"))["steps"]!.AsArray();
        Assert.NotEmpty(looks);
        Assert.All(looks, look => Assert.Equal("insufficient_evidence", look!["verdict"]!.GetValue<string>()));
        await AssertNeverFlappedAsync("1.0.1", below: 10000);
        Assert.True(writing.Served.GetValueOrDefault("1.0.1") > 0, "the writing replica served the candidate: the evidence it wrote alone would have been judged");
    }
}
