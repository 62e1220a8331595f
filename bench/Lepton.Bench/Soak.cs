using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Lepton.Cli.Api;
using Lepton.Cli.Demo;
using Lepton.Cli.LocalStack;
using Lepton.Cli.Samples;
using Lepton.Cli.Views;
using Lepton.Shared.Configuration;
using Lepton.Shared.Models;
using Lepton.Shared.Storage;
using Microsoft.Extensions.Logging;

namespace Lepton.Bench;

/// <summary>
/// The soak (issue 14, item 6): the real local stack (Azurite, the lifecycle host, two workers) on
/// loopback runs a full canary and promotion under steady load, with one storage stall (Azurite
/// stopped with SIGSTOP, so connections hang) and one rolling worker restart (SIGTERM: drain, exit,
/// start again) in the middle. It reports requests served, failures, the callers' p50/p99 per
/// phase, each worker's RSS at the start and the end, and the tables' row counts. It stops by
/// itself (<c>--minutes</c>, 6 by default, is the bound; a run takes about three: <c>--baseline-s</c>
/// 60 of production-only load, then the rollout). Figures are
/// printed, never asserted; the exit code is 1 when the promotion did not happen or a caller failed.
/// </summary>
internal static class Soak
{
    private const string Model = "soak";
    private const string Production = "1.0.0";
    private const string Candidate = "1.1.0";

    public static async Task<int> RunAsync(string[] args)
    {
        var minutes = Option(args, "--minutes", 6.0);
        var rate = Option(args, "--rps", 80.0);
        var stallS = Option(args, "--stall-s", 8.0);
        var baselineS = Option(args, "--baseline-s", args.Contains("--quick") ? 15.0 : 60.0);
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(minutes));
        var token = deadline.Token;
        var data = Directory.CreateTempSubdirectory("lepton-soak-");
        var settings = FreePorts(new DevSettings { DataDir = data.FullName, Workers = 2 });
        using var logs = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
        var clock = Stopwatch.StartNew();
        void Say(string line) => Console.WriteLine($"[{clock.Elapsed.TotalSeconds,6:0.0}s] {line}");

        Say($"starting the local stack (2 workers) in {data.FullName}");
        await using var stack = await LocalStackHost.StartAsync(settings, logs, token);
        using var api = new LeptonApiClient(new ClientSettings { ApiUrl = stack.Endpoints.ApiUrl, WorkerUrl = stack.Endpoints.WorkerUrls[0], Key = stack.Key });
        var clients = new StorageClients(new StorageOptions { ConnectionString = stack.ConnectionString });
        var store = new ModelStore(clients, new ModelStoreOptions { CacheDir = Path.Combine(data.FullName, "publisher") });
        var (train, test) = SampleDatasets.Digits();
        await store.PutDatasetAsync(Model, DemoScenario.Dataset, test, token);
        var policy = Policy();

        await PushAsync(store, Production, SampleDatasets.WeakClassifier(train), policy, token);
        var first = await DemoScenario.WaitFinalAsync(api, Model, Production, TimeSpan.FromMinutes(3), null, token);
        Say($"{Production}: {Stage(first)}");
        await DemoScenario.WaitServableAsync(api, Model, test.X, TimeSpan.FromMinutes(1), token);

        await using var load = new LoadGenerator(stack.Endpoints.WorkerUrls, Model, test.X, SampleDatasets.FeatureMax, stack.Key, unseenFraction: 0, requestsPerSecond: rate).Start();
        load.Phase = "baseline (production only)";
        await Task.Delay(TimeSpan.FromSeconds(2), token);
        var rssStart = stack.Workers.Select(w => Rss(w.Pid)).ToArray();
        Say($"load: {rate:0} req/s over both workers; RSS {string.Join(", ", rssStart.Select(Mib))}");
        var rssSeries = SampleRssAsync(stack.Workers[0], token);
        await Task.Delay(TimeSpan.FromSeconds(baselineS), token);

