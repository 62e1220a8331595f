using System.Text.Json.Nodes;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Shared.Rollout;

namespace Lepton.Shared.Tests.Rollout;

/// <summary>The reconciler's plan for each state a crash between two writes of a rollout leaves.</summary>
public sealed class RepairPlanTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);

    private static ModelVersion V(string version, Stage stage, int secondsAfter, JsonObject? details = null) => new()
    {
        Model = "m",
        Version = version,
        Stage = stage,
        Sha256 = new string('a', 64),
        Size = 1,
        BlobPath = $"m/{version}/model.onnx",
        Created = T0,
        Updated = T0.AddSeconds(secondsAfter),
        LastEvent = new AuditEvent { Model = "m", Version = version, Kind = AuditKinds.Transition, Actor = "lifecycle", At = T0.AddSeconds(secondsAfter), Details = details ?? [] },
    };

    private static Routes R(string? production, string? candidate = null, int weight = 0) =>
        new() { Model = "m", Production = production, Candidate = candidate, CandidateWeightBp = weight, Generation = 4 };

    [Fact]
    public void A_consistent_model_needs_nothing()
    {
        var plan = RepairPlan.For([V("1.0.0", Stage.Superseded, 1), V("1.0.1", Stage.Production, 2, RolloutOperations.PromoteIntent(["1.0.0"])), V("1.0.2", Stage.Canary, 3)], R("1.0.1", "1.0.2", 500));
        Assert.True(plan.IsEmpty);
    }

    [Fact]
    public void A_promotion_stopped_after_its_stage_write_is_finished()
    {
        var plan = RepairPlan.For([V("1.0.0", Stage.Production, 1), V("1.0.1", Stage.Production, 9, RolloutOperations.PromoteIntent(["1.0.0"]))], R("1.0.0", "1.0.1", 5000));
        Assert.Equal(("1.0.1", (string?)null, 0), (plan.Routes!.Production, plan.Routes.Candidate, plan.Routes.CandidateWeightBp));
        Assert.Equal([new PlannedTransition("1.0.0", Stage.Production, Stage.Superseded, "superseded by 1.0.1")], plan.Transitions);
        Assert.Contains(plan.Repairs, r => r.Found.Contains("between the stage write and the route write", StringComparison.Ordinal));
    }

    [Fact]
    public void A_promotion_stopped_after_its_route_write_supersedes_the_old_version()
    {
        var plan = RepairPlan.For([V("1.0.0", Stage.Production, 1), V("1.0.1", Stage.Production, 9, RolloutOperations.PromoteIntent(["1.0.0"]))], R("1.0.1"));
        Assert.Null(plan.Routes);
        Assert.Equal([new PlannedTransition("1.0.0", Stage.Production, Stage.Superseded, "superseded by 1.0.1")], plan.Transitions);
    }

    [Fact]
    public void A_rollback_stopped_after_its_stage_write_takes_the_candidate_out_of_the_routes()
    {
        var plan = RepairPlan.For([V("1.0.0", Stage.Production, 1), V("1.0.1", Stage.RolledBack, 9)], R("1.0.0", "1.0.1", 2500));
        Assert.Equal(("1.0.0", (string?)null, 0), (plan.Routes!.Production, plan.Routes.Candidate, plan.Routes.CandidateWeightBp));
        Assert.Empty(plan.Transitions);
        Assert.Equal("the routes still sent 25% of traffic to 1.0.1, which is in stage rolled_back: 1.0.1 taken out of the candidate slot", plan.Repairs.Single().ToString());
    }

    [Theory]
    [InlineData("1.0.1")] // stopped after the stage write: the routes still send production traffic to the rolled-back promotion
    [InlineData("1.0.0")] // stopped after the route write
    public void A_reinstatement_stopped_midway_rolls_the_promoted_version_back(string routedProduction)
    {
        var plan = RepairPlan.For(
            [V("1.0.0", Stage.Production, 20, RolloutOperations.ReinstateIntent("1.0.1", "customers complain")), V("1.0.1", Stage.Production, 9, RolloutOperations.PromoteIntent(["1.0.0"]))],
            R(routedProduction));
        Assert.Equal([new PlannedTransition("1.0.1", Stage.Production, Stage.RolledBack, "customers complain")], plan.Transitions);
        Assert.Equal(routedProduction == "1.0.0" ? null : "1.0.0", plan.Routes?.Production);
    }

    [Fact]
    public void A_shadow_slot_naming_a_stopped_version_is_cleared()
    {
        var routes = R("1.0.0") with { Shadow = "1.1.0", ShadowFractionBp = 1000 };
        var plan = RepairPlan.For([V("1.0.0", Stage.Production, 1), V("1.1.0", Stage.RolledBack, 5)], routes);
        Assert.Equal(((string?)null, 0), (plan.Routes!.Shadow, plan.Routes.ShadowFractionBp));
    }
}
