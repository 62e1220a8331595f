using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lepton.Shared.Models;

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

/// <summary>
/// Callers of the worker's Open Inference Protocol API for the demo and the end-to-end tests: a few
/// loops send <c>POST /v2/models/{model}/infer</c> at a target rate with rows from the dataset and a
/// slice outside the training range (features above the maximum), and record which version served
/// each request and whether the caller got a usable answer. A failure is a transport error, a
/// non-2xx status, or outputs that are not finite numbers (a NaN prediction is as useless to a
/// caller as an error).
/// </summary>
public sealed class LoadGenerator : IAsyncDisposable
{
    public const string UnknownVersion = "?";

    private readonly HttpClient _http;
    private readonly string _url;
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
    private long _sent;
    private long _unseen;

    public LoadGenerator(string workerUrl, string model, NumericArray rows, float featureMax, string? key, double unseenFraction = 0.2, double requestsPerSecond = 60, int loops = 4)
    {
        _http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        if (key is not null)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        _url = $"{workerUrl.TrimEnd('/')}/v2/models/{Uri.EscapeDataString(model)}/infer";
        _rows = rows;
        _featureMax = featureMax;
        _unseenFraction = unseenFraction;
        _requestsPerSecond = requestsPerSecond;
        _loops = loops;
    }

    public LoadGenerator Start()
    {
        _clock.Start();
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
            var (version, status, failed) = await SendAsync(body);
            lock (_lock)
            {
                _sent++;
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

    private async Task<(string Version, string Status, bool Failed)> SendAsync(JsonObject body)
    {
        try
        {
            using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            using var response = await _http.PostAsync(_url, content, _stop.Token);
            var version = response.Headers.TryGetValues("x-lepton-version", out var values) ? values.First() : UnknownVersion;
            var text = await response.Content.ReadAsStringAsync(_stop.Token);
            return (version, ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture), CallerFailed((int)response.StatusCode, text));
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            return (UnknownVersion, "stopped", false);
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