        await PushAsync(store, Candidate, SampleDatasets.GoodClassifier(train), policy, token);
        Say($"pushed {Candidate}");
        var faults = RunFaultsAsync(stack, api, load, stallS, Say, token);
        var phases = FollowPhasesAsync(api, load, Say, token);
        var final = await DemoScenario.WaitFinalAsync(api, Model, Candidate, TimeSpan.FromMinutes(minutes), null, token);
        await faults;
        Say($"{Candidate}: {Stage(final)} — {ModelView.Text((final["version"] as JsonObject)?["reason"])}");
        load.Phase = "after the promotion";
        await Task.Delay(TimeSpan.FromSeconds(10), token);
        var summary = await load.StopAsync();
        await deadline.CancelAsync();
        await phases;
        var rssEnd = stack.Workers.Select(w => Rss(w.Pid)).ToArray();
        var series = await rssSeries;

        Console.WriteLine();
        Console.WriteLine($"soak: {summary.Sent} requests in {summary.Elapsed.TotalSeconds:0} s, {summary.Failed} failed"
            + (summary.Failures.Count > 0 ? $" ({string.Join(", ", summary.Failures.Select(f => $"{f.Key}: {f.Value}"))})" : ""));
        Console.WriteLine($"served: {string.Join(", ", summary.Served.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"))}");
        Console.WriteLine($"{"phase",-44} {"requests",9} {"failed",7} {"p50 ms",8} {"p99 ms",8}");
        foreach (var phase in load.Phases())
        {
            Console.WriteLine($"{phase.Phase,-44} {phase.Requests,9} {phase.Failed,7} {phase.P50Ms,8:0.0} {phase.P99Ms,8:0.0}");
        }
        for (var i = 0; i < stack.Workers.Count; i++)
        {
            var restarted = stack.Workers[i].Restarts > 0 ? $" (restarted {stack.Workers[i].Restarts}x: the end is a new process)" : "";
            Console.WriteLine($"worker {i} RSS: start {Mib(rssStart[i])}, end {Mib(rssEnd[i])}{restarted}");
        }
        Console.WriteLine($"worker 0 RSS every 15 s: {string.Join(" ", series.Select(Mib))}");
        var rows = new List<string>();
        foreach (var table in StorageLayout.Tables)
        {
            var count = 0;
            await foreach (var _ in clients.Tables.GetTableClient(table).QueryAsync<Azure.Data.Tables.TableEntity>(select: ["PartitionKey"], cancellationToken: CancellationToken.None))
            {
                count++;
            }
            rows.Add($"{table} {count}");
        }
        Console.WriteLine($"table rows: {string.Join(", ", rows)}");
        var promoted = Stage(final) == "production";
        return promoted && summary.Failed == 0 ? 0 : 1;
    }

    /// <summary>
    /// Steps long enough that the stall and the restart both land inside the canary: the stall once
    /// the first step has run a while, the restart once storage has been back for a few seconds.
    /// </summary>
    private static async Task RunFaultsAsync(LocalStackHost stack, LeptonApiClient api, LoadGenerator load, double stallS, Action<string> say, CancellationToken token)
    {
        await WaitAsync(async () => Stage(await api.VersionAsync(Model, Candidate, token)) == "canary", token);
        await Task.Delay(TimeSpan.FromSeconds(6), token);
        var azurite = stack.Azurite ?? throw new InvalidOperationException("the soak starts its own Azurite");
        var before = load.Phase;
        load.Phase = $"storage stalled (SIGSTOP {stallS:0} s)";
        say($"storage stall: Azurite stopped with SIGSTOP for {stallS:0} s");
        azurite.Pause();
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(stallS), token);
        }
        finally
        {
            azurite.Resume();
        }
        say("storage back");
        load.Phase = before;
        await Task.Delay(TimeSpan.FromSeconds(8), token);
        var worker = stack.Workers[1];
        var pid = worker.Pid;
        load.Phase = "worker 1 restarting (SIGTERM, drain)";
        say($"worker 1 restart: SIGTERM to pid {pid}");
        worker.Restart();
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        if (stack.Key is { } key)
        {
            probe.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        }
        await WaitAsync(async () => worker.Pid is { } now && now != pid
            && (await probe.GetAsync($"{stack.Endpoints.WorkerUrls[1]}/v2/health/ready", token)).IsSuccessStatusCode, token);
        say($"worker 1 ready again (pid {worker.Pid})");
        load.Phase = before;
    }

    /// <summary>Labels the load's phases with the candidate's stage and weight as the API reports them.</summary>
    private static async Task FollowPhasesAsync(LeptonApiClient api, LoadGenerator load, Action<string> say, CancellationToken token)
    {
        var last = "";
        try
        {
            while (!token.IsCancellationRequested)
            {
                var model = await api.ModelAsync(Model, token);
                string stage;
                try
                {
                    stage = Stage(await api.VersionAsync(Model, Candidate, token));
                }
                catch (ApiException error) when (error.Status == 404)
                {
                    stage = "uploaded";
                }
                var weight = model["routes"]?["candidate_weight_bp"]?.GetValue<int>() ?? 0;
                var phase = stage switch
                {
                    "canary" => $"canary {weight / 100.0:0.#}%",
                    "production" => "promoted (bake, then done)",
                    _ => $"{stage} (production only)",
                };
                if (phase != last && !load.Phase.StartsWith("storage", StringComparison.Ordinal) && !load.Phase.StartsWith("worker", StringComparison.Ordinal)
                    && load.Phase != "after the promotion")
                {
                    load.Phase = phase;
                    say($"phase: {phase}");
                    last = phase;
                }
                await Task.Delay(250, token);
            }
        }
        catch (OperationCanceledException)
        {
            // The soak is over.
        }
        catch (Exception error) when (error is ApiException or HttpRequestException)
        {
            say($"phase follower stopped: {error.Message}");
        }
    }

    /// <summary>A worker's RSS every 15 s, to tell growth that levels off from a leak.</summary>
    private static async Task<IReadOnlyList<long>> SampleRssAsync(ManagedProcess worker, CancellationToken token)
    {
        var samples = new List<long>();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(15));
        try
        {
            do
            {
                samples.Add(Rss(worker.Pid));
            }
            while (await timer.WaitForNextTickAsync(token));
        }
        catch (OperationCanceledException)
        {
            // The soak is over.
        }
        return samples;
    }

    private static JsonObject Policy()
    {
        var policy = DemoScenario.Policy(windowS: 10);
        policy["steps_bp"] = new JsonArray(1000, 2500, 5000, 10_000);
        policy["max_extensions"] = 4;
        policy["bake_s"] = 5.0;
        return policy;
    }

    private static async Task PushAsync(ModelStore store, string version, byte[] model, JsonObject policy, CancellationToken token)
    {
        using var bytes = new MemoryStream(model);
        await store.UploadModelAsync(Model, version, bytes, new Manifest { Dataset = DemoScenario.Dataset, Policy = (JsonObject)policy.DeepClone() }, cancellationToken: token);
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, CancellationToken token)
    {
        while (true)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (Exception error) when (error is ApiException or HttpRequestException)
            {
                // Not there yet (the version is not registered, the worker is restarting).
            }
            await Task.Delay(250, token);
        }
    }

    private static string Stage(JsonObject detail) => ModelView.Text((detail["version"] as JsonObject)?["stage"]);

    private static DevSettings FreePorts(DevSettings settings)
    {
        // Worker i listens on WorkerPort + 10·i (gRPC one above): find a base with all four free.
        var workerPort = Enumerable.Range(0, 200).Select(i => 20_000 + Random.Shared.Next(0, 20_000))
            .First(p => DevSettings.IsFree(p) && DevSettings.IsFree(p + 1) && DevSettings.IsFree(p + 10) && DevSettings.IsFree(p + 11));
        return settings with
        {
            BlobPort = Azurite.FreePort(),
            QueuePort = Azurite.FreePort(),
            TablePort = Azurite.FreePort(),
            ApiPort = Azurite.FreePort(),
            DurablePort = Azurite.FreePort(),
            WorkerPort = workerPort,
        };
    }

    /// <summary>Resident set size of a process in bytes (VmRSS in /proc/pid/status), 0 when it is gone.</summary>
    private static long Rss(int? pid)
    {
        if (pid is null)
        {
            return 0;
        }
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            var kib = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
            return kib is null ? 0 : long.Parse(kib, CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024):0} MiB";

    private static double Option(string[] args, string name, double fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
