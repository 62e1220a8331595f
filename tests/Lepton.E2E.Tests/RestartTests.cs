using System.Text.Json.Nodes;
using Lepton.Cli.Demo;
using Lepton.Cli.LocalStack;
using Lepton.Cli.Samples;
using Lepton.E2E.Tests.Harness;
using Lepton.Testing;

namespace Lepton.E2E.Tests;

/// <summary>A stack killed with SIGKILL mid-canary comes back with no manual cleanup and finishes the rollout.</summary>
public sealed class RestartTests
{
    [Fact(Timeout = 300_000)]
    public async Task A_stack_killed_mid_canary_restarts_on_the_same_folder_and_ports_and_the_reconciler_finishes_the_rollout()
    {
        var token = TestContext.Current.CancellationToken;
        await using var first = await StackProcess.StartAsync(cancellationToken: token);
        var model = TestNames.Model("restart");
        await Lifecycles.SeedProductionAsync(first, model, token);
        await using var callers = new LoadGenerator(first.WorkerUrl(), model, Lifecycles.Test.X, SampleDatasets.FeatureMax, first.Key, unseenFraction: 0, requestsPerSecond: 40).Start();
        using (var api = first.Client())
        {
            var policy = Lifecycles.Policy(new JsonObject { ["steps_bp"] = new JsonArray(2500, 5000, 10_000) }, windowS: 5);
            await Lifecycles.UploadAsync(first.Store, model, "1.1.0", SampleDatasets.GoodClassifier(Lifecycles.Train), policy, token);
            await Lifecycles.WaitAsync(api, model, "1.1.0", d => d is { Stage: "canary", Step: >= 1 }, TimeSpan.FromSeconds(90), token, "the first canary step");
            // Azurite keeps its tables in memory and saves them whole every 5 s: once a save has
            // begun after the canary stage was seen, the disk holds it, as on a stack that ran a while.
            Assert.True(await first.TablesSavedAfterAsync(DateTime.UtcNow.AddSeconds(1), TimeSpan.FromSeconds(30), token), "Azurite did not save its tables");
            Assert.Equal("canary", (await Lifecycles.WaitAsync(api, model, "1.1.0", _ => true, TimeSpan.FromSeconds(10), token)).Stage);
        }
        var children = first.Children;
        Assert.Equal(["azurite", "worker-0"], children.Keys.Order(StringComparer.Ordinal));
        Assert.All(children.Values, child => Assert.True(child.IsRunning));

        first.Signal(Posix.SigKill);
        Assert.True(await first.WaitExitAsync(TimeSpan.FromSeconds(20), token), "the stack outlived SIGKILL");
        // Its children die with it (their parent-death signal), and every port is free again.
        Assert.True(await Processes.EventuallyAsync(() => Processes.Running(children.Values).Count == 0, TimeSpan.FromSeconds(20), token),
            $"still running after the stack was killed: {string.Join(", ", children.Where(c => c.Value.IsRunning).Select(c => c.Key))}");
        Assert.True(await Processes.EventuallyAsync(() => Processes.Busy(first.Ports.All).Count == 0, TimeSpan.FromSeconds(20), token),
            $"ports still taken: {string.Join(", ", Processes.Busy(first.Ports.All))}");

        // No cleanup: same folder, same ports; the pid files of the dead children are cleared.
        await using var second = await first.RestartAsync(cancellationToken: token);
        Assert.DoesNotContain("already in use", second.Output);
        Assert.DoesNotContain("left running by an earlier stack", second.Output);
        var resumed = await second.WaitForLineAsync(l => l.Contains("reconciler: resumed", StringComparison.Ordinal), TimeSpan.FromSeconds(5), token);
        Assert.Contains($"lepton-{model}-1.1.0-", resumed);

        using var after = second.Client();
        // Resumed mid-canary, not started over: the restarted stack finds the canary stage.
        var resumedAt = await Lifecycles.WaitAsync(after, model, "1.1.0", _ => true, TimeSpan.FromSeconds(10), token);
        // (Its next decision needs a window of traffic from the restarted worker, which was only just ready.)
        Assert.True(resumedAt.Stage == "canary", $"after the restart: {resumedAt}");
        var final = await Lifecycles.WaitFinalAsync(after, model, "1.1.0", TimeSpan.FromSeconds(150), token);
        Assert.True(final.Stage == "production", $"{final}\n{second.Tail()}");
        // The stage turns production a moment before the routes do; the callers (same URL) are
        // then served by the new production from the restarted worker.
        var before = callers.Summary().Served.GetValueOrDefault("1.1.0");
        Assert.True(await Processes.EventuallyAsync(() => callers.Summary().Served.GetValueOrDefault("1.1.0") > before + 20, TimeSpan.FromSeconds(30), token),
            $"callers served by 1.1.0 after the promotion: {callers.Summary().Served.GetValueOrDefault("1.1.0") - before}");
        Assert.Equal("1.1.0", (await after.ModelAsync(model, token))["routes"]!["production"]!.GetValue<string>());
        // One pass through the pipeline: validation and evaluation were not run again after the restart.
        var transitions = (await after.HistoryAsync(model, "1.1.0", token)).Select(e => e!["to"]?.GetValue<string>()).ToList();
        Assert.Equal(1, transitions.Count(t => t == "validating"));
        Assert.Equal(1, transitions.Count(t => t == "canary"));
    }
}
