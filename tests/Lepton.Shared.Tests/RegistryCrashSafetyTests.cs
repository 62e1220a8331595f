using Azure;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;
using Lepton.Testing;

namespace Lepton.Shared.Tests;

/// <summary>What a crash between two registry writes leaves is repairable, and racing operator commands are decided in storage.</summary>
public sealed class RegistryCrashSafetyTests(AzuriteFixture azurite)
{
    private const string Sha = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233";
    private readonly ModelRegistry _registry = new(azurite.Clients, TimeProvider.System);
    private readonly string _model = TestNames.Model("crash");

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private async Task AtAsync(string version, params Stage[] path)
    {
        await _registry.RegisterVersionAsync(_model, version, Sha, 1, $"{_model}/{version}/model.onnx", "test", cancellationToken: Token);
        foreach (var to in path)
        {
            await _registry.TransitionAsync(_model, version, to, "setup", "test", cancellationToken: Token);
        }
    }

    [Fact]
    public async Task A_route_change_whose_audit_event_a_crash_lost_is_re_appended_from_the_row()
    {
        await AtAsync("1.0.0", Stage.Validating, Stage.Evaluating, Stage.Production);
        var routes = await _registry.SetRoutesAsync(new Routes { Model = _model, Production = "1.0.0" }, "test", "first routes", Token);
        // The crash: the row written, its event never appended.
        await azurite.Clients.Table(StorageLayout.EventsTable).DeleteEntityAsync(_model, $"r!{routes.Generation:D10}", ETag.All, Token);
        Assert.DoesNotContain(await _registry.HistoryAsync(_model, cancellationToken: Token), e => e.Kind == AuditKinds.Routes);

        Assert.True(await _registry.RepairRoutesEventAsync(await _registry.GetRoutesAsync(_model, Token), Token));
        Assert.False(await _registry.RepairRoutesEventAsync(await _registry.GetRoutesAsync(_model, Token), Token)); // once

        var change = Assert.Single(await _registry.HistoryAsync(_model, cancellationToken: Token), e => e.Kind == AuditKinds.Routes);
        Assert.Equal(("test", "first routes"), (change.Actor, change.Reason));
        Assert.Contains("\"production\":\"1.0.0\"", change.To, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stage_change_whose_audit_event_a_crash_lost_is_re_appended_and_its_intent_kept_on_the_row()
    {
        await AtAsync("1.0.0", Stage.Validating, Stage.Evaluating);
        var moved = await _registry.TransitionAsync(
            _model, "1.0.0", Stage.Production, "promoted", "lifecycle", Stage.Evaluating, Shared.Rollout.RolloutOperations.PromoteIntent([]), Token);
        await azurite.Clients.Table(StorageLayout.EventsTable).DeleteEntityAsync(_model, ModelRegistry.EventKey(moved.SemVer.SortKey, moved.Sequence), ETag.All, Token);

        Assert.True(await _registry.RepairVersionEventAsync(_model, "1.0.0", Token));

        var record = await _registry.GetVersionAsync(_model, "1.0.0", Token);
        Assert.Equal(RolloutOps.Promote, record.LastEvent!.Details[RolloutOps.Key]!.GetValue<string>());
        Assert.Single(await _registry.HistoryAsync(_model, "1.0.0", Token), e => e.To == "production");
    }

    [Fact]
    public async Task Of_two_racing_decisive_commands_exactly_one_is_claimed_per_stage()
    {
        await AtAsync("1.0.1", Stage.Validating, Stage.Evaluating, Stage.Canary);
        var promote = new OperatorCommand(OperatorAction.Promote, "alice", "ship it");
        var rollback = new OperatorCommand(OperatorAction.Rollback, "bob", "errors");

        var claims = await Task.WhenAll(
            Task.Run(() => _registry.ClaimCommandAsync(_model, "1.0.1", promote, Token), Token),
            Task.Run(() => _registry.ClaimCommandAsync(_model, "1.0.1", rollback, Token), Token));

        Assert.Single(claims, c => c is null); // one won
        var held = Assert.Single(claims, c => c is not null)!;
        Assert.Equal(Stage.Canary, held.Stage);
        Assert.Contains(held.Command, new[] { promote, rollback });
        // A later command in the same stage meets the winner; in the next stage (the bake) it is free again.
        Assert.Equal(held, await _registry.ClaimCommandAsync(_model, "1.0.1", promote, Token));
        await _registry.TransitionAsync(_model, "1.0.1", Stage.Production, "promoted", "lifecycle", cancellationToken: Token);
        Assert.Null(await _registry.ClaimCommandAsync(_model, "1.0.1", rollback, Token));
        // A new run of the lifecycle starts with no claim.
        await _registry.ClearCommandAsync(_model, "1.0.1", Token);
        Assert.Null(await _registry.ClaimCommandAsync(_model, "1.0.1", promote, Token));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_command_after_a_rollback_was_carried_out_meets_that_rollback_while_the_run_finishes()
    {
        var ct = TestContext.Current.CancellationToken;
        await AtAsync("1.0.1", Stage.Validating, Stage.Evaluating, Stage.Canary);
        var rollback = new OperatorCommand(OperatorAction.Rollback, "alice", "errors");
        Assert.Null(await _registry.ClaimCommandAsync(_model, "1.0.1", rollback, ct));
        // The run wrote the decision (the stage) and is still moving the routes.
        await _registry.TransitionAsync(_model, "1.0.1", Stage.RolledBack, "rolled back by operator", "lifecycle", cancellationToken: ct);
        var abort = new OperatorCommand(OperatorAction.Abort, "bob", "pager");
        Assert.Equal(rollback, (await _registry.ClaimCommandAsync(_model, "1.0.1", abort, ct))?.Command);
    }
}
