using System.Diagnostics.Metrics;
using Prometheus;

namespace Lepton.GpuWorker.Observability;

/// <summary>How one request ended, as counted in <c>lepton_worker_requests_total{outcome}</c>.</summary>
public enum Outcome
{
    Ok,
    Error,
    Nonfinite,
    Invalid,
}

/// <summary>
/// The worker's Prometheus instruments (prometheus-net, in a registry per host: tests run several
/// hosts in one process) and its OpenTelemetry ones (exported to Azure Monitor when configured).
/// Per-version children are bound once (<see cref="For"/>), so the request path only increments.
/// </summary>
public sealed class WorkerMetrics : IDisposable
{
    public const string MeterName = "Lepton.GpuWorker";

    private static readonly double[] LatencyBuckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];
    private static readonly double[] BatchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

    private readonly Counter _requests;
    private readonly Histogram _latency;
    private readonly Histogram _queue;
    private readonly Histogram _batchRows;
    private readonly Counter _compute;
    private readonly Gauge _ready;
    private readonly Counter _shadowDropped;
    private readonly Counter _refusals;
    private readonly Gauge _storageAvailable;
    private readonly Gauge _rollupsBuffered;
    private readonly Counter _rollupsDropped;
    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _otelRequests;
    private readonly Histogram<double> _otelLatency;

    public WorkerMetrics(string replica, string provider)
    {
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        // No exemplars: recording one takes a lock per observation on the request path.
        factory.ExemplarBehavior = new ExemplarBehavior { DefaultExemplarProvider = static (_, _) => Exemplar.None };
        _requests = factory.CreateCounter("lepton_worker_requests_total", "Inference requests by outcome", "model", "version", "outcome");
        _latency = factory.CreateHistogram("lepton_worker_request_duration_seconds", "Time in the worker per request",
            new HistogramConfiguration { LabelNames = ["model", "version"], Buckets = LatencyBuckets });
        _queue = factory.CreateHistogram("lepton_worker_queue_seconds", "Time a request waited for its batch",
            new HistogramConfiguration { LabelNames = ["model", "version"], Buckets = LatencyBuckets });
        _batchRows = factory.CreateHistogram("lepton_worker_batch_rows", "Rows per batch run",
            new HistogramConfiguration { LabelNames = ["model", "version"], Buckets = BatchBuckets });
        _compute = factory.CreateCounter("lepton_worker_compute_seconds_total", "ONNX Runtime time", "model", "version");
        _ready = factory.CreateGauge("lepton_worker_version_ready", "1 when the version is loaded and warm", "model", "version");
        _shadowDropped = factory.CreateCounter("lepton_worker_shadow_dropped_total", "Shadow copies skipped because too many were running", "model");
        _refusals = factory.CreateCounter("lepton_worker_auth_refusals_total", "Requests refused by authentication or authorization (never counted against a version)", "reason", "transport");
        _storageAvailable = factory.CreateGauge("lepton_worker_storage_available", "1 while storage answers the background loops; 0 during an outage (serving goes on from the last known state)");
        _storageAvailable.Set(1);
        _rollupsBuffered = factory.CreateGauge("lepton_worker_rollup_windows_buffered", "Rollup windows held in memory: the current ones and those not yet written");
        _rollupsDropped = factory.CreateCounter("lepton_worker_rollup_windows_dropped_total", "Unwritten rollup windows dropped, oldest first, because storage was away longer than the buffer holds");
        factory.CreateGauge("lepton_worker_info", "Replica and execution provider", "replica", "provider").WithLabels(replica, provider).Set(1);
        _otelRequests = _meter.CreateCounter<long>("lepton.worker.requests", description: "Inference requests by outcome");
        _otelLatency = _meter.CreateHistogram<double>("lepton.worker.request_duration", unit: "ms", description: "Time in the worker per request");
    }

    /// <summary>The Prometheus registry <c>/metrics</c> renders.</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>Instruments bound to one version.</summary>
    public VersionInstruments For(string model, string version) => new(this, model, version);

    public void ShadowDropped(string model) => _shadowDropped.WithLabels(model).Inc();

    public void Refused(string reason, string transport) => _refusals.WithLabels(reason, transport).Inc();

    /// <summary>What the rollup flusher saw this tick: whether storage answers, windows held, windows just dropped.</summary>
    public void Reporting(bool storageAvailable, int buffered, int dropped)
    {
        _storageAvailable.Set(storageAvailable ? 1 : 0);
        _rollupsBuffered.Set(buffered);
        if (dropped > 0)
        {
            _rollupsDropped.Inc(dropped);
        }
    }

    /// <summary>Rollup windows dropped since start.</summary>
    public double RollupsDropped => _rollupsDropped.Value;

    public void Dispose() => _meter.Dispose();

    /// <summary>One version's pre-bound children.</summary>
    public sealed class VersionInstruments
    {
        private readonly WorkerMetrics _owner;
        private readonly Counter.Child[] _outcomes;
        private readonly Histogram.Child _latency;
        private readonly Histogram.Child _queue;
        private readonly Histogram.Child _batchRows;
        private readonly Counter.Child _compute;
        private readonly Gauge.Child _ready;
        private readonly KeyValuePair<string, object?>[][] _tags;

        internal VersionInstruments(WorkerMetrics owner, string model, string version)
        {
            _owner = owner;
            _outcomes = Enum.GetValues<Outcome>().Select(o => owner._requests.WithLabels(model, version, Label(o))).ToArray();
            _latency = owner._latency.WithLabels(model, version);
            _queue = owner._queue.WithLabels(model, version);
            _batchRows = owner._batchRows.WithLabels(model, version);
            _compute = owner._compute.WithLabels(model, version);
            _ready = owner._ready.WithLabels(model, version);
            _tags = Enum.GetValues<Outcome>()
                .Select(o => new KeyValuePair<string, object?>[] { new("model", model), new("version", version), new("outcome", Label(o)) })
                .ToArray();
        }

        private static string Label(Outcome outcome) => outcome switch
        {
            Outcome.Ok => "ok",
            Outcome.Error => "error",
            Outcome.Nonfinite => "nonfinite",
            _ => "invalid",
        };

        public void Request(Outcome outcome, double seconds)
        {
            _outcomes[(int)outcome].Inc();
            _latency.Observe(seconds);
            if (_owner._otelRequests.Enabled)
            {
                _owner._otelRequests.Add(1, _tags[(int)outcome]);
                _owner._otelLatency.Record(seconds * 1000.0, _tags[(int)outcome]);
            }
        }

        public void Batch(int rows, TimeSpan[] queueTimes)
        {
            _batchRows.Observe(rows);
            foreach (var wait in queueTimes)
            {
                _queue.Observe(wait.TotalSeconds);
            }
        }

        public void Compute(double seconds) => _compute.Inc(seconds);

        public void Ready(bool ready) => _ready.Set(ready ? 1 : 0);
    }
}
