using System.Collections.Concurrent;

namespace Lepton.GpuWorker.Serving;

/// <summary>
/// Dedicated threads for ONNX Runtime calls that take long enough to matter. A run blocks its thread
/// for its whole duration; on thread-pool threads that starves Kestrel's I/O continuations (on one
/// core, for hundreds of milliseconds until the pool injects another thread), so heavy runs go here
/// and the pool stays free to read and write sockets. Cheap runs stay on the caller's thread, where
/// a hand-off would cost more than the run.
/// </summary>
public sealed class InferenceThreads : IDisposable
{
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread[] _threads;

    public InferenceThreads(int count)
    {
        _threads = new Thread[Math.Max(1, count)];
        for (var i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(Loop) { IsBackground = true, Name = $"lepton-ort-{i}" };
            _threads[i].Start();
        }
    }

    public int Count => _threads.Length;

    /// <summary>Runs <paramref name="work"/> on one of the threads; the result comes back on the thread pool.</summary>
    public Task<T> RunAsync<T>(Func<T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _work.Add(() =>
        {
            try
            {
                completion.TrySetResult(work());
            }
            catch (Exception error)
            {
                completion.TrySetException(error);
            }
        });
        return completion.Task;
    }

    private void Loop()
    {
        foreach (var work in _work.GetConsumingEnumerable())
        {
            work();
        }
    }

    public void Dispose()
    {
        _work.CompleteAdding();
        foreach (var thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(5));
        }
        _work.Dispose();
    }
}
