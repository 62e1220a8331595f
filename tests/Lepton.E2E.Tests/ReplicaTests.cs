using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Lepton.Cli.Demo;
using Lepton.Cli.LocalStack;
using Lepton.Cli.Samples;
using Lepton.E2E.Tests.Harness;
using Lepton.Shared.Metrics;
using Lepton.Testing;

namespace Lepton.E2E.Tests;

/// <summary>
/// <c>lepton dev --workers 2</c>: two replicas on ports 10 apart (gRPC beside each), one killed
/// mid-canary and restarted by the stack, sticky callers on one version whichever replica answers,
/// and a canary judged on both replicas' rollups.
/// </summary>
public sealed class ReplicaTests
{
    private const string StickyHeader = "x-user-id";

    [Fact(Timeout = 300_000)]
    public async Task Two_replicas_one_killed_mid_canary_still_finish_the_rollout_sticky_and_summed()
    {
        var token = TestContext.Current.CancellationToken;
        await using var stack = await StackProcess.StartAsync(new StackOptions { Workers = 2 }, token);
        var ports = stack.Ports;
        Assert.Equal(ports.WorkerHttp(0) + 10, ports.WorkerHttp(1));
        Assert.Contains($"{stack.WorkerUrl(0)}/v2 (gRPC 127.0.0.1:{ports.WorkerHttp(0) + 1})", stack.Output);
        Assert.Contains($"{stack.WorkerUrl(1)}/v2 (gRPC 127.0.0.1:{ports.WorkerHttp(1) + 1})", stack.Output);
        Assert.Equal([ports.WorkerGrpc(0), ports.WorkerGrpc(1)], Processes.Busy([ports.WorkerGrpc(0), ports.WorkerGrpc(1)]));

        var model = TestNames.Model("replicas");
        await Lifecycles.SeedProductionAsync(stack, model, token);
        var sticky = await stack.LeptonAsync(["routes", model, "--set", $"sticky_header={StickyHeader}"], cancellationToken: token);
        Assert.True(sticky.ExitCode == 0, sticky.ToString());
        await using var callers0 = new LoadGenerator(stack.WorkerUrl(0), model, Lifecycles.Test.X, SampleDatasets.FeatureMax, stack.Key, unseenFraction: 0, requestsPerSecond: 30, loops: 2).Start();
        await using var callers1 = new LoadGenerator(stack.WorkerUrl(1), model, Lifecycles.Test.X, SampleDatasets.FeatureMax, stack.Key, unseenFraction: 0, requestsPerSecond: 30, loops: 2).Start();

        using var api = stack.Client();
        var policy = Lifecycles.Policy(new JsonObject { ["steps_bp"] = new JsonArray(2500, 5000, 7500, 10_000) }, windowS: 5);
        await Lifecycles.UploadAsync(stack.Store, model, "1.1.0", SampleDatasets.GoodClassifier(Lifecycles.Train), policy, token);
        await Lifecycles.WaitAsync(api, model, "1.1.0", d => d is { Stage: "canary", Step: >= 1 }, TimeSpan.FromSeconds(90), token, "the first canary step");

        // Sticky callers: the same user gets the same version from either replica.
        var split = await StickySplitAsync(stack, model, token);
        Assert.Contains("1.0.0", split.Values);
        Assert.Contains("1.1.0", split.Values);

        // One replica crashes mid-canary; the stack restarts it (a new pid in its pid file).
        var killed = stack.Children["worker-1"];
        Assert.Equal("canary", (await Lifecycles.WaitAsync(api, model, "1.1.0", _ => true, TimeSpan.FromSeconds(5), token)).Stage);
        Assert.True(killed.Signal(Posix.SigKill));
        Assert.True(await Processes.EventuallyAsync(() => stack.Children.GetValueOrDefault("worker-1") is var worker && worker != killed && worker.IsRunning, TimeSpan.FromSeconds(60), token),
            $"worker-1 was not restarted:\n{stack.Tail()}");
        await stack.WaitForLineAsync(l => l.Contains("worker-1 exited with code", StringComparison.Ordinal) && l.Contains("restarting (1/5)", StringComparison.Ordinal), TimeSpan.FromSeconds(5), token);

        var final = await Lifecycles.WaitFinalAsync(api, model, "1.1.0", TimeSpan.FromSeconds(150), token);
        Assert.True(final.Stage == "production", $"{final}\n{stack.Tail()}");
        // The stage turns production a moment before the canary report is written.
        await Lifecycles.WaitAsync(api, model, "1.1.0", d => d.Reports.Contains("canary.json"), TimeSpan.FromSeconds(30), token, "the canary report");
        // Both replicas serve the new production, the restarted one included.
        for (var worker = 0; worker < 2; worker++)
        {
            using var client = stack.Client(worker);
            await DemoScenario.WaitServableAsync(client, model, Lifecycles.Test.X, TimeSpan.FromSeconds(30), token);
        }
        // Callers of the replica that stayed up saw no failure.
        Assert.Equal(0, callers0.Summary().Failed);

        // The canary's judged counts are sums over replicas: at 100 % production is judged on its
        // traffic during the earlier steps, which both replicas served.
        var report = (await stack.Store.GetReportAsync(model, "1.1.0", "canary", token)).AsObject();
        var last = report["steps"]!.AsArray().Last()!;
        Assert.Equal(10_000, last["weight_bp"]!.GetValue<int>());
        var baseline = last["baseline"]!;
        Assert.Equal("earlier_steps", baseline["source"]!.GetValue<string>());
        // Each step is judged on the rows of its own route generation: the earlier steps' rows are
        // the baseline, whichever windows they fell in.
        var earlier = report["steps"]!.AsArray().SkipLast(1).Select(s => s!["generation"]!.GetValue<long>()).ToHashSet();
        Assert.NotEmpty(earlier);
        var rows = await new MetricsStore(stack.Storage).ReadAsync(model, 0, long.MaxValue / 2, token);
        var byReplica = rows.Where(r => r.Version == "1.0.0" && earlier.Contains(r.RouteGeneration))
            .GroupBy(r => r.Replica).ToDictionary(g => g.Key, g => g.Sum(r => r.Requests), StringComparer.Ordinal);
        Assert.True(byReplica.GetValueOrDefault("local-0") > 0 && byReplica.GetValueOrDefault("local-1") > 0, $"production's rows per replica: {string.Join(", ", byReplica)}");
        Assert.Equal(byReplica.Values.Sum(), baseline["requests"]!.GetValue<long>());
        Assert.Equal(byReplica.Values.Sum(), last["production"]!["requests"]!.GetValue<long>());
        Assert.Equal(["local-0", "local-1"], rows.Where(r => r.Version == "1.1.0").Select(r => r.Replica).Distinct().Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// Which version each of 40 sticky users gets, asked of both replicas, from a moment when both
    /// apply the same routes with a split weight (the replicas poll routes, so right after a step
    /// they may disagree for a moment; that is the only thing retried).
    /// </summary>
    private static async Task<Dictionary<string, string>> StickySplitAsync(StackProcess stack, string model, CancellationToken token)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", stack.Key);
        var body = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "input",
                ["datatype"] = "FP32",
                ["shape"] = new JsonArray(1, SampleDatasets.Features),
                ["data"] = new JsonArray(Lifecycles.Test.X.Values.Take(SampleDatasets.Features).Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
            }),
        }.ToJsonString();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var before = await RoutesAsync(http, stack, model, token);
            if (before[0] is { } routes && routes["candidate"] is not null && routes["candidate_weight_bp"]!.GetValue<int>() is > 0 and < 10_000
                && JsonNode.DeepEquals(before[0], before[1]))
            {
                var split = new Dictionary<string, string>(StringComparer.Ordinal);
                var agreed = true;
                for (var user = 0; user < 40 && agreed; user++)
                {
                    var versions = new List<string>();
                    for (var worker = 0; worker < 2; worker++)
                    {
                        using var request = new HttpRequestMessage(HttpMethod.Post, $"{stack.WorkerUrl(worker)}/v2/models/{model}/infer")
                        {
                            Content = new StringContent(body, Encoding.UTF8, "application/json"),
                        };
                        request.Headers.Add(StickyHeader, $"user-{user}");
                        using var response = await http.SendAsync(request, token);
                        Assert.True(response.IsSuccessStatusCode, $"{response.StatusCode} from worker {worker}");
                        versions.Add(response.Headers.GetValues("x-lepton-version").Single());
                    }
                    agreed = versions[0] == versions[1];
                    split[$"user-{user}"] = versions[0];
                }
                var after = await RoutesAsync(http, stack, model, token);
                if (JsonNode.DeepEquals(before[0], after[0]) && JsonNode.DeepEquals(before[1], after[1]))
                {
                    Assert.True(agreed, "a sticky user got different versions from the two replicas under the same routes");
                    return split;
                }
            }
            await Task.Delay(200, token);
        }
        throw new TimeoutException("the two replicas never applied the same split routes for long enough to ask them");
    }

    /// <summary>The routes each replica applies now (its model metadata).</summary>
    private static async Task<JsonNode?[]> RoutesAsync(HttpClient http, StackProcess stack, string model, CancellationToken token)
    {
        var routes = new JsonNode?[2];
        for (var worker = 0; worker < 2; worker++)
        {
            var meta = JsonNode.Parse(await http.GetStringAsync(new Uri($"{stack.WorkerUrl(worker)}/v2/models/{model}"), token));
            routes[worker] = meta?["parameters"]?["routes"];
        }
        return routes;
    }
}
