using System.Text.Json.Nodes;
using Lepton.Cli.Demo;
using Lepton.Cli.LocalStack;
using Lepton.Cli.Samples;
using Lepton.E2E.Tests.Harness;
using Lepton.Shared.Configuration;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Rollout;
using Lepton.Testing;

namespace Lepton.E2E.Tests;

/// <summary>
/// Hard crashes at every step of a rollout (issue 14, item 3): the real control plane
/// (<c>lepton dev</c>) started with <c>LEPTON_FAILPOINTS</c> kills itself with SIGKILL at the named
/// point, its workers die with it, and the next start (no cleanup, the next point armed) must find
/// storage exactly as the crash left it, repair what the crash left half-written (recorded in the
/// audit log as the reconciler's) and carry on. Storage is an Azurite of the test's that outlives
/// every stack, as storage in Azure outlives the Functions app; the stack's own Azurite dies with
/// it and saves its tables only every few seconds, so it could not show the state at the point.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CrashTests
{
    private const string Production = "1.0.0";
    private const string Candidate = "1.1.0";
    private const string Next = "1.2.0";

    private static JsonObject Policy() => Lifecycles.Policy(new JsonObject
    {
        ["steps_bp"] = new JsonArray(5000, 10_000),
        // Long enough for the bake's wait to be under way when its failpoint is armed.
        ["bake_s"] = 4.0,
    }, windowS: 4);

    [Fact(Timeout = 600_000)]
    public async Task A_rollout_killed_at_each_step_in_turn_resumes_each_time_and_stage_routes_and_audit_agree_after_each_restart()
    {
        var token = TestContext.Current.CancellationToken;
        Assert.True(Failpoints.CompiledIn, "the failpoints are compiled into Debug builds only; the tests run Debug");
        await using var storage = await Azurite.StartAsync();
        var clients = await storage.ClientsAsync();
        var registry = new ModelRegistry(clients, TimeProvider.System);

        var model = TestNames.Model("crash");

        var stack = await StartAsync(storage.ConnectionString, token);
        var store = new ModelStore(clients, new ModelStoreOptions { CacheDir = Path.Combine(stack.DataDir, "test-store") });
        var key = stack.Key;
        try
        {
            await Lifecycles.SeedProductionAsync(stack, model, token);
            await using var callers = new LoadGenerator(stack.WorkerUrl(), model, Lifecycles.Test.X, SampleDatasets.FeatureMax, key, unseenFraction: 0, requestsPerSecond: 30).Start();

            // Each point in the order a rollout meets it: the stack is restarted with that point
            // armed, crashes there, and the state it left is checked before the next start.
            stack = await RestartArmedAsync(stack, Failpoints.DuringValidation, token);
            await Lifecycles.UploadAsync(store, model, Candidate, SampleDatasets.GoodClassifier(Lifecycles.Train), Policy(), token);
            await CrashedAtAsync(stack, Failpoints.DuringValidation, token);
            var state = await StateAsync(registry, model, token);
            Assert.Equal(Stage.Validating, state.Stage(Candidate));
            Assert.Equal((Production, null), (state.Routes.Production, state.Routes.Candidate));

            stack = await RestartArmedAsync(stack, Failpoints.DuringEvaluation, token);
            await CrashedAtAsync(stack, Failpoints.DuringEvaluation, token);
            state = await StateAsync(registry, model, token);
            Assert.Equal(Stage.Evaluating, state.Stage(Candidate));
            Assert.Equal((Production, null), (state.Routes.Production, state.Routes.Candidate));

            stack = await RestartArmedAsync(stack, Failpoints.BetweenCanarySteps, token);
            await CrashedAtAsync(stack, Failpoints.BetweenCanarySteps, token);
            state = await StateAsync(registry, model, token);
            Assert.Equal(Stage.Canary, state.Stage(Candidate));
            // One step passed, the next weight not yet written.
            Assert.Equal((Production, Candidate, 5000), (state.Routes.Production, state.Routes.Candidate, state.Routes.CandidateWeightBp));

            stack = await RestartArmedAsync(stack, Failpoints.PromoteAfterStageWrite, token);
            await CrashedAtAsync(stack, Failpoints.PromoteAfterStageWrite, token);
            state = await StateAsync(registry, model, token);
            // The decision is written first: the candidate is production, its routes not yet.
            Assert.Equal(Stage.Production, state.Stage(Candidate));
            Assert.Equal(Stage.Production, state.Stage(Production));
            Assert.Equal(Production, state.Routes.Production);

            // Restarted with nothing armed: the reconciler finishes the promotion before anything
            // else runs, and records what it repaired.
            stack = await RestartArmedAsync(stack, null, token);
            state = await StateAsync(registry, model, token);
            state.AssertAgree();
            Assert.Equal((Candidate, null, 0), (state.Routes.Production, state.Routes.Candidate, state.Routes.CandidateWeightBp));
            Assert.Equal(Stage.Superseded, state.Stage(Production));
            Assert.Contains(state.History, e => e.Actor == RolloutRepair.Actor);

            // A crash during the next version's bake: promoted, the previous version superseded.
            stack = await RestartArmedAsync(stack, Failpoints.DuringBake, token);
            await Lifecycles.UploadAsync(store, model, Next, SampleDatasets.GoodClassifier(Lifecycles.Train), Policy(), token);
            await CrashedAtAsync(stack, Failpoints.DuringBake, token);
            stack = await RestartArmedAsync(stack, null, token);
            state = await StateAsync(registry, model, token);
            state.AssertAgree();
            Assert.Equal(Stage.Production, state.Stage(Next));
            Assert.Equal(Stage.Superseded, state.Stage(Candidate));
            Assert.Equal((Next, null), (state.Routes.Production, state.Routes.Candidate));
            using (var api = stack.Client())
            {
                await DemoScenario.WaitServableAsync(api, model, Lifecycles.Test.X, TimeSpan.FromSeconds(60), token);
            }

            // No caller was ever answered by anything but the versions, and no answer was an
            // error: the only failures are the moments no worker listened (each crash took it down).
            var load = await callers.StopAsync();
            Assert.Equal([Production, Candidate, Next], load.Served.Keys.Where(v => v != LoadGenerator.UnknownVersion).Order(StringComparer.Ordinal));
            Assert.All(load.Failures.Keys, f => Assert.True(f.StartsWith("transport", StringComparison.Ordinal) || f.StartsWith("503", StringComparison.Ordinal), $"a caller got {f}"));
        }
        finally
        {
            await DisposeStacksAsync();
        }
    }

    [Fact(Timeout = 600_000)]
    public async Task A_rollback_killed_between_its_stage_write_and_its_route_write_is_finished_by_the_reconciler_and_the_bad_version_serves_nothing_after()
    {
        var token = TestContext.Current.CancellationToken;
        Assert.True(Failpoints.CompiledIn, "the failpoints are compiled into Debug builds only; the tests run Debug");
        await using var storage = await Azurite.StartAsync();
        var clients = await storage.ClientsAsync();
        var registry = new ModelRegistry(clients, TimeProvider.System);

        var model = TestNames.Model("crashrb");

        var stack = await StartAsync(storage.ConnectionString, token);
        var store = new ModelStore(clients, new ModelStoreOptions { CacheDir = Path.Combine(stack.DataDir, "test-store") });
        var key = stack.Key;
        try
        {
            await Lifecycles.SeedProductionAsync(stack, model, token);
            stack = await RestartArmedAsync(stack, Failpoints.RollbackAfterStageWrite, token);
            // Half the callers send rows outside the training range, where this version answers NaN.
            await using var callers = new LoadGenerator(stack.WorkerUrl(), model, Lifecycles.Test.X, SampleDatasets.FeatureMax, key, unseenFraction: 0.5, requestsPerSecond: 40).Start();
            await Lifecycles.UploadAsync(store, model, "1.2.0", SampleDatasets.NanOnUnseen(Lifecycles.Train), Policy(), token);
            await CrashedAtAsync(stack, Failpoints.RollbackAfterStageWrite, token);
            var state = await StateAsync(registry, model, token);
            Assert.Equal(Stage.RolledBack, state.Stage("1.2.0"));
            // The crash came between the writes: the routes still name the rolled-back candidate.
            Assert.Equal("1.2.0", state.Routes.Candidate);

            stack = await RestartArmedAsync(stack, null, token);
            state = await StateAsync(registry, model, token);
            Assert.Null(state.Routes.Candidate);
            Assert.Equal(0, state.Routes.CandidateWeightBp);
            state.AssertAgree();
            Assert.Contains(await registry.HistoryAsync(model, cancellationToken: token), e => e.Actor == RolloutRepair.Actor);

            // From the restart on, every answer comes from production.
            var before = callers.Summary();
            Assert.True(await Processes.EventuallyAsync(() => callers.Summary().Served.GetValueOrDefault(Production) > before.Served.GetValueOrDefault(Production) + 40, TimeSpan.FromSeconds(60), token),
                "the callers were not served by production after the restart");
            var after = await callers.StopAsync();
            Assert.Equal(before.Served.GetValueOrDefault("1.2.0"), after.Served.GetValueOrDefault("1.2.0"));
        }
        finally
        {
            await DisposeStacksAsync();
        }
    }

    // Every stack a test started, the newest last: disposed newest first at the end (a stack's
    // disposal signals the children in the shared data folder's pid files, so an older one may
    // only be disposed once the newer ones are gone).
    private readonly List<StackProcess> _stacks = [];

    private async Task DisposeStacksAsync()
    {
        for (var i = _stacks.Count - 1; i >= 0; i--)
        {
            await _stacks[i].DisposeAsync();
        }
    }

    private async Task<StackProcess> StartAsync(string storage, CancellationToken token)
    {
        var stack = await StackProcess.StartAsync(new StackOptions { Storage = storage }, token);
        _stacks.Add(stack);
        return stack;
    }

    /// <summary>Stops <paramref name="stack"/> if it still runs and starts the next on the same folder and ports, with <paramref name="failpoint"/> armed.</summary>
    private async Task<StackProcess> RestartArmedAsync(StackProcess stack, string? failpoint, CancellationToken token)
    {
        if (stack.IsRunning)
        {
            stack.Signal(Posix.SigTerm);
            Assert.True(await stack.WaitExitAsync(TimeSpan.FromSeconds(60), token), "the stack did not stop on SIGTERM");
        }
        if (failpoint is null)
        {
            var next = await stack.RestartAsync(new Dictionary<string, string>(), cancellationToken: token);
            _stacks.Add(next);
            await next.WaitForLineAsync(l => l.Contains("reconciler:", StringComparison.Ordinal), TimeSpan.FromSeconds(30), token);
            return next;
        }
        // Armed, it may die before it is ready (a resumed evaluation runs at once): not waited on.
        var armed = await stack.RestartAsync(new Dictionary<string, string> { [Failpoints.Variable] = failpoint }, waitReady: false, token);
        _stacks.Add(armed);
        return armed;
    }

    /// <summary>Waits until the stack killed itself at <paramref name="failpoint"/>, and its workers are gone with it.</summary>
    private static async Task CrashedAtAsync(StackProcess stack, string failpoint, CancellationToken token)
    {
        var children = stack.Children;
        await stack.WaitForLineAsync(l => l.Contains($"failpoint {failpoint} reached", StringComparison.Ordinal), TimeSpan.FromSeconds(180), token);
        Assert.True(await stack.WaitExitAsync(TimeSpan.FromSeconds(30), token), $"the stack outlived its failpoint {failpoint}");
        Assert.True(await Processes.EventuallyAsync(() => Processes.Running(children.Values).Count == 0, TimeSpan.FromSeconds(20), token),
            $"still running after the crash at {failpoint}: {string.Join(", ", children.Where(c => c.Value.IsRunning).Select(c => c.Key))}");
    }

    private static async Task<ModelState> StateAsync(ModelRegistry registry, string model, CancellationToken token) =>
        new(await registry.ListVersionsAsync(model, token), await registry.GetRoutesAsync(model, token), await registry.HistoryAsync(model, cancellationToken: token));

    /// <summary>A model's versions, routes and audit trail, read from storage.</summary>
    private sealed record ModelState(IReadOnlyList<ModelVersion> Versions, Routes Routes, IReadOnlyList<AuditEvent> History)
    {
        public Stage Stage(string version) => Versions.Single(v => v.Version == version).Stage;

        /// <summary>
        /// Stage, routes and audit agree: one production version, the routes' production; a
        /// candidate only in a stage that takes traffic; each version's transitions in the audit log
        /// chain (each starts where the one before ended) and end at its stage.
        /// </summary>
        public void AssertAgree()
        {
            var production = Versions.Where(v => v.Stage == Lepton.Shared.Lifecycle.Stage.Production).Select(v => v.Version).ToList();
            Assert.Equal([Routes.Production!], production);
            if (Routes.Candidate is { } candidate)
            {
                Assert.Contains(Stage(candidate), new[] { Lepton.Shared.Lifecycle.Stage.Shadow, Lepton.Shared.Lifecycle.Stage.Canary });
            }
            foreach (var version in Versions)
            {
                var moves = History.Where(e => e.Version == version.Version && e.Kind is AuditKinds.Registered or AuditKinds.Transition).ToList();
                Assert.NotEmpty(moves);
                for (var i = 1; i < moves.Count; i++)
                {
                    Assert.True(moves[i].From == moves[i - 1].To, $"{version.Version}: {moves[i - 1].From}→{moves[i - 1].To} then {moves[i].From}→{moves[i].To}");
                }
                Assert.Equal(StageNames.ToWire(version.Stage), moves[^1].To);
            }
        }
    }
}
