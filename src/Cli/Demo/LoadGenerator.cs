using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lepton.Shared.Models;
using MathNet.Numerics.Statistics;

namespace Lepton.Cli.Demo;

/// <summary>What the callers saw: per serving version, requests answered and requests failed.</summary>
public sealed record LoadSummary(
    long Sent,
    long Failed,
    IReadOnlyDictionary<string, long> Served,
    IReadOnlyDictionary<string, long> FailedByVersion,
    long UnseenSent,
    TimeSpan Elapsed,
    IReadOnlyDictionary<string, long> Failures);

/// <summary>Latency and outcome of the requests sent while one phase (a label the driver sets) lasted.</summary>
public sealed record PhaseLatency(string Phase, long Requests, long Failed, double P50Ms, double P99Ms);

/// <summary>
/// Callers of the worker's Open Inference Protocol API for the demo, the end-to-end tests and the
/// soak: a few loops send <c>POST /v2/models/{model}/infer</c> at a target rate with rows from the
/// dataset and a slice outside the training range (features above the maximum), and record which
/// version served each request and whether the caller got a usable answer. A failure is a
/// transport error, a non-2xx status, or outputs that are not finite numbers (a NaN prediction is
/// as useless to a caller as an error).
/// </summary>
/// <remarks>
/// Given several replicas, the callers spread over those in rotation, round robin, as a load
/// balancer with readiness probes does (Container Apps' ingress): each replica's
/// <c>/v2/health/ready</c> is probed every 200 ms and a replica that answers anything but 200 (a
/// draining one, one restarting) gets no new request until it is ready again. Nothing is retried:
/// a request a replica accepted and then failed counts as failed.
/// </remarks>
public sealed class LoadGenerator : IAsyncDisposable
{
    public const string UnknownVersion = "?";

    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(200);

    private readonly HttpClient _http;
    private readonly string[] _replicas;
    private readonly bool[] _inRotation;
    private readonly string _path;
    private readonly NumericArray _rows;
    private readonly float _featureMax;
    private readonly double _unseenFraction;
    private readonly double _requestsPerSecond;
    private readonly int _loops;
    private readonly Dictionary<string, long> _served = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _failed = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _failures = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Stopwatch _clock = new();
    private readonly List<Task> _tasks = [];
    private readonly Dictionary<string, (List<double> Ms, long Failed)> _phases = new(StringComparer.Ordinal);
    private readonly List<string> _phaseOrder = [];
    private string _phase = "";
    private long _sent;
    private long _unseen;
    private long _next;

    public LoadGenerator(string workerUrl, string model, NumericArray rows, float featureMax, string? key, double unseenFraction = 0.2, double requestsPerSecond = 60, int loops = 4)
        : this([workerUrl], model, rows, featureMax, key, unseenFraction, requestsPerSecond, loops)
    {
    }

    public LoadGenerator(IReadOnlyList<string> replicas, string model, NumericArray rows, float featureMax, string? key, double unseenFraction = 0.2, double requestsPerSecond = 60, int loops = 4)
    {
        ArgumentOutOfRangeException.ThrowIfZero(replicas.Count);
        _http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        if (key is not null)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        _replicas = [.. replicas.Select(r => r.TrimEnd('/'))];
        _inRotation = [.. _replicas.Select(_ => true)];
        _path = $"/v2/models/{Uri.EscapeDataString(model)}/infer";
        _rows = rows;
        _featureMax = featureMax;
        _unseenFraction = unseenFraction;
        _requestsPerSecond = requestsPerSecond;
        _loops = loops;
    }

    /// <summary>The label the requests sent from now on are counted under in <see cref="Phases"/>.</summary>
    public string Phase
    {
        get
        {
            lock (_lock)
            {
                return _phase;
            }
        }
        set
        {
            lock (_lock)
            {
                _phase = value;
            }
        }
    }

    public LoadGenerator Start()
    {
        _clock.Start();
        if (_replicas.Length > 1)
        {
            _tasks.Add(Task.Run(ProbeAsync, CancellationToken.None));
        }
        for (var i = 0; i < _loops; i++)
        {
            var seed = i;
            _tasks.Add(Task.Run(() => RunAsync(seed), CancellationToken.None));
        }
        return this;
    }

