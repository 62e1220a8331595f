using System.Diagnostics;
using Lepton.Cli.Demo;
using Lepton.E2E.Tests.Harness;

namespace Lepton.E2E.Tests;

/// <summary>The demo scenario (issue 12, Build 6) against a real <c>lepton dev</c> subprocess.</summary>
public sealed class DemoTests
{
    [Fact(Timeout = 300_000)]
    public async Task Every_demo_version_ends_in_its_stage_and_callers_fail_only_on_the_nan_model()
    {
        var token = TestContext.Current.CancellationToken;
        await using var stack = await StackProcess.StartAsync(cancellationToken: token);
        using var client = stack.Client();
        var clock = Stopwatch.StartNew();
        var timeline = new List<string>();
        void Log(string line)
        {
            lock (timeline)
            {
                timeline.Add($"{clock.Elapsed.TotalSeconds,5:0.0}s {line}");
            }
        }

        var result = await DemoScenario.RunAsync(client, stack.Store, Log, cancellationToken: token);
        TestContext.Current.TestOutputHelper?.WriteLine(string.Join('\n', timeline));

        Assert.Equal(DemoScenario.Steps.Select(s => s.Version), result.Outcomes.Select(o => o.Version));
        Assert.All(result.Outcomes, o => Assert.True(o.AsExpected, $"{o.Version} ended {o.Stage}: {o.Reason}\n{string.Join('\n', timeline)}"));
        Assert.Equal(["production", "production", "rejected", "rolled_back"], result.Outcomes.Take(4).Select(o => o.Stage));
        // The callers ran from 1.0.0's promotion to the end; what failed them was 1.2.0's NaNs on
        // the unseen slice, nothing else (no transport errors, no 5xx while versions swapped).
        Assert.True(result.Load.Sent > 200, $"only {result.Load.Sent} requests were sent");
        Assert.True(result.Load.UnseenSent > 0);
        Assert.True(result.Load.FailedByVersion.GetValueOrDefault("1.2.0") > 0, "1.2.0 answered no caller with NaN before its rollback");
        Assert.True(result.FailedOutside("1.2.0") == 0, $"failures outside 1.2.0: {string.Join(", ", result.Load.Failures.Select(f => $"{f.Key}: {f.Value}"))}");
        Assert.Contains(result.Outcomes[1].Reports, r => r == "canary.json");
        Assert.Contains(result.Outcomes[3].Reports, r => r == "canary.json");
    }
}
