using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lepton.Cli.Samples;
using Lepton.GpuWorker.Serving;
using Lepton.GpuWorker.Tests.Harness;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Models;
using Lepton.Shared.Workers;
using Lepton.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;

namespace Lepton.GpuWorker.Tests;

/// <summary>Versions load and unload while serving: swaps under load, the memory budget, batching, drain.</summary>
public sealed class HotSwapTests(AzuriteFixture azurite) : IDisposable
{
    private static readonly Dictionary<string, float> Factors = new() { ["1.0.0"] = 1f, ["1.1.0"] = 2f, ["1.2.0"] = 3f };

    private readonly string _model = TestNames.Model("swap");
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

    [Fact(Timeout = 180_000)]
    public async Task Hot_swaps_under_concurrent_load_fail_zero_requests()
    {
        var ct = TestContext.Current.CancellationToken;
        foreach (var (version, factor) in Factors)
        {
            await Publisher.PublishAsync(_model, version, SampleModels.Scale(factor), version == "1.0.0" ? Stage.Production : Stage.Canary);
        }
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
        // A short grace: replaced versions unload during the test, under load.
        await using var worker = await StartAsync(s => s["LEPTON_WORKER_UNLOAD_GRACE_S"] = "0.3");
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
        var outcomes = new ConcurrentBag<(int Status, string Version, bool Correct)>();
        using var stop = new CancellationTokenSource();
        var x = new float[] { 1, 2, 3, 4 };
        async Task Client()
        {
            while (!stop.IsCancellationRequested)
            {
                using var response = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Bodies.JsonContent(Bodies.Json(x, 1, 4)), ct);
                var body = await response.Content.ReadAsStringAsync(ct);
                var version = response.Headers.TryGetValues("x-lepton-version", out var v) ? v.Single() : "";
                var correct = response.IsSuccessStatusCode && Factors.TryGetValue(version, out var factor)
                    && Bodies.Output(JsonDocument.Parse(body)).SequenceEqual(x.Select(e => e * factor));
                outcomes.Add(((int)response.StatusCode, version, correct));
            }
        }
        var load = Enumerable.Range(0, 8).Select(_ => Task.Run(Client, ct)).ToArray();
        var previous = "1.0.0";
        foreach (var target in new[] { "1.1.0", "1.2.0" })
        {
            await WorkerHost.WaitUntilAsync(() => Task.FromResult(outcomes.Count(o => o.Version == previous) >= 50), $"traffic on {previous}");
            // Promote: the new version takes production, the old one is superseded.
            await Publisher.MoveAsync(_model, target, Stage.Production);
            await Publisher.MoveAsync(_model, previous, Stage.Superseded);
            await Publisher.RouteAsync(_model, r => r with { Production = target });
            await worker.WaitRoutesAsync(_model, t => t.Production == target);
            previous = target;
        }
        await WorkerHost.WaitUntilAsync(() => Task.FromResult(outcomes.Count(o => o.Version == "1.2.0") >= 50), "traffic on 1.2.0");
        await stop.CancelAsync();
        await Task.WhenAll(load);
        var failed = outcomes.Where(o => o.Status != 200 || !o.Correct).ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} of {outcomes.Count} failed, e.g. {string.Join("; ", failed.Take(5))}");
        Assert.Equal(Factors.Keys.Order(), outcomes.Select(o => o.Version).Distinct().Order());
        // 1.0.0 has no traffic and is not the last known-good (1.1.0 is): it was unloaded.
        var pool = worker.Services.GetRequiredService<VersionPool>();
        await WorkerHost.WaitUntilAsync(() => Task.FromResult(pool.Find(_model, "1.0.0") is null), "1.0.0 unloaded");
        Assert.True(pool.IsReady(_model, "1.1.0"));
    }

    [Fact(Timeout = 120_000)]
    public async Task The_memory_budget_evicts_idle_versions_lru_and_refuses_what_cannot_fit()
    {
        var ct = TestContext.Current.CancellationToken;
        var mlp = SampleModels.Mlp(64, 512, 2, 10);
        foreach (var version in new[] { "1.0.0", "2.0.0", "3.0.0" })
        {
            await Publisher.PublishAsync(_model, version, mlp, version == "1.0.0" ? Stage.Production : Stage.Evaluating);
        }
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
        var x = new float[64];
        // Footprint ≈ 2·(64·512 + 512·512 + 512·10 + biases)·4 B + 8 MiB ≈ 10.3 MiB: two fit in 24 MiB, not three.
        await using (var worker = await StartAsync(s => s["LEPTON_WORKER_MEMORY_BUDGET_MB"] = "24"))
        {
            await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
            foreach (var pinned in new[] { "2.0.0", "3.0.0" })
            {
                using var _ = await worker.Http.PostAsync($"/v2/models/{_model}/versions/{pinned}/infer", Bodies.JsonContent(Bodies.Json(x, 1, 64)), ct);
                await worker.WaitReadyAsync(_model, pinned);
            }
            var pool = worker.Services.GetRequiredService<VersionPool>();
            // 3.0.0 needed room: the idle, unrouted 2.0.0 went; production 1.0.0 stayed.
            Assert.Null(pool.Find(_model, "2.0.0"));
            Assert.True(pool.IsReady(_model, "1.0.0") && pool.IsReady(_model, "3.0.0"));
        }
        await using (var worker = await StartAsync(s => s["LEPTON_WORKER_MEMORY_BUDGET_MB"] = "15"))
        {
            await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
            async Task<(int Status, string Error)> Refused()
            {
                using var response = await worker.Http.PostAsync($"/v2/models/{_model}/versions/2.0.0/infer", Bodies.JsonContent(Bodies.Json(x, 1, 64)), ct);
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
                return ((int)response.StatusCode, doc.RootElement.GetProperty("error").GetString()!);
            }
            Assert.Equal(503, (await Refused()).Status);
            var message = "";
            await WorkerHost.WaitUntilAsync(async () => (message = (await Refused()).Error).Contains("could not be loaded", StringComparison.Ordinal), "the refusal");
            Assert.Contains("LEPTON_WORKER_MEMORY_BUDGET_MB", message, StringComparison.Ordinal);
            Assert.Contains($"{_model} 1.0.0", message, StringComparison.Ordinal);
            Assert.Contains("(production)", message, StringComparison.Ordinal);
            Assert.DoesNotContain(_cache, message, StringComparison.Ordinal);
            using var routed = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Bodies.JsonContent(Bodies.Json(x, 1, 64)), ct);
            Assert.Equal(200, (int)routed.StatusCode);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Batching_over_http_returns_exactly_the_unbatched_results()
    {
        var ct = TestContext.Current.CancellationToken;
        // Slow on purpose (extra square MatMuls, same predictions): requests arrive while one runs, so
        // they queue and share batches; a microsecond model would finish each before the next came.
        var onnx = TestModels.SlowDigits();
        await Publisher.PublishAsync(_model, "1.0.0", onnx, batching: new Batching(MaxBatchSize: 16, MaxDelayMs: 20));
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
        var requests = Enumerable.Range(0, 48).Select(i => (Rows: 1 + (i % 3), X: TestModels.DigitsRows(1 + (i % 3), i))).ToArray();
        await using var worker = await StartAsync();
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
        using var meta = JsonDocument.Parse(await worker.Http.GetStringAsync($"/v2/models/{_model}", ct));
        var parameters = meta.RootElement.GetProperty("parameters");
        Assert.Equal(16, parameters.GetProperty("max_batch_size").GetInt32());
        Assert.Equal(20.0, parameters.GetProperty("max_delay_ms").GetDouble());
        var answers = await Task.WhenAll(requests.Select(async r =>
        {
            using var response = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Bodies.JsonContent(Bodies.Json(r.X, r.Rows, 64)), ct);
            Assert.Equal(200, (int)response.StatusCode);
            return JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
        }));
        var metrics = await worker.Http.GetStringAsync("/metrics", ct);
        var batches = Metric(metrics, $"lepton_worker_batch_rows_count{{model=\"{_model}\",version=\"1.0.0\"}}");
        Assert.True(batches < requests.Length, $"{batches} batches for {requests.Length} requests: none shared a batch");
        var path = Path.Combine(_cache, "local.onnx");
        Directory.CreateDirectory(_cache);
        await File.WriteAllBytesAsync(path, onnx, ct);
        using var session = new InferenceSession(path);
        for (var i = 0; i < requests.Length; i++)
        {
            using var input = OrtValue.CreateTensorValueFromMemory(requests[i].X, [requests[i].Rows, 64]);
            using var expected = session.Run(new RunOptions(), ["input"], [input], ["label", "probabilities"]);
            var outputs = answers[i].RootElement.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!);
            Assert.Equal(expected[0].GetTensorDataAsSpan<long>().ToArray(), outputs["label"].GetProperty("data").EnumerateArray().Select(e => e.GetInt64()));
            Assert.Equal(expected[1].GetTensorDataAsSpan<float>().ToArray(), outputs["probabilities"].GetProperty("data").EnumerateArray().Select(e => e.GetSingle()));
            answers[i].Dispose();
        }
    }

    private static double Metric(string text, string prefix)
    {
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException($"{prefix} is not in /metrics");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_starting_replica_is_ready_only_once_its_routed_versions_answer()
    {
        // A slow model (a deep graph: loading and warming it take a while), as production and as a
        // 50 % candidate: a replica joining mid-rollout must not be put in rotation before both answer.
        var ct = TestContext.Current.CancellationToken;
        await Publisher.PublishAsync(_model, "1.0.0", TestModels.SlowDigits(seed: 1, extraLayers: 48));
        await Publisher.PublishAsync(_model, "1.1.0", TestModels.SlowDigits(seed: 2, extraLayers: 48), Stage.Canary);
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0", Candidate = "1.1.0", CandidateWeightBp = 5000, StickyHeader = "x-caller" });
        await using var worker = await WorkerHost.StartAsync(WorkerHost.Defaults(azurite, _cache, _model));
        var reasons = new List<string>();
        while (true)
        {
            using var ready = await worker.Http.GetAsync("/v2/health/ready", ct);
            if (ready.IsSuccessStatusCode)
            {
                break;
            }
            reasons.Add((await ready.Content.ReadFromJsonAsync<JsonObject>(ct))!["reason"]!.GetValue<string>());
            await Task.Delay(5, ct);
        }
        // The first moment it says ready, every sticky bucket gets an answer from a warm version.
        var row = TestModels.DigitsRows(1, seed: 3);
        var versions = new HashSet<string>(StringComparer.Ordinal);
        for (var caller = 0; caller < 32; caller++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{_model}/infer") { Content = Bodies.JsonContent(Bodies.Json(row, 1, row.Length)) };
            request.Headers.Add("x-caller", $"caller-{caller}");
            using var response = await worker.Http.SendAsync(request, ct);
            Assert.True(response.IsSuccessStatusCode, $"caller {caller}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
            versions.Add(response.Headers.GetValues("x-lepton-version").Single());
        }
        Assert.Equal(["1.0.0", "1.1.0"], versions.Order(StringComparer.Ordinal));
        Assert.All(reasons, r => Assert.Contains(r, new[] { "first sync with the registry pending", "loading the versions the routes serve" }));
    }

    [Fact(Timeout = 120_000)]
    public async Task The_worker_process_drains_on_sigterm()
    {
        var ct = TestContext.Current.CancellationToken;
        await Publisher.PublishAsync(_model, "1.0.0", SampleModels.Scale(1f));
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
        var dll = Path.Combine(AppContext.BaseDirectory, "Lepton.GpuWorker.dll");
        Assert.True(File.Exists(dll), dll);
        var port = FreePort();
        var replica = "drain-" + Guid.NewGuid().ToString("N")[..8];
        var start = new ProcessStartInfo("dotnet", [dll]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (key, value) in WorkerHost.Defaults(azurite, _cache, _model))
        {
            start.Environment[key] = value;
        }
        start.Environment["LEPTON_WORKER_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["LEPTON_WORKER_GRPC_PORT"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["LEPTON_WORKER_REPLICA_ID"] = replica;
        start.Environment["LEPTON_WORKER_DRAIN_S"] = "1.5";
        using var process = Process.Start(start)!;
        var output = new ConcurrentQueue<string>();
        process.OutputDataReceived += (_, e) => output.Enqueue(e.Data ?? "");
        process.ErrorDataReceived += (_, e) => output.Enqueue(e.Data ?? "");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
            await WorkerHost.WaitUntilAsync(async () =>
            {
                try
                {
                    return (await http.GetAsync($"/v2/models/{_model}/ready", ct)).IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, "the worker process", 60);
            using (Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
            }
            // Readiness goes false first while requests are still being served.
            await WorkerHost.WaitUntilAsync(async () => (int)(await http.GetAsync("/v2/health/ready", ct)).StatusCode == 503, "readiness off");
            using var served = await http.PostAsync($"/v2/models/{_model}/infer", Bodies.JsonContent(Bodies.Json([1, 2, 3, 4], 1, 4)), ct);
            Assert.Equal(200, (int)served.StatusCode);
            await process.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
            Assert.True(process.ExitCode == 0, string.Join('\n', output));
            var beats = await new WorkerDirectory(azurite.Clients).AllAsync(ct);
            var beat = beats.Single(b => b.Replica == replica);
            Assert.True(beat.Draining);
            Assert.Equal($"http://127.0.0.1:{port}", beat.Url);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
