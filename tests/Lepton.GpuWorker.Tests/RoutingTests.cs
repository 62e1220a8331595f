using System.Text.Json;
using Lepton.Cli.Samples;
using Lepton.GpuWorker.Routing;
using Lepton.GpuWorker.Tests.Harness;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Metrics;
using Lepton.Testing;

namespace Lepton.GpuWorker.Tests;

/// <summary>
/// Two versions served at once over real sockets: the weighted split, sticky callers, pinned
/// versions, shadow. <c>Scale(k)</c> answers <c>k·input</c>, so every response proves which version
/// computed it, independent of the header that claims it.
/// </summary>
public sealed class RoutingTests(AzuriteFixture azurite) : IDisposable
{
    private static readonly Dictionary<string, float> Factors = new() { ["1.0.0"] = 1f, ["1.1.0"] = 2f, ["2.0.0"] = 3f, ["1.2.0"] = -1f };

    private readonly string _model = TestNames.Model("route");
    private readonly string _cache = Path.Combine(Path.GetTempPath(), "lepton-worker-" + Guid.NewGuid().ToString("N")[..8]);

    private Publisher Publisher => new(azurite.Clients, _cache + "-publisher");

    public void Dispose()
    {
        foreach (var dir in new[] { _cache, _cache + "-publisher" })
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private Task<WorkerHost> StartAsync(Action<Dictionary<string, string?>>? change = null)
    {
        var settings = WorkerHost.Defaults(azurite, _cache, _model);
        change?.Invoke(settings);
        return WorkerHost.StartAsync(settings);
    }

    /// <summary>Calls the worker and checks the answer is what the version it names computes.</summary>
    private static async Task<string> CallAsync(WorkerHost worker, string model, float[] x, string? sticky = null, string? version = null)
    {
        var path = $"/v2/models/{model}" + (version is null ? "" : $"/versions/{version}") + "/infer";
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Bodies.JsonContent(Bodies.Json(x, 1, x.Length)) };
        if (sticky is not null)
        {
            request.Headers.Add("x-user", sticky);
        }
        using var response = await worker.Http.SendAsync(request, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, text);
        var served = response.Headers.GetValues("x-lepton-version").Single();
        using var doc = JsonDocument.Parse(text);
        Assert.Equal(served, doc.RootElement.GetProperty("model_version").GetString());
        Assert.Equal(x.Select(v => v * Factors[served]), Bodies.Output(doc));
        return served;
    }

    private async Task TwoVersionsAsync(int weightBp, string? sticky = null)
    {
        await Publisher.PublishAsync(_model, "1.0.0", SampleModels.Scale(Factors["1.0.0"]));
        await Publisher.PublishAsync(_model, "1.1.0", SampleModels.Scale(Factors["1.1.0"]), Stage.Canary);
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0", Candidate = "1.1.0", CandidateWeightBp = weightBp, StickyHeader = sticky });
    }

