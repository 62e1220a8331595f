using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Shared.Rollout;
using Lepton.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Lepton.Functions.Tests.Lifecycle;

/// <summary>The restart reconciler repairs what a crash left half-written, audits each repair, and resumes only what still runs.</summary>
public sealed class ReconcilerRepairTests(AzuriteFixture azurite) : Scenario(azurite)
{
    [Fact(Timeout = 180_000)]
    public async Task A_production_row_whose_routes_disagree_is_repaired_at_restart_and_the_repair_audited()
    {
        await SeedProductionAsync();
        var sha = await UploadAsync("1.0.1", Good);
        var stored = await Host.Store.FetchModelAsync(Model, "1.0.1", Token);
        await Host.Registry.RegisterVersionAsync(Model, "1.0.1", sha, stored.Size, stored.BlobPath, "test", cancellationToken: Token);
        foreach (var to in new[] { Stage.Validating, Stage.Evaluating, Stage.Canary })
        {
            await Host.Registry.TransitionAsync(Model, "1.0.1", to, "setup", "test", cancellationToken: Token);
        }
        var rollout = Host.Services.GetRequiredService<RolloutOperations>();
        await rollout.SetTrafficAsync(Model, "1.0.1", "1.0.1", 5000, null, 0, "step", RolloutOperations.LifecycleActor, Token);
        // The control plane dies inside the promotion, between the stage write and the route write.
        using (Failpoints.InterruptAt(Failpoints.PromoteAfterStageWrite))
        {
            await Assert.ThrowsAsync<FailpointReachedException>(() => rollout.PromoteAsync(Model, "1.0.1", Stage.Canary, "passed", RolloutOperations.LifecycleActor, Token));
        }
        Assert.Equal(("1.0.0", (string?)"1.0.1"), ((await Host.Registry.GetRoutesAsync(Model, Token)).Production, (await Host.Registry.GetRoutesAsync(Model, Token)).Candidate));

        var reconciled = await Host.Starter.ReconcileAsync(Host.Client, [Model], Token);

        var repairs = reconciled.Repairs[Model];
        Assert.Contains(repairs, r => r.Version == "1.0.1" && r.Done == "routes now send production traffic to 1.0.1");
        Assert.Contains(repairs, r => r.Version == "1.0.0" && r.Done == "1.0.0 marked superseded by 1.0.1");
        var routes = await Host.Registry.GetRoutesAsync(Model, Token);
        Assert.Equal(("1.0.1", (string?)null, 0), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        Assert.Equal(Stage.Superseded, (await Host.Registry.GetVersionAsync(Model, "1.0.0", Token)).Stage);
        var audited = (await Host.Registry.HistoryAsync(Model, cancellationToken: Token)).Where(e => e.Kind == AuditKinds.Repair).ToList();
        Assert.Equal(repairs.Count, audited.Count);
        Assert.All(audited, e => Assert.Equal(RolloutRepair.Actor, e.Actor));
        Assert.DoesNotContain(reconciled.Resumed, id => id.Contains(Model, StringComparison.Ordinal)); // nothing of the model is active any more
        Assert.False((await Host.Starter.ReconcileAsync(Host.Client, [Model], Token)).Repairs.ContainsKey(Model)); // and a second pass finds nothing
    }
}