    private async Task RunAsync(int seed)
    {
        var random = new Random(seed);
        var interval = TimeSpan.FromSeconds(_loops / _requestsPerSecond);
        var next = _clock.Elapsed;
        var width = (int)_rows.RowSize;
        while (!_stop.IsCancellationRequested)
        {
            var row = new double[width];
            Array.Copy(_rows.Values, random.Next((int)_rows.Rows) * width, row, 0, width);
            var unseen = random.NextDouble() < _unseenFraction;
            if (unseen)
            {
                // A few features brighter than anything in training: the live slice offline data lacks.
                for (var k = 0; k < 4; k++)
                {
                    row[random.Next(width)] = _featureMax + 4;
                }
            }
            var body = new JsonObject
            {
                ["inputs"] = new JsonArray(new JsonObject
                {
                    ["name"] = "input",
                    ["shape"] = new JsonArray(1, width),
                    ["datatype"] = "FP32",
                    ["data"] = new JsonArray(row.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
                }),
            };
            var started = _clock.Elapsed;
            var (version, status, failed) = await SendAsync(body);
            var took = (_clock.Elapsed - started).TotalMilliseconds;
            lock (_lock)
            {
                if (status == Stopped)
                {
                    return;
                }
                _sent++;
                if (!_phases.TryGetValue(_phase, out var phase))
                {
                    phase = ([], 0);
                    _phaseOrder.Add(_phase);
                }
                phase.Ms.Add(took);
                _phases[_phase] = (phase.Ms, phase.Failed + (failed ? 1 : 0));
                _unseen += unseen ? 1 : 0;
                Add(_served, version);
                if (failed)
                {
                    Add(_failed, version);
                    Add(_failures, $"{status} {version}");
                }
            }
            next += interval;
            var wait = next - _clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private const string Stopped = "stopped";

    /// <summary>The next replica in rotation, round robin; when none is, the next one anyway (its answer says why).</summary>
    private string NextReplica()
    {
        var start = (int)(Interlocked.Increment(ref _next) % _replicas.Length);
        for (var i = 0; i < _replicas.Length; i++)
        {
            var candidate = (start + i) % _replicas.Length;
            if (Volatile.Read(ref _inRotation[candidate]))
            {
                return _replicas[candidate];
            }
        }
        return _replicas[start];
    }

    private async Task ProbeAsync()
    {
        using var timer = new PeriodicTimer(ProbeInterval);
        try
        {
            do
            {
                await Task.WhenAll(_replicas.Select(async (replica, i) =>
                {
                    bool ready;
                    try
                    {
                        using var probe = new CancellationTokenSource(ProbeInterval * 5);
                        using var linked = CancellationTokenSource.CreateLinkedTokenSource(probe.Token, _stop.Token);
                        using var response = await _http.GetAsync($"{replica}/v2/health/ready", linked.Token);
                        ready = response.IsSuccessStatusCode;
                    }
                    catch (Exception error) when (error is HttpRequestException or TaskCanceledException)
                    {
                        ready = false;
                    }
                    Volatile.Write(ref _inRotation[i], ready);
                }));
            }
            while (await timer.WaitForNextTickAsync(_stop.Token));
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
    }

    private async Task<(string Version, string Status, bool Failed)> SendAsync(JsonObject body)
    {
        try
        {
            using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            using var response = await _http.PostAsync(NextReplica() + _path, content, _stop.Token);
            var version = response.Headers.TryGetValues("x-lepton-version", out var values) ? values.First() : UnknownVersion;
            var text = await response.Content.ReadAsStringAsync(_stop.Token);
            return (version, ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture), CallerFailed((int)response.StatusCode, text));
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            return (UnknownVersion, Stopped, false);
        }
        catch (Exception error) when (error is HttpRequestException or TaskCanceledException)
        {
            return (UnknownVersion, "transport", true);
        }
    }

    /// <summary>Whether a caller got nothing usable: a non-2xx status, or outputs that are not all finite numbers.</summary>
    public static bool CallerFailed(int status, string body)
    {
        if (status is < 200 or > 299)
        {
            return true;
        }
        try
        {
            if (JsonNode.Parse(body)?["outputs"] is not JsonArray { Count: > 0 } outputs)
            {
                return true;
            }
            return !outputs.All(o => o?["data"] is JsonArray data && data.All(Finite));
        }
        catch (JsonException)
        {
            return true;
        }
    }

    private static bool Finite(JsonNode? value) => value switch
    {
        JsonArray nested => nested.All(Finite),
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => double.IsFinite(v.GetValue<double>()),
        _ => false,
    };

    private static void Add(Dictionary<string, long> counts, string key) => counts[key] = counts.GetValueOrDefault(key) + 1;

    public LoadSummary Summary()
    {
        lock (_lock)
        {
            return new LoadSummary(_sent, _failed.Values.Sum(), new Dictionary<string, long>(_served), new Dictionary<string, long>(_failed), _unseen, _clock.Elapsed, new Dictionary<string, long>(_failures));
        }
    }

    /// <summary>Per phase, in the order the phases began: requests, failures, and the callers' p50/p99 latency.</summary>
    public IReadOnlyList<PhaseLatency> Phases()
    {
        lock (_lock)
        {
            return [.. _phaseOrder.Select(name =>
            {
                var (ms, failed) = _phases[name];
                var sorted = ms.Order().ToArray();
                return new PhaseLatency(name, sorted.Length, failed, SortedArrayStatistics.Quantile(sorted, 0.5), SortedArrayStatistics.Quantile(sorted, 0.99));
            })];
        }
    }

    public async Task<LoadSummary> StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_tasks);
        return Summary();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync();
        }
        _http.Dispose();
        _stop.Dispose();
    }
}
