using Lepton.GpuWorker.Observability;

namespace Lepton.GpuWorker.Serving;

/// <summary>
/// One ready version: its ONNX session behind a dynamic batcher, with leases so that unloading it
/// never cuts a request short: the session is disposed only after the last lease is returned.
/// </summary>
public sealed class ServedVersion : IAsyncDisposable
{
    // Moving average of a batch's ONNX Runtime time: decides whether queued batches are cheap
    // enough to run on the dispatching thread.
    private const double Smoothing = 0.1;

    private readonly double _inlineBelowMs;
    private readonly InferenceThreads _threads;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private double _averageBatchMs;
    private int _leases;
    private int _retired;

    public ServedVersion(
        OnnxVersion onnx,
        WorkerMetrics.VersionInstruments metrics,
        TimeSpan maxDelay,
        int maxConcurrentBatches,
        double inlineBelowMs,
        double warmComputeMs,
        long footprint,
        TimeProvider time,
        InferenceThreads threads)
    {
        _threads = threads;
        Onnx = onnx;
        Metrics = metrics;
        Footprint = footprint;
        _inlineBelowMs = inlineBelowMs;
        _averageBatchMs = warmComputeMs;
        Batcher = new DynamicBatcher<BatchItem, ItemResult>(
            RunBatchAsync,
            new BatcherOptions(onnx.MaxBatchSize, maxDelay, maxConcurrentBatches),
            rowsOf: item => item.Rows,
            keyOf: item => item.Key,
            onBatch: info =>
            {
                metrics.Batch(info.Rows, info.QueueTimes);
                Statistics.Queued(info.QueueTimes);
            },
            time: time);
    }

    public OnnxVersion Onnx { get; }

    public string Model => Onnx.Model;

    public string Version => Onnx.Version;

    public long Footprint { get; }

    public WorkerMetrics.VersionInstruments Metrics { get; }

    /// <summary>Counts for Triton's statistics extension.</summary>
    public VersionStatistics Statistics { get; } = new();

    /// <summary>The moving average of a batch's ONNX Runtime time (ms), seeded by the warm-up run.</summary>
    public double AverageBatchMs => Volatile.Read(ref _averageBatchMs);

    public DynamicBatcher<BatchItem, ItemResult> Batcher { get; }

    /// <summary>Runs one request's item, batched with concurrent ones.</summary>
    public ValueTask<ItemResult> InferAsync(BatchItem item) => Batcher.SubmitAsync(item);

    /// <summary>Runs a shadow copy on the shadow thread, outside the batcher: it never delays a caller's run.</summary>
    public async Task<ItemResult> RunShadowAsync(BatchItem item)
    {
        var results = await _threads.RunShadowAsync(() => Onnx.RunBatch([item]));
        Metrics.Compute(results[0].ComputeMs / 1000.0);
        Statistics.Executed(results[0].ComputeMs);
        return results[0];
    }

    /// <summary>Whether batches run on the caller's thread (cheaper than a hand-off) rather than an inference thread.</summary>
    public bool RunsInline => Volatile.Read(ref _averageBatchMs) < _inlineBelowMs;

    private ValueTask<IReadOnlyList<ItemResult>> RunBatchAsync(IReadOnlyList<BatchItem> items) =>
        RunsInline ? ValueTask.FromResult<IReadOnlyList<ItemResult>>(Account(Onnx.RunBatch(items))) : new ValueTask<IReadOnlyList<ItemResult>>(RunOnThreadAsync(items));

    private async Task<IReadOnlyList<ItemResult>> RunOnThreadAsync(IReadOnlyList<BatchItem> items) =>
        Account(await _threads.RunAsync(() => Onnx.RunBatch(items)));

    private ItemResult[] Account(ItemResult[] results)
    {
        var batchMs = 0.0;
        foreach (var result in results)
        {
            batchMs += result.ComputeMs;
        }
        Volatile.Write(ref _averageBatchMs, _averageBatchMs + (Smoothing * (batchMs - _averageBatchMs)));
        Metrics.Compute(batchMs / 1000.0);
        Statistics.Executed(batchMs);
        return results;
    }

    /// <summary>Takes a lease for one request; <c>false</c> once the version is being unloaded.</summary>
    public bool TryLease()
    {
        Interlocked.Increment(ref _leases);
        if (Volatile.Read(ref _retired) == 0)
        {
            return true;
        }
        Return();
        return false;
    }

    public void Return()
    {
        if (Interlocked.Decrement(ref _leases) == 0 && Volatile.Read(ref _retired) == 1)
        {
            _drained.TrySetResult();
        }
    }

    /// <summary>Refuses new leases, waits for the ones out, then closes the batcher and the session.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _retired, 1) == 1)
        {
            return;
        }
        if (Volatile.Read(ref _leases) == 0)
        {
            _drained.TrySetResult();
        }
        await _drained.Task;
        await Batcher.DisposeAsync();
        Metrics.Ready(false);
        Onnx.Dispose();
    }
}
