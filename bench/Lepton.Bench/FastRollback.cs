using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Lepton.Cli.LocalStack;
using Lepton.Cli.Samples;
using Lepton.Shared.Configuration;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Rollout;

namespace Lepton.Bench;

/// <summary>
/// <c>Lepton.Bench fast-rollback [--quick] [--poll S] [--replicas N]</c>: how many requests a
/// failing candidate still serves after the look that decided its rollback, against one worker
/// poll interval's share (request rate × candidate weight × poll interval), and how long after
/// the decision each replica stops routing to it. Real parts on loopback: Azurite, N worker
/// processes with the given poll interval, steady callers over HTTP; the decision is the
/// lifecycle's own rollback write (<see cref="RolloutOperations.RollbackAsync"/>), made the
/// moment the look has returned its verdict.
/// </summary>
internal static class FastRollback
{
    private const string Model = "fast-rollback";
    private const int WeightBp = 2500;
    private const int Callers = 8;

    private sealed record Answer(long SentTicks, long DoneTicks, string Version, int Replica);

    public static async Task<int> RunAsync(string[] args)
    {
        var quick = args.Contains("--quick");
        var poll = Option(args, "--poll", 1.0);
        var replicas = (int)Option(args, "--replicas", 2);
        var rounds = quick ? 1 : 3;
        var tmp = Directory.CreateTempSubdirectory("lepton-fast-rollback-").FullName;
        var workers = new List<Process>();
        try
        {
            Console.WriteLine($"fast rollback: {replicas} replica(s), poll interval {poll:F2}s, candidate at {WeightBp / 100}%, {Callers} callers, {rounds} round(s)");
            await using var azurite = await Azurite.StartAsync();
            var clients = await azurite.ClientsAsync();
            var registry = new ModelRegistry(clients, TimeProvider.System);
            var store = new ModelStore(clients, new ModelStoreOptions { CacheDir = Path.Combine(tmp, "publisher") });
            var rollout = new RolloutOperations(registry);
            await PublishAsync(registry, store, "1.0.0", Stage.Production);
            await registry.SetRoutesAsync(new Routes { Model = Model, Production = "1.0.0" }, "bench", "bench");
            var urls = new List<string>();
            for (var i = 0; i < replicas; i++)
            {
                var port = Azurite.FreePort();
                workers.Add(LoadBenchmark.StartWorker(azurite, tmp, port, pinned: false, pollS: poll, models: Model, replica: "fast-rollback"));
                urls.Add($"http://127.0.0.1:{port}");
            }
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            await WaitReadyAsync(http, urls, "1.0.0");

            // Warm-up on production alone: the request rate of a cold process climbs for seconds (JIT tiers).
            var warm = new ConcurrentQueue<Answer>();
            using (var warming = new CancellationTokenSource(TimeSpan.FromSeconds(quick ? 3 : 8)))
            {
                await Task.WhenAll(Enumerable.Range(0, Callers).Select(i => Task.Run(() => CallAsync(http, urls, i, warm, warming.Token))));
            }
            var rows = new List<(double Rate, double Share, int After, double SentS, double ZeroS)>();
            for (var round = 1; round <= rounds; round++)
            {
                var candidate = $"1.{round}.0";
                await PublishAsync(registry, store, candidate, Stage.Canary);
                await rollout.SetTrafficAsync(Model, candidate, candidate, WeightBp, null, 0, "bench: canary step", RolloutOperations.LifecycleActor);
                await WaitReadyAsync(http, urls, candidate);
                var answers = new ConcurrentQueue<Answer>();
                using var stop = new CancellationTokenSource();
                var callers = Enumerable.Range(0, Callers).Select(i => Task.Run(() => CallAsync(http, urls, i, answers, stop.Token))).ToArray();
                // Until every replica routes to the candidate at its weight, then a steady stretch to measure the rate.
                await WaitUntilAsync(() => urls.Select((_, r) => answers.Any(a => a.Replica == r && a.Version == candidate)).All(x => x), TimeSpan.FromSeconds(60));
                var steadyFrom = Stopwatch.GetTimestamp();
                await Task.Delay(TimeSpan.FromSeconds(quick ? 2 : 4));

                var decided = Stopwatch.GetTimestamp();
                await rollout.RollbackAsync(Model, candidate, "bench: the look found the candidate failing", RolloutOperations.LifecycleActor);
                // Long enough for every replica's next poll (and one more) to have happened.
                await Task.Delay(TimeSpan.FromSeconds((2 * poll) + 1));
                await stop.CancelAsync();
                await Task.WhenAll(callers);

                var steady = answers.Where(a => a.SentTicks >= steadyFrom && a.SentTicks < decided).ToList();
                var rate = steady.Count / Stopwatch.GetElapsedTime(steadyFrom, decided).TotalSeconds;
                // One poll interval's share: what the candidate would have served had it kept its
                // weight for exactly one poll interval after the decision, at the rate the callers
                // actually got then.
                var intervalEnd = decided + (long)(poll * Stopwatch.Frequency);
                var share = answers.Count(a => a.SentTicks >= decided && a.SentTicks < intervalEnd) * WeightBp / 10_000.0;
                var after = answers.Where(a => a.SentTicks >= decided && a.Version == candidate).ToList();
                // The replica switched after the last candidate request arrived (at or after it was
                // sent) and before it was answered: both bounds are printed.
                var sentS = after.Count == 0 ? 0 : after.Max(a => Stopwatch.GetElapsedTime(decided, a.SentTicks).TotalSeconds);
                var zero = after.Count == 0 ? 0 : after.Max(a => Stopwatch.GetElapsedTime(decided, a.DoneTicks).TotalSeconds);
                rows.Add((rate, share, after.Count, sentS, zero));
                var perReplica = string.Join(", ", Enumerable.Range(0, replicas).Select(r => $"replica {r}: {after.Count(a => a.Replica == r)}"));
                Console.WriteLine(
                    $"round {round}: {rate:F0} req/s, candidate share before {100.0 * steady.Count(a => a.Version == candidate) / Math.Max(1, steady.Count):F1}%; "
                    + $"after the decision the candidate served {after.Count} ({perReplica}) vs one poll interval's share {share:F0}; the last one sent {sentS:F2}s and answered {zero:F2}s after it");
            }
            var worst = rows.MaxBy(r => r.After / Math.Max(1, r.Share));
            var worstRatio = worst.After / Math.Max(1, worst.Share);
            Console.WriteLine();
            Console.WriteLine("| measure | value | target |");
            Console.WriteLine("|---|---|---|");
            Console.WriteLine($"| requests served by the candidate after the deciding look (worst of {rounds} rounds) | {worst.After} (one poll interval's share: {worst.Share:F0}) | ≤ one poll interval's share |");
            Console.WriteLine($"| served ÷ one poll interval's share (worst round) | {worstRatio:F2} | ≤ 1 |");
            Console.WriteLine($"| decision → 0 % on every replica: last candidate request sent … answered (worst round) | {rows.Max(r => r.SentS):F2}s … {rows.Max(r => r.ZeroS):F2}s | ≤ {poll:F2}s (one poll interval) |");
            return worstRatio <= 1.0 ? 0 : 1;
        }
        finally
        {
            foreach (var worker in workers)
            {
                if (!worker.HasExited)
                {
                    worker.Kill(entireProcessTree: true);
                }
                worker.Dispose();
            }
            Directory.Delete(tmp, recursive: true);
        }
    }

