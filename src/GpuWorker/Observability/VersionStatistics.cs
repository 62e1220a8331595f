namespace Lepton.GpuWorker.Observability;

/// <summary>Triton's statistics extension for one loaded version (since it was loaded).</summary>
public sealed class VersionStatistics
{
    private long _successCount;
    private long _successNs;
    private long _failCount;
    private long _failNs;
    private long _queueCount;
    private long _queueNs;
    private long _computeNs;
    private long _executions;
    private long _inferences;
    private long _lastInferenceMs;

    public long SuccessCount => Interlocked.Read(ref _successCount);

    public long SuccessNs => Interlocked.Read(ref _successNs);

    public long FailCount => Interlocked.Read(ref _failCount);

    public long FailNs => Interlocked.Read(ref _failNs);

    public long QueueCount => Interlocked.Read(ref _queueCount);

    public long QueueNs => Interlocked.Read(ref _queueNs);

    public long ComputeNs => Interlocked.Read(ref _computeNs);

    /// <summary>Batches run.</summary>
    public long Executions => Interlocked.Read(ref _executions);

    /// <summary>Rows inferred.</summary>
    public long Inferences => Interlocked.Read(ref _inferences);

    /// <summary>Unix milliseconds of the last inference; 0 = none yet.</summary>
    public long LastInferenceMs => Interlocked.Read(ref _lastInferenceMs);

    public void Succeeded(TimeSpan duration, int rows, long unixMs)
    {
        Interlocked.Increment(ref _successCount);
        Interlocked.Add(ref _successNs, (long)(duration.TotalMilliseconds * 1e6));
        Interlocked.Add(ref _inferences, rows);
        Interlocked.Exchange(ref _lastInferenceMs, unixMs);
    }

    public void Failed(TimeSpan duration)
    {
        Interlocked.Increment(ref _failCount);
        Interlocked.Add(ref _failNs, (long)(duration.TotalMilliseconds * 1e6));
    }

    public void Executed(double computeMs)
    {
        Interlocked.Increment(ref _executions);
        Interlocked.Add(ref _computeNs, (long)(computeMs * 1e6));
    }

    public void Queued(TimeSpan[] queueTimes)
    {
        foreach (var wait in queueTimes)
        {
            Interlocked.Increment(ref _queueCount);
            Interlocked.Add(ref _queueNs, (long)(wait.TotalMilliseconds * 1e6));
        }
    }
}
