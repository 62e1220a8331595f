using System.Diagnostics;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Shared.Rollout;
using Lepton.Testing;

namespace Lepton.Shared.Tests.Rollout;

/// <summary>The rollout operations on a real Azurite: each idempotent, slots never stolen, order of promote and reinstate.</summary>
public sealed class RolloutOperationsTests(AzuriteFixture azurite)
{
    private const string Sha = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233";
    private readonly ModelRegistry _registry = new(azurite.Clients, TimeProvider.System);
    private readonly string _model = TestNames.Model("rollout");
    private RolloutOperations Rollout => new(_registry);
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    /// <summary>Registers <paramref name="version"/> and walks it to <paramref name="stage"/> through the allowed moves.</summary>
    private async Task At(string version, Stage stage)
    {
        await _registry.RegisterVersionAsync(_model, version, Sha, 1, $"{_model}/{version}/model.onnx", "test", cancellationToken: Token);
        var path = stage switch
        {
            Stage.Production => new[] { Stage.Validating, Stage.Evaluating, Stage.Production },
            Stage.Canary => [Stage.Validating, Stage.Evaluating, Stage.Canary],
            Stage.Shadow => [Stage.Validating, Stage.Evaluating, Stage.Shadow],
            _ => [Stage.Validating, Stage.Evaluating],
        };
        foreach (var to in path)
        {
            await _registry.TransitionAsync(_model, version, to, "setup", "test", cancellationToken: Token);
        }
        if (stage == Stage.Production)
        {
            var routes = await _registry.GetRoutesAsync(_model, Token);
            await _registry.SetRoutesAsync(routes with { Production = version }, "test", "setup", Token);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Promote_moves_traffic_and_supersedes_the_previous_version_once()
    {
        var ct = TestContext.Current.CancellationToken;
        await At("1.0.0", Stage.Production);
        await At("1.0.1", Stage.Canary);
        await Rollout.SetTrafficAsync(_model, "1.0.1", "1.0.1", 5000, null, 0, "step", "test", ct);

        var previous = await Rollout.PromoteAsync(_model, "1.0.1", Stage.Canary, "passed", "lifecycle", ct);
        var events = (await _registry.HistoryAsync(_model, cancellationToken: ct)).Count;
        var again = await Rollout.PromoteAsync(_model, "1.0.1", Stage.Canary, "passed", "lifecycle", ct); // a retried activity

        Assert.Equal("1.0.0", previous);
        Assert.Null(again); // found from stages: 1.0.0 is already superseded
        var routes = await _registry.GetRoutesAsync(_model, ct);
        Assert.Equal(("1.0.1", (string?)null, 0), (routes.Production, routes.Candidate, routes.CandidateWeightBp));
        Assert.Equal(Stage.Superseded, (await _registry.GetVersionAsync(_model, "1.0.0", ct)).Stage);
        Assert.Equal(events, (await _registry.HistoryAsync(_model, cancellationToken: ct)).Count);
        Assert.Equal(["1.0.0"], await Rollout.RetireSupersededAsync(_model, ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_slot_held_by_another_version_is_never_taken_over()
    {
        var ct = TestContext.Current.CancellationToken;
        await At("1.0.0", Stage.Production);
        await At("1.0.1", Stage.Canary);
        await At("1.0.2", Stage.Evaluating);
        await Rollout.SetTrafficAsync(_model, "1.0.1", "1.0.1", 100, null, 0, "step", "test", ct);

        var error = await Assert.ThrowsAsync<ConflictException>(() => Rollout.SetTrafficAsync(_model, "1.0.2", "1.0.2", 0, null, 0, "pre-warm", "test", ct));

        Assert.Contains("held by 1.0.1", error.Message, StringComparison.Ordinal);
        Assert.Equal("1.0.1", (await _registry.GetRoutesAsync(_model, ct)).Candidate);
        Assert.Equal("1.0.1", await Rollout.VersionInRolloutAsync(_model, "1.0.2", ct));
        Assert.Null(await Rollout.VersionInRolloutAsync(_model, "1.0.1", ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task An_unchanged_traffic_request_writes_no_new_generation()
    {
        var ct = TestContext.Current.CancellationToken;
        await At("1.0.0", Stage.Production);
        await At("1.1.0", Stage.Shadow);
        var first = await Rollout.SetTrafficAsync(_model, "1.1.0", null, 0, "1.1.0", 1000, "shadow", "test", ct);
        var second = await Rollout.SetTrafficAsync(_model, "1.1.0", null, 0, "1.1.0", 1000, "shadow", "test", ct);
        Assert.Equal(first.Generation, second.Generation);
    }

    [Fact(Timeout = 60_000)]
    public async Task Rollback_takes_every_slot_and_is_idempotent()
    {
        var ct = TestContext.Current.CancellationToken;
        await At("1.0.0", Stage.Production);
        await At("1.1.0", Stage.Shadow);
        await Rollout.SetTrafficAsync(_model, "1.1.0", null, 0, "1.1.0", 1000, "shadow", "test", ct);

        var rolledBack = await Rollout.RollbackAsync(_model, "1.1.0", "bad", "alice", ct);
        var again = await Rollout.RollbackAsync(_model, "1.1.0", "bad", "alice", ct);

        Assert.Equal(Stage.RolledBack, rolledBack.Stage);
        Assert.Equal(rolledBack.Sequence, again.Sequence);
        var routes = await _registry.GetRoutesAsync(_model, ct);
        Assert.Equal(("1.0.0", (string?)null, 0), (routes.Production, routes.Shadow, routes.ShadowFractionBp));
        var last = (await _registry.HistoryAsync(_model, "1.1.0", ct))[^1];
        Assert.Equal(("shadow", "rolled_back", "alice"), (last.From, last.To, last.Actor));
    }

    [Fact(Timeout = 60_000)]
    public async Task Reinstate_puts_the_previous_version_back_before_the_candidate_leaves()
    {
        var ct = TestContext.Current.CancellationToken;
        await At("1.0.0", Stage.Production);
        await At("1.0.1", Stage.Canary);
        await Rollout.PromoteAsync(_model, "1.0.1", Stage.Canary, "passed", "lifecycle", ct);

        await Rollout.ReinstateAsync(_model, "1.0.1", "1.0.0", "customers complain", "bob", ct);
        await Rollout.ReinstateAsync(_model, "1.0.1", "1.0.0", "customers complain", "bob", ct);

        Assert.Equal("1.0.0", (await _registry.GetRoutesAsync(_model, ct)).Production);
        Assert.Equal(Stage.Production, (await _registry.GetVersionAsync(_model, "1.0.0", ct)).Stage);
        Assert.Equal(Stage.RolledBack, (await _registry.GetVersionAsync(_model, "1.0.1", ct)).Stage);
        var moves = (await _registry.HistoryAsync(_model, "1.0.0", ct)).Where(e => e.Kind == AuditKinds.Transition).Select(e => (e.From, e.To)).ToList();
        Assert.Equal([("production", "superseded"), ("superseded", "production")], moves[^2..]);
    }

    [Fact(Timeout = 60_000)]
    public async Task Every_transition_is_a_span_with_model_and_version()
    {
        var ct = TestContext.Current.CancellationToken;
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == LifecycleTelemetry.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                lock (spans)
                {
                    spans.Add(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        await _registry.RegisterVersionAsync(_model, "1.0.0", Sha, 1, "p", "test", cancellationToken: ct);

        await Rollout.TransitionAsync(_model, "1.0.0", Stage.Validating, Stage.Registered, "validation started", "lifecycle", cancellationToken: ct);

        Activity span;
        lock (spans)
        {
            span = Assert.Single(spans, s => Equals(s.GetTagItem(LifecycleTelemetry.ModelTag), _model));
        }
        Assert.Equal(LifecycleTelemetry.TransitionSpan, span.OperationName);
        Assert.Equal("1.0.0", span.GetTagItem(LifecycleTelemetry.VersionTag));
        Assert.Equal(("registered", "validating"), (span.GetTagItem(LifecycleTelemetry.FromStageTag), span.GetTagItem(LifecycleTelemetry.ToStageTag)));
    }
}
