using System.Collections.Concurrent;

namespace Lepton.GpuWorker.Serving;

/// <summary>
/// Dedicated threads for ONNX Runtime calls that take long enough to matter. A run blocks its thread
/// for its whole duration; on thread-pool threads that starves Kestrel's I/O continuations (on one
/// core, for hundreds of milliseconds until the pool injects another thread), so heavy runs go here
/// and the pool stays free to read and write sockets. Cheap runs stay on the caller's thread, where
/// a hand-off would cost more than the run. Shadow copies have a thread of their own, so a slow
/// shadow never makes a caller's run wait behind it.
/// </summary>
public sealed class InferenceThreads : IDisposable
{
    private readonly BlockingCollection<Action> _work = new();
    private readonly BlockingCollection<Action> _shadowWork = new();
    private readonly Thread[] _threads;

    public InferenceThreads(int count)
    {
        _threads = new Thread[Math.Max(1, count) + 1];
        for (var i = 0; i < _threads.Length; i++)
        {
            var queue = i < _threads.Length - 1 ? _work : _shadowWork;
            _threads[i] = new Thread(() => Loop(queue)) { IsBackground = true, Name = i < _threads.Length - 1 ? $"lepton-ort-{i}" : "lepton-shadow" };
            _threads[i].Start();
        }
    }

    /// <summary>Threads for callers' runs (the shadow thread aside).</summary>
    public int Count => _threads.Length - 1;

    /// <summary>Runs <paramref name="work"/> on one of the threads; the result comes back on the thread pool.</summary>
    public Task<T> RunAsync<T>(Func<T> work) => Enqueue(_work, work);

    /// <summary>Runs a shadow copy's <paramref name="work"/> on the shadow thread.</summary>
    public Task<T> RunShadowAsync<T>(Func<T> work) => Enqueue(_shadowWork, work);

    private static Task<T> Enqueue<T>(BlockingCollection<Action> queue, Func<T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        queue.Add(() =>
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

    private static void Loop(BlockingCollection<Action> queue)
    {
        foreach (var work in queue.GetConsumingEnumerable())
        {
            work();
        }
    }

    public void Dispose()
    {
        _work.CompleteAdding();
        _shadowWork.CompleteAdding();
        foreach (var thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(5));
        }
        _work.Dispose();
        _shadowWork.Dispose();
    }
}