    [Fact(Timeout = 120_000)]
    public async Task The_weighted_split_is_within_tolerance_and_reaches_the_rollups()
    {
        var ct = TestContext.Current.CancellationToken;
        await TwoVersionsAsync(3_000);
        await using var worker = await StartAsync();
        await worker.WaitRoutesAsync(_model, t => t.CandidateWeightBp == 3_000);
        var random = new Random(0);
        const int n = 600;
        var hits = 0;
        for (var i = 0; i < n; i++)
        {
            var x = Enumerable.Range(0, 4).Select(_ => (float)random.NextDouble()).ToArray();
            hits += await CallAsync(worker, _model, x) == "1.1.0" ? 1 : 0;
        }
        // 30% of 600: sd 11.2; 5 sd either side fails a correct router far less than once in a million runs.
        Assert.InRange(hits, 180 - 56, 180 + 56);
        var metrics = new MetricsStore(azurite.Clients);
        IReadOnlyDictionary<string, WindowRollup> totals = new Dictionary<string, WindowRollup>();
        await WorkerHost.WaitUntilAsync(async () =>
        {
            totals = await metrics.TotalsAsync(_model, 0, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 60, ct);
            return totals.GetValueOrDefault("1.0.0")?.RoutedRequests == n - hits && totals.GetValueOrDefault("1.1.0")?.RoutedRequests == hits;
        }, "the rollups of both versions");
        foreach (var row in totals.Values)
        {
            Assert.Equal(worker.Replica, row.Replica);
            Assert.Equal(10, row.WindowSeconds);
            Assert.Equal(0, row.WindowStart % 10);
            Assert.Equal(row.Requests, row.RoutedRequests);
            Assert.Equal(row.Requests, row.Rows);
            Assert.Equal(0, row.Errors + row.Nonfinite);
            Assert.Equal(row.Requests, row.LatencyBuckets.Sum());
            Assert.True(row.LatencySumMs > 0 && row.ComputeMs > 0);
            Assert.Equal(row.Rows, row.ScoreBinCounts.Sum());
            Assert.Equal(0, row.ShadowPairs);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Sticky_callers_never_flip_as_the_weight_grows()
    {
        var ct = TestContext.Current.CancellationToken;
        await TwoVersionsAsync(500, sticky: "x-user");
        var callers = Enumerable.Range(0, 120).Select(i => $"user-{i}").ToArray();
        var seen = callers.ToDictionary(c => c, _ => new List<string>());
        var x = new float[] { 1, 1, 1, 1 };
        await using var worker = await StartAsync();
        foreach (var weight in new[] { 500, 2_500, 6_000, 10_000 })
        {
            if (weight != 500)
            {
                await Publisher.RouteAsync(_model, r => r with { CandidateWeightBp = weight });
            }
            await worker.WaitRoutesAsync(_model, t => t.CandidateWeightBp == weight);
            foreach (var caller in callers)
            {
                seen[caller].Add(await CallAsync(worker, _model, x, caller));
                seen[caller].Add(await CallAsync(worker, _model, x, caller));
                var expected = StickyBucket.Of(_model, caller) < weight ? "1.1.0" : "1.0.0";
                Assert.Equal(expected, seen[caller][^1]);
                Assert.Equal(expected, seen[caller][^2]);
            }
        }
        foreach (var (caller, versions) in seen)
        {
            var moved = versions.IndexOf("1.1.0");
            Assert.True(moved >= 0, caller);
            Assert.All(versions.Skip(moved), v => Assert.Equal("1.1.0", v));
        }
        Assert.True(seen.Values.Count(v => v[0] == "1.0.0") > 100);
    }

    [Fact(Timeout = 120_000)]
    public async Task Pinned_versions_unknown_names_refused_stages_and_on_demand_loading()
    {
        var ct = TestContext.Current.CancellationToken;
        await TwoVersionsAsync(0);
        await Publisher.PublishAsync(_model, "2.0.0", SampleModels.Scale(Factors["2.0.0"]), Stage.Evaluating);
        await Publisher.PublishAsync(_model, "0.9.0", SampleModels.Scale(5f), Stage.Rejected, reason: "accuracy 0.41 below the gate");
        await Publisher.PublishAsync(_model, "0.8.0", SampleModels.Scale(5f), Stage.Validating);
        var x = new float[] { 0, 1, 2, 3 };
        await using var worker = await StartAsync();
        // Both versions load at once: wait for the candidate and for production to be applied.
        await worker.WaitReadyAsync(_model, "1.1.0");
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal("1.0.0", await CallAsync(worker, _model, x)); // weight 0
        }
        Assert.Equal("1.1.0", await CallAsync(worker, _model, x, version: "1.1.0"));

        async Task<(int Status, string Error, HttpResponseMessage Response)> Post(string path)
        {
            var response = await worker.Http.PostAsync(path, Bodies.JsonContent(Bodies.Json(x, 1, 4)), ct);
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            return ((int)response.StatusCode, doc.RootElement.GetProperty("error").GetString()!, response);
        }

        var unknown = await Post($"/v2/models/{_model}/versions/9.9.9/infer");
        Assert.Equal(404, unknown.Status);
        Assert.Contains("no version 9.9.9", unknown.Error, StringComparison.Ordinal);
        var notServed = await Post("/v2/models/nope/infer");
        Assert.Equal(404, notServed.Status);
        Assert.Contains("not served", notServed.Error, StringComparison.Ordinal);
        var badVersion = await Post($"/v2/models/{_model}/versions/not-semver/infer");
        Assert.Equal(400, badVersion.Status);
        Assert.Contains("SemVer", badVersion.Error, StringComparison.Ordinal);
        var rejected = await Post($"/v2/models/{_model}/versions/0.9.0/infer");
        Assert.Equal(409, rejected.Status);
        Assert.Contains("'rejected'", rejected.Error, StringComparison.Ordinal);
        Assert.Contains("accuracy 0.41 below the gate", rejected.Error, StringComparison.Ordinal);
        Assert.False(rejected.Response.Headers.Contains("Retry-After"));
        var validating = await Post($"/v2/models/{_model}/versions/0.8.0/infer");
        Assert.Equal(409, validating.Status);
        Assert.Contains("'validating'", validating.Error, StringComparison.Ordinal);
        // Registered and servable but not routed: the first pinned call starts loading it and says so.
        var loading = await Post($"/v2/models/{_model}/versions/2.0.0/infer");
        Assert.Equal(503, loading.Status);
        Assert.Equal("1", loading.Response.Headers.GetValues("Retry-After").Single());
        Assert.Contains("loading", loading.Error, StringComparison.Ordinal);
        await worker.WaitReadyAsync(_model, "2.0.0");
        Assert.Equal("2.0.0", await CallAsync(worker, _model, x, version: "2.0.0"));
        using var meta = JsonDocument.Parse(await worker.Http.GetStringAsync($"/v2/models/{_model}/versions/2.0.0", ct));
        var input = meta.RootElement.GetProperty("inputs")[0];
        Assert.Equal("input", input.GetProperty("name").GetString());
        Assert.Equal("FP32", input.GetProperty("datatype").GetString());
        Assert.Equal([-1L, 4L], input.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("CPUExecutionProvider", meta.RootElement.GetProperty("parameters").GetProperty("provider").GetString());
        Assert.Equal(404, (int)(await worker.Http.GetAsync($"/v2/models/{_model}/versions/9.9.9/ready", ct)).StatusCode);
        Assert.Equal(200, (int)(await worker.Http.GetAsync($"/v2/models/{_model}/ready", ct)).StatusCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Shadow_copies_never_change_the_callers_answer_and_are_compared()
    {
        var ct = TestContext.Current.CancellationToken;
        await Publisher.PublishAsync(_model, "1.0.0", SampleModels.Scale(1f));
        // Negating flips the argmax of every row with distinct values: every shadow pair flips.
        await Publisher.PublishAsync(_model, "1.2.0", SampleModels.Scale(-1f), Stage.Shadow);
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0", Shadow = "1.2.0", ShadowFractionBp = 10_000 });
        var random = new Random(1);
        const int n = 40;
        await using var worker = await StartAsync();
        await worker.WaitRoutesAsync(_model, t => t.Shadow == "1.2.0" && t.Production == "1.0.0");
        for (var i = 0; i < n; i++)
        {
            var x = Enumerable.Range(1, 4).OrderBy(_ => random.Next()).Select(v => (float)v).ToArray();
            Assert.Equal("1.0.0", await CallAsync(worker, _model, x)); // the output is production's
        }
        var metrics = new MetricsStore(azurite.Clients);
        IReadOnlyDictionary<string, WindowRollup> totals = new Dictionary<string, WindowRollup>();
        await WorkerHost.WaitUntilAsync(async () =>
        {
            totals = await metrics.TotalsAsync(_model, 0, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 60, ct);
            return totals.GetValueOrDefault("1.2.0")?.ShadowPairs == n && totals.GetValueOrDefault("1.0.0")?.RoutedRequests == n;
        }, "the shadow pairs");
        var shadow = totals["1.2.0"];
        var production = totals["1.0.0"];
        Assert.Equal(n, shadow.ShadowFlips);
        Assert.Equal(0, shadow.RoutedRequests);
        Assert.Equal(n, shadow.Requests);
        Assert.Equal(n, shadow.PairedLatencyDiffMs.Length);
        Assert.Equal(0, production.ShadowPairs);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_slow_shadow_does_not_slow_the_caller()
    {
        var ct = TestContext.Current.CancellationToken;
        await Publisher.PublishAsync(_model, "1.0.0", TestModels.Digits());
        // The same predictions computed the slow way (extra square MatMuls): a shadow that blocked
        // the caller could not stay under the bound below.
        await Publisher.PublishAsync(_model, "1.1.0", TestModels.SlowDigits(extraLayers: 6000), Stage.Shadow);
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0", Shadow = "1.1.0", ShadowFractionBp = 10_000 });
        const int n = 15;
        await using var worker = await StartAsync();
        await worker.WaitRoutesAsync(_model, t => t.Shadow == "1.1.0" && t.Production == "1.0.0");
        var callerMs = new List<double>();
        for (var i = 0; i < n; i++)
        {
            var x = TestModels.DigitsRows(1, i);
            var started = System.Diagnostics.Stopwatch.StartNew();
            using var response = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Bodies.JsonContent(Bodies.Json(x, 1, 64)), ct);
            callerMs.Add(started.Elapsed.TotalMilliseconds);
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Equal("1.0.0", response.Headers.GetValues("x-lepton-version").Single());
        }
        var metrics = new MetricsStore(azurite.Clients);
        WindowRollup? shadow = null;
        await WorkerHost.WaitUntilAsync(async () =>
        {
            shadow = (await metrics.TotalsAsync(_model, 0, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 60, ct)).GetValueOrDefault("1.1.0");
            return shadow?.ShadowPairs == n;
        }, "the shadow pairs");
        Assert.Equal(0, shadow!.ShadowFlips); // same classifier, same labels
        var shadowComputeMs = shadow.ComputeMs / shadow.Requests;
        Assert.True(callerMs.Order().ElementAt(n / 2) < 0.5 * shadowComputeMs, $"caller median {callerMs.Order().ElementAt(n / 2):F1} ms vs shadow compute {shadowComputeMs:F1} ms");
    }
}
