using Lepton.Shared.Lifecycle;
using static Lepton.Shared.Lifecycle.CommandEffect;

namespace Lepton.Shared.Tests.Lifecycle;

/// <summary>The operator command table, phase by phase.</summary>
public sealed class OperatorCommandsTests
{
    public static TheoryData<LifecyclePhase, CommandEffect, CommandEffect, CommandEffect, CommandEffect> Table => new()
    {
        // phase                                approve   promote              rollback  abort
        { LifecyclePhase.AwaitingApproval,       Proceed,  PromoteWhenSlotFree, Reject,   Reject },
        { LifecyclePhase.WaitingForSlot,         Ignore,   PromoteWhenSlotFree, Reject,   Reject },
        { LifecyclePhase.WarmingUp,              Ignore,   PromoteNow,          RollBack, RollBack },
        { LifecyclePhase.Shadow,                 Ignore,   PromoteNow,          RollBack, RollBack },
        { LifecyclePhase.AwaitingShadowApproval, Proceed,  PromoteNow,          RollBack, RollBack },
        { LifecyclePhase.Canary,                 Ignore,   PromoteNow,          RollBack, RollBack },
        { LifecyclePhase.AwaitingDecision,       Ignore,   PromoteNow,          RollBack, RollBack },
        { LifecyclePhase.Baking,                 Ignore,   Ignore,              Reinstate, Reinstate },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Each_phase_does_what_the_table_says(LifecyclePhase phase, CommandEffect approve, CommandEffect promote, CommandEffect rollback, CommandEffect abort)
    {
        Assert.Equal(approve, OperatorCommands.EffectOf(phase, OperatorAction.Approve));
        Assert.Equal(promote, OperatorCommands.EffectOf(phase, OperatorAction.Promote));
        Assert.Equal(rollback, OperatorCommands.EffectOf(phase, OperatorAction.Rollback));
        Assert.Equal(abort, OperatorCommands.EffectOf(phase, OperatorAction.Abort));
        Assert.Equal(Ignore, OperatorCommands.EffectOf(phase, OperatorAction.Unknown));
    }

    [Fact]
    public void Every_waiting_phase_is_in_the_table()
    {
        Assert.Equal(Table.Select(row => row.Data.Item1).ToHashSet(), OperatorCommands.WaitingPhases.ToHashSet());
    }

    [Fact]
    public void Promote_is_accepted_in_every_phase_before_traffic()
    {
        foreach (var phase in new[] { LifecyclePhase.AwaitingApproval, LifecyclePhase.WaitingForSlot, LifecyclePhase.WarmingUp, LifecyclePhase.Shadow, LifecyclePhase.AwaitingShadowApproval })
        {
            Assert.NotEqual(Ignore, OperatorCommands.EffectOf(phase, OperatorAction.Promote));
        }
    }

    [Fact]
    public void Approve_only_acts_where_an_approval_is_awaited()
    {
        var acting = Enum.GetValues<LifecyclePhase>().Where(p => OperatorCommands.EffectOf(p, OperatorAction.Approve) != Ignore);
        Assert.Equal([LifecyclePhase.AwaitingApproval, LifecyclePhase.AwaitingShadowApproval], acting);
    }

    [Fact]
    public void Phases_without_waits_ignore_everything()
    {
        foreach (var phase in new[] { LifecyclePhase.Registering, LifecyclePhase.Validating, LifecyclePhase.Evaluating, LifecyclePhase.Ended })
        {
            Assert.All(Enum.GetValues<OperatorAction>(), action => Assert.Equal(Ignore, OperatorCommands.EffectOf(phase, action)));
        }
    }

    [Fact]
    public void Commands_parse_their_action_and_explain_themselves()
    {
        Assert.Equal(
            [OperatorAction.Approve, OperatorAction.Promote, OperatorAction.Rollback, OperatorAction.Abort, OperatorAction.Unknown, OperatorAction.Unknown],
            new[] { "approve", "promote", "rollback", "abort", "APPROVE", null }.Select(OperatorCommand.ParseAction));
        Assert.Equal("rollback requested by alice", new OperatorCommand(OperatorAction.Rollback, "alice").ReasonOrDefault);
        Assert.Equal("pager", new OperatorCommand(OperatorAction.Abort, "alice", "pager").ReasonOrDefault);
        Assert.Equal("{\"action\":\"approve\",\"actor\":\"a\",\"reason\":\"\"}", LeptonJson.Serialize(new OperatorCommand(OperatorAction.Approve, "a")));
    }

    [Fact]
    public void Only_commands_that_decide_a_rollout_are_claimed_and_repeats_of_one_are_the_same_decision()
    {
        Assert.True(OperatorCommands.Decides(LifecyclePhase.Canary, OperatorAction.Promote));
        Assert.True(OperatorCommands.Decides(LifecyclePhase.Canary, OperatorAction.Rollback));
        Assert.True(OperatorCommands.Decides(LifecyclePhase.WaitingForSlot, OperatorAction.Promote)); // deferred, but decided
        Assert.True(OperatorCommands.Decides(LifecyclePhase.Baking, OperatorAction.Rollback)); // reinstates
        Assert.False(OperatorCommands.Decides(LifecyclePhase.Baking, OperatorAction.Promote)); // ignored there
        Assert.False(OperatorCommands.Decides(LifecyclePhase.AwaitingApproval, OperatorAction.Approve));
        Assert.False(OperatorCommands.Decides(LifecyclePhase.Canary, OperatorAction.Approve));
        // Busy phases read the command at their next wait, where promote, rollback and abort decide.
        Assert.True(OperatorCommands.Decides(LifecyclePhase.Evaluating, OperatorAction.Abort));
        Assert.False(OperatorCommands.Decides(LifecyclePhase.Evaluating, OperatorAction.Approve));
        Assert.True(OperatorCommands.SameDecision(OperatorAction.Rollback, OperatorAction.Abort));
        Assert.False(OperatorCommands.SameDecision(OperatorAction.Promote, OperatorAction.Rollback));
        Assert.Equal(
            [Stage.Production, Stage.RolledBack, Stage.Rejected],
            new[] { OperatorCommands.Outcome(OperatorAction.Promote, Stage.Canary), OperatorCommands.Outcome(OperatorAction.Rollback, Stage.Canary), OperatorCommands.Outcome(OperatorAction.Abort, Stage.Evaluating) });
    }

    [Fact]
    public void Failpoints_are_named_in_one_place_and_a_misspelt_one_is_refused()
    {
        Assert.Equal(Failpoints.All.Count, Failpoints.All.Distinct().Count());
        Assert.Equal(new HashSet<string> { Failpoints.PromoteAfterStageWrite, Failpoints.DuringBake }, Failpoints.Parse(" promote.after-stage-write ,bake.during"));
        Assert.Empty(Failpoints.Parse(null));
        var error = Assert.Throws<ConfigurationException>(() => Failpoints.Parse("promote.after-stage"));
        Assert.Contains("unknown failpoint(s) promote.after-stage", error.Message, StringComparison.Ordinal);
        Assert.Contains(Failpoints.DuringValidation, error.Message, StringComparison.Ordinal);
        Assert.True(Failpoints.CompiledIn); // tests run the Debug build, where the crash tests arm them
        Failpoints.Hit(Failpoints.DuringBake); // not armed here: nothing happens
    }

    [Fact]
    public void The_readme_shows_the_command_table_as_the_code_has_it()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Lepton.Functions.sln")))
        {
            dir = dir.Parent;
        }
        Assert.NotNull(dir);
        var readme = File.ReadAllText(Path.Combine(dir.FullName, "README.md")).ReplaceLineEndings("\n");
        var table = OperatorCommands.Markdown();
        Assert.Contains("| `canary` | ignored | promotes now | ends `rolled_back` (candidate to 0 %) |", table, StringComparison.Ordinal);
        Assert.True(readme.Contains(table, StringComparison.Ordinal), $"README.md should show the table OperatorCommands has:\n{table}");
    }
}
