using CsCheck;
using Lepton.Shared.Lifecycle;

namespace Lepton.Shared.Tests;

public sealed class StageMachineTests
{
    private static readonly Stage[] AllStages = Enum.GetValues<Stage>();

    [Theory]
    [InlineData(Stage.Registered, Stage.Validating)]
    [InlineData(Stage.Validating, Stage.Evaluating)]
    [InlineData(Stage.Evaluating, Stage.Production)]
    [InlineData(Stage.Evaluating, Stage.Shadow)]
    [InlineData(Stage.Shadow, Stage.Canary)]
    [InlineData(Stage.Canary, Stage.Production)]
    [InlineData(Stage.Canary, Stage.RolledBack)]
    [InlineData(Stage.Production, Stage.Superseded)]
    [InlineData(Stage.Superseded, Stage.Production)]
    public void Allows_the_lifecycle_moves(Stage from, Stage to) => Assert.Equal(to, StageMachine.CheckTransition(from, to));

    [Theory]
    [InlineData(Stage.Registered, Stage.Production)]
    [InlineData(Stage.Evaluating, Stage.RolledBack)]
    [InlineData(Stage.Rejected, Stage.Validating)]
    [InlineData(Stage.RolledBack, Stage.Production)]
    [InlineData(Stage.Superseded, Stage.RolledBack)]
    [InlineData(Stage.Canary, Stage.Canary)]
    public void Refuses_illegal_moves_naming_what_is_allowed(Stage from, Stage to)
    {
        var error = Assert.Throws<IllegalTransitionException>(() => StageMachine.CheckTransition(from, to));
        Assert.Contains($"from '{StageNames.ToWire(from)}'", error.Message);
        Assert.Contains("allowed", error.Message);
        Assert.Equal(409, error.StatusCode);
    }

    [Fact]
    public void Terminal_stages_have_no_way_out() =>
        Assert.All(StageMachine.TerminalStages, stage => Assert.Empty(StageMachine.AllowedNext(stage)));

    [Fact]
    public void Every_stage_is_reachable_from_registered()
    {
        var seen = new HashSet<Stage> { Stage.Registered };
        var frontier = new Queue<Stage>(seen);
        while (frontier.TryDequeue(out var stage))
        {
            foreach (var next in StageMachine.AllowedNext(stage).Where(seen.Add))
            {
                frontier.Enqueue(next);
            }
        }
        Assert.Equal(AllStages.ToHashSet(), seen);
    }

    [Fact]
    public void Only_traffic_carrying_stages_lead_to_rolled_back() =>
        Assert.All(
            AllStages.Where(s => StageMachine.AllowedNext(s).Contains(Stage.RolledBack)),
            s => Assert.Contains(s, new[] { Stage.Shadow, Stage.Canary, Stage.Production }));

    [Fact]
    public void Random_walks_only_ever_take_allowed_edges_and_end_where_they_say() =>
        Gen.Int[0, AllStages.Length - 1].Array[1, 40].Sample(choices =>
        {
            var stage = Stage.Registered;
            foreach (var choice in choices)
            {
                var target = AllStages[choice];
                var allowed = StageMachine.AllowedNext(stage).Contains(target);
                try
                {
                    stage = StageMachine.CheckTransition(stage, target);
                    if (!allowed)
                    {
                        return false;
                    }
                }
                catch (IllegalTransitionException)
                {
                    if (allowed)
                    {
                        return false;
                    }
                }
            }
            return !StageMachine.IsTerminal(stage) || StageMachine.AllowedNext(stage).Count == 0;
        });

    [Fact]
    public void Wire_names_round_trip()
    {
        foreach (var stage in AllStages)
        {
            Assert.Equal(stage, StageNames.Parse(StageNames.ToWire(stage)));
            Assert.Equal($"\"{StageNames.ToWire(stage)}\"", LeptonJson.Serialize(stage));
        }
        Assert.Throws<InvalidInputException>(() => StageNames.Parse("live"));
    }
}
