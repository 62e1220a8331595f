using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Shared.Rollout;
using Lepton.Testing;

namespace Lepton.Shared.Tests.Rollout;

/// <summary>
/// For each pair of writes that must go together, the real operation is stopped at the failpoint
/// between them (<see cref="Failpoints.InterruptAt"/>: the writes before it are made, the ones
/// after it are not, as a SIGKILL there leaves storage), then the reconciler's repair brings
/// stages, routes and audit trail into agreement, records each repair in the audit log, and finds
/// nothing left to do when run again.
/// </summary>
public sealed class CrashRepairTests(AzuriteFixture azurite)
{
    private const string Sha = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233";
    private readonly ModelRegistry _registry = new(azurite.Clients, TimeProvider.System);
    private readonly string _model = TestNames.Model("crash");

    private RolloutOperations Rollout => new(_registry);

    private RolloutRepair Repair => new(_registry, Rollout);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private async Task AtAsync(string version, params Stage[] path)
    {
        await _registry.RegisterVersionAsync(_model, version, Sha, 1, $"{_model}/{version}/model.onnx", "test", cancellationToken: Token);
        foreach (var to in path)
        {
            await _registry.TransitionAsync(_model, version, to, "setup", "test", cancellationToken: Token);
        }
    }

    /// <summary>Production 1.0.0 serving, 1.0.1 in canary at 50 %.</summary>
    private async Task CanaryAsync()
    {
        await AtAsync("1.0.0", Stage.Validating, Stage.Evaluating, Stage.Production);
        await _registry.SetRoutesAsync(new Routes { Model = _model, Production = "1.0.0" }, "test", "setup", Token);
        await AtAsync("1.0.1", Stage.Validating, Stage.Evaluating, Stage.Canary);
        await Rollout.SetTrafficAsync(_model, "1.0.1", "1.0.1", 5000, null, 0, "step", "test", Token);
    }

    /// <summary>Runs <paramref name="operation"/> until it reaches <paramref name="failpoint"/>, where it stops as a crash would.</summary>
    private static async Task CrashAtAsync(string failpoint, Func<Task> operation)
    {
        Assert.True(Failpoints.CompiledIn);
        using (Failpoints.InterruptAt(failpoint))
        {
            var stopped = await Assert.ThrowsAsync<FailpointReachedException>(operation);
            Assert.Equal(failpoint, stopped.Name);
        }
    }

    private async Task<Stage> StageOfAsync(string version) => (await _registry.GetVersionAsync(_model, version, Token)).Stage;

    /// <summary>Repairs, asserts every repair is in the audit log as the reconciler's, and that a second run finds nothing.</summary>
    private async Task<IReadOnlyList<Shared.Rollout.Repair>> RepairAsync()
    {
        var repairs = await Repair.RepairAsync(_model, Token);
        Assert.NotEmpty(repairs);
        var audited = (await _registry.HistoryAsync(_model, cancellationToken: Token)).Where(e => e.Kind == AuditKinds.Repair).ToList();
        foreach (var repair in repairs)
        {
            Assert.Contains(audited, e => e.Version == repair.Version && e.Actor == RolloutRepair.Actor && e.Reason == repair.ToString());
        }
        Assert.Empty(await Repair.RepairAsync(_model, Token));
        return repairs;
    }