    private static double Option(string[] args, string name, double fallback)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? double.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static async Task CallAsync(HttpClient http, List<string> urls, int caller, ConcurrentQueue<Answer> answers, CancellationToken stop)
    {
        var body = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""");
        var replica = caller % urls.Count;
        var url = $"{urls[replica]}/v2/models/{Model}/infer";
        while (!stop.IsCancellationRequested)
        {
            var sent = Stopwatch.GetTimestamp();
            try
            {
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                using var response = await http.PostAsync(url, content, stop);
                var text = await response.Content.ReadAsByteArrayAsync(stop);
                var version = response.IsSuccessStatusCode
                    ? JsonDocument.Parse(text).RootElement.GetProperty("model_version").GetString() ?? "?"
                    : $"error {(int)response.StatusCode}";
                answers.Enqueue(new Answer(sent, Stopwatch.GetTimestamp(), version, replica));
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (HttpRequestException error)
            {
                answers.Enqueue(new Answer(sent, Stopwatch.GetTimestamp(), $"error {error.Message}", replica));
            }
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!condition())
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException("the candidate never took traffic on every replica");
            }
            await Task.Delay(20);
        }
    }

    private static async Task PublishAsync(ModelRegistry registry, ModelStore store, string version, Stage stage)
    {
        using var stream = new MemoryStream(SampleModels.AddOne(4));
        var stored = await store.UploadModelAsync(Model, version, stream);
        await registry.RegisterVersionAsync(Model, version, stored.Sha256, stored.Size, stored.BlobPath, actor: "bench");
        foreach (var step in new[] { Stage.Validating, Stage.Evaluating, stage })
        {
            await registry.TransitionAsync(Model, version, step, "bench", "bench");
        }
    }

    private static async Task WaitReadyAsync(HttpClient http, List<string> urls, string version)
    {
        foreach (var url in urls)
        {
            await LoadBenchmark.WaitUntilReadyAsync(http, $"{url}/v2/models/{Model}/versions/{version}/ready", $"{Model} {version} on {url}");
        }
    }
}