    [Fact]
    public async Task A_promotion_stopped_between_its_stage_write_and_its_route_write_is_finished()
    {
        await CanaryAsync();
        await CrashAtAsync(Failpoints.PromoteAfterStageWrite, () => Rollout.PromoteAsync(_model, "1.0.1", Stage.Canary, "passed", "lifecycle", Token));
        // The state a crash leaves: two production rows, routes still on the old one.
        Assert.Equal((Stage.Production, Stage.Production), (await StageOfAsync("1.0.0"), await StageOfAsync("1.0.1")));
        Assert.Equal("1.0.0", (await _registry.GetRoutesAsync(_model, Token)).Production);

        var repairs = await RepairAsync();

        var routes = await _registry.GetRoutesAsync(_model, Token);
        Assert.Equal(("1.0.1", (string?)null, 0), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        Assert.Equal((Stage.Superseded, Stage.Production), (await StageOfAsync("1.0.0"), await StageOfAsync("1.0.1")));
        Assert.Contains(repairs, r => r.Found.Contains("between the stage write and the route write", StringComparison.Ordinal));
        var change = (await _registry.HistoryAsync(_model, cancellationToken: Token)).Last(e => e.Kind == AuditKinds.Routes);
        Assert.Equal(RolloutRepair.Actor, change.Actor);
        Assert.StartsWith("repair: ", change.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_promotion_stopped_after_its_route_write_supersedes_the_previous_version()
    {
        await CanaryAsync();
        await CrashAtAsync(Failpoints.PromoteAfterRouteWrite, () => Rollout.PromoteAsync(_model, "1.0.1", Stage.Canary, "passed", "lifecycle", Token));
        Assert.Equal("1.0.1", (await _registry.GetRoutesAsync(_model, Token)).Production);

        var repairs = await RepairAsync();

        Assert.Equal((Stage.Superseded, Stage.Production), (await StageOfAsync("1.0.0"), await StageOfAsync("1.0.1")));
        Assert.Equal("1.0.0 marked superseded by 1.0.1", Assert.Single(repairs).Done);
        Assert.Equal(("production", "superseded", RolloutRepair.Actor), (await _registry.HistoryAsync(_model, "1.0.0", Token)).Where(e => e.Kind == AuditKinds.Transition).Select(e => (e.From, e.To, e.Actor)).Last());
    }

    [Fact]
    public async Task A_rollback_stopped_between_its_stage_write_and_its_route_write_takes_the_candidate_off_traffic()
    {
        await CanaryAsync();
        await CrashAtAsync(Failpoints.RollbackAfterStageWrite, () => Rollout.RollbackAsync(_model, "1.0.1", "errors", "lifecycle", Token));
        Assert.Equal((Stage.RolledBack, "1.0.1"), (await StageOfAsync("1.0.1"), (await _registry.GetRoutesAsync(_model, Token)).Candidate));

        var repairs = await RepairAsync();

        var routes = await _registry.GetRoutesAsync(_model, Token);
        Assert.Equal(("1.0.0", (string?)null, 0), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        Assert.Equal("1.0.1 taken out of the candidate slot", Assert.Single(repairs).Done);
    }

    [Theory]
    [InlineData(Failpoints.ReinstateAfterStageWrite)]
    [InlineData(Failpoints.ReinstateAfterRouteWrite)]
    public async Task A_reinstatement_stopped_midway_serves_the_previous_version_and_rolls_the_promoted_one_back(string failpoint)
    {
        await CanaryAsync();
        await Rollout.PromoteAsync(_model, "1.0.1", Stage.Canary, "passed", "lifecycle", Token);
        await CrashAtAsync(failpoint, () => Rollout.ReinstateAsync(_model, "1.0.1", "1.0.0", "customers complain", "alice", Token));
        Assert.Equal((Stage.Production, Stage.Production), (await StageOfAsync("1.0.0"), await StageOfAsync("1.0.1")));

        await RepairAsync();

        Assert.Equal((Stage.Production, Stage.RolledBack), (await StageOfAsync("1.0.0"), await StageOfAsync("1.0.1")));
        Assert.Equal("1.0.0", (await _registry.GetRoutesAsync(_model, Token)).Production);
        Assert.Equal("customers complain (repaired after an interruption)", (await _registry.GetVersionAsync(_model, "1.0.1", Token)).Reason);
    }

    [Fact]
    public async Task A_stage_change_whose_audit_append_a_crash_stopped_is_re_appended()
    {
        await CanaryAsync();
        await CrashAtAsync(Failpoints.TransitionAfterRowWrite, () => Rollout.RollbackAsync(_model, "1.0.1", "errors", "lifecycle", Token));
        // Read the log's row itself: reading the history would append the lost event (it repairs what it reads).
        var record = await _registry.GetVersionAsync(_model, "1.0.1", Token);
        var lost = await azurite.Clients.Table(Shared.Storage.StorageLayout.EventsTable)
            .GetEntityIfExistsAsync<Azure.Data.Tables.TableEntity>(_model, ModelRegistry.EventKey(record.SemVer.SortKey, record.Sequence), cancellationToken: Token);
        Assert.Equal((Stage.RolledBack, false), (record.Stage, lost.HasValue));

        var repairs = await RepairAsync();

        Assert.Single(await _registry.HistoryAsync(_model, "1.0.1", Token), e => e.Kind == AuditKinds.Transition && e.To == "rolled_back");
        Assert.Contains(repairs, r => r.Done == "re-appended it");
        Assert.Contains(repairs, r => r.Done == "1.0.1 taken out of the candidate slot"); // the route write never happened either
        Assert.Null((await _registry.GetRoutesAsync(_model, Token)).Candidate);
    }

    [Fact]
    public async Task A_route_change_whose_audit_append_a_crash_stopped_is_re_appended()
    {
        await CanaryAsync();
        await CrashAtAsync(Failpoints.RoutesAfterRowWrite, () => Rollout.SetTrafficAsync(_model, "1.0.1", "1.0.1", 10000, null, 0, "step", "lifecycle", Token));
        var routes = await _registry.GetRoutesAsync(_model, Token);
        Assert.Equal(10000, routes.CandidateWeightBp);
        Assert.DoesNotContain(await _registry.HistoryAsync(_model, cancellationToken: Token), e => e.Kind == AuditKinds.Routes && e.To!.Contains("10000", StringComparison.Ordinal));

        var repairs = await RepairAsync();

        Assert.Equal("re-appended it", Assert.Single(repairs).Done);
        var change = Assert.Single(await _registry.HistoryAsync(_model, cancellationToken: Token), e => e.Kind == AuditKinds.Routes && e.To!.Contains("10000", StringComparison.Ordinal));
        Assert.Equal(("lifecycle", "step"), (change.Actor, change.Reason));
        Assert.Equal(routes.Generation, (await _registry.GetRoutesAsync(_model, Token)).Generation); // the traffic itself was right
    }

    [Fact]
    public async Task An_interrupted_operation_finishes_the_same_way_when_retried_instead_of_repaired()
    {
        await CanaryAsync();
        await CrashAtAsync(Failpoints.PromoteAfterStageWrite, () => Rollout.PromoteAsync(_model, "1.0.1", Stage.Canary, "passed", "lifecycle", Token));

        // The activity's retry (the control plane survived): the stage write is found done, the rest follows.
        Assert.Equal("1.0.0", await Rollout.PromoteAsync(_model, "1.0.1", Stage.Canary, "passed", "lifecycle", Token));

        Assert.Equal((Stage.Superseded, Stage.Production), (await StageOfAsync("1.0.0"), await StageOfAsync("1.0.1")));
        Assert.Equal("1.0.1", (await _registry.GetRoutesAsync(_model, Token)).Production);
        Assert.Empty(await Repair.RepairAsync(_model, Token));
    }
}
