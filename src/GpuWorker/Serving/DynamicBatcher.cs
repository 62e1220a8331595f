using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Lepton.GpuWorker.Serving;

/// <summary>Limits of a <see cref="DynamicBatcher{TIn, TOut}"/>.</summary>
/// <param name="MaxBatchSize">Rows per batch; an item larger than this runs alone.</param>
/// <param name="MaxDelay">How long the oldest queued item waits for company while a batch slot is busy.</param>
/// <param name="MaxConcurrentBatches">Batches running at once; while all are busy the queue keeps filling, so batches grow with load.</param>
public sealed record BatcherOptions(int MaxBatchSize, TimeSpan MaxDelay, int MaxConcurrentBatches = 1)
{
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchSize, 1, nameof(MaxBatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxDelay, TimeSpan.Zero, nameof(MaxDelay));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConcurrentBatches, 1, nameof(MaxConcurrentBatches));
    }
}

/// <summary>What the batcher tells observers about each batch it ran (for metrics).</summary>
/// <param name="Items">Requests in the batch.</param>
/// <param name="Rows">Rows over all of them.</param>
/// <param name="QueueTimes">How long each request waited before its batch started.</param>
public readonly record struct BatchInfo(int Items, int Rows, TimeSpan[] QueueTimes);

/// <summary>
/// Groups concurrent submissions into batches; knows nothing of ONNX or HTTP.
/// </summary>
/// <remarks>
/// Callers <see cref="SubmitAsync"/> an item and get that item's result. An idle batcher (nothing
/// running, nothing queued) runs the item at once on the caller's own thread: waiting for company
/// only pays off when there is concurrent work, so a lone caller never pays <c>MaxDelay</c>.
/// Otherwise the item goes into a <see cref="Channel{T}"/> with a <see cref="TaskCompletionSource{T}"/>;
/// one dispatch loop keeps a queue per compatibility key (only items with equal keys share a batch)
/// and starts a batch when a slot is free and the queue holds <c>MaxBatchSize</c> rows, or its oldest
/// item has waited <c>MaxDelay</c>, or nothing else is running. The batch function gets the items in
/// order and must return one result per item: a shorter or longer answer, or an exception, fails
/// every waiter of that batch and no other. After <see cref="DisposeAsync"/> queued items still run
/// and later submits run alone, so a version being unloaded never fails a request.
/// </remarks>
public sealed class DynamicBatcher<TIn, TOut> : IAsyncDisposable
{
    private static readonly TimeSpan[] NoWait = [TimeSpan.Zero];

    private readonly Func<IReadOnlyList<TIn>, ValueTask<IReadOnlyList<TOut>>> _runBatch;
    private readonly BatcherOptions _options;
    private readonly Func<TIn, int> _rowsOf;
    private readonly Func<TIn, string> _keyOf;
    private readonly Action<BatchInfo>? _onBatch;
    private readonly TimeProvider _time;
    private readonly Channel<Pending?> _inbox = Channel.CreateUnbounded<Pending?>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<Task, byte> _batches = new();
    private readonly Task _dispatcher;
    private int _running;
    private int _queued;
    private volatile bool _closed;

    public DynamicBatcher(
        Func<IReadOnlyList<TIn>, ValueTask<IReadOnlyList<TOut>>> runBatch,
        BatcherOptions options,
        Func<TIn, int>? rowsOf = null,
        Func<TIn, string>? keyOf = null,
        Action<BatchInfo>? onBatch = null,
        TimeProvider? time = null)
    {
        options.Validate();
        _runBatch = runBatch;
        _options = options;
        _rowsOf = rowsOf ?? (_ => 1);
        _keyOf = keyOf ?? (_ => "");
        _onBatch = onBatch;
        _time = time ?? TimeProvider.System;
        _dispatcher = Task.Run(DispatchAsync);
    }

    public BatcherOptions Options => _options;

    /// <summary>Items waiting for a batch.</summary>
    public int Queued => Volatile.Read(ref _queued);

    /// <summary>Queues <paramref name="item"/> (or runs it at once when idle) and returns its result or its batch's exception.</summary>
    public ValueTask<TOut> SubmitAsync(TIn item)
    {
        if (_closed)
        {
            return RunAloneAsync(item, countSlot: false);
        }
        if (Interlocked.CompareExchange(ref _running, 1, 0) == 0)
        {
            if (Volatile.Read(ref _queued) == 0)
            {
                return RunAloneAsync(item, countSlot: true);
            }
            Release();
        }
        var pending = new Pending(item, _rowsOf(item), _keyOf(item), _time.GetTimestamp());
        Interlocked.Increment(ref _queued);
        if (!_inbox.Writer.TryWrite(pending))
        {
            Interlocked.Decrement(ref _queued);
            return RunAloneAsync(item, countSlot: false); // closed in between
        }
        return new ValueTask<TOut>(pending.Completion.Task);
    }

    private async ValueTask<TOut> RunAloneAsync(TIn item, bool countSlot)
    {
        try
        {
            _onBatch?.Invoke(new BatchInfo(1, _rowsOf(item), NoWait));
            var results = await _runBatch([item]);
            if (results.Count != 1)
            {
                throw Mismatch(1, results.Count);
            }
            return results[0];
        }
        finally
        {
            if (countSlot)
            {
                Release();
            }
        }
    }

    private void Release()
    {
        Interlocked.Decrement(ref _running);
        // Wakes the dispatcher when something waits: a free slot may start a queued batch (at once
        // if now idle). An item queued after this check wakes the dispatcher itself.
        if (Volatile.Read(ref _queued) > 0 || _closed)
        {
            _inbox.Writer.TryWrite(null);
        }
    }

    private async Task DispatchAsync()
    {
        var queues = new Dictionary<string, Queue<Pending>>(StringComparer.Ordinal);
        var rows = new Dictionary<string, int>(StringComparer.Ordinal);
        var reader = _inbox.Reader;
        Task<bool>? waitForMail = null;
        while (true)
        {
            while (reader.TryRead(out var mail))
            {
                if (mail is not null)
                {
                    if (!queues.TryGetValue(mail.Key, out var queue))
                    {
                        queues[mail.Key] = queue = new Queue<Pending>();
                        rows[mail.Key] = 0;
                    }
                    queue.Enqueue(mail);
                    rows[mail.Key] += mail.Rows;
                }
            }
            if (queues.Count == 0)
            {
                if (_closed)
                {
                    return;
                }
                waitForMail ??= reader.WaitToReadAsync().AsTask();
                await waitForMail;
                waitForMail = null;
                continue;
            }
            // Oldest queue first, so no key starves behind a busy one.
            var key = queues.MinBy(q => q.Value.Peek().Enqueued).Key;
            var head = queues[key].Peek();
            var waited = _time.GetElapsedTime(head.Enqueued);
            var running = Volatile.Read(ref _running);
            var slotFree = running < _options.MaxConcurrentBatches;
            var due = running == 0 || rows[key] >= _options.MaxBatchSize || waited >= _options.MaxDelay || _closed;
            if (slotFree && due)
            {
                StartBatch(key, queues, rows);
                continue;
            }
            // Wait for mail (a new item, or a freed slot: Release writes an empty letter), or,
            // with a slot free, until the oldest item is due.
            waitForMail ??= reader.WaitToReadAsync().AsTask();
            if (slotFree)
            {
                using var timer = new CancellationTokenSource();
                var delay = Task.Delay(_options.MaxDelay - waited, _time, timer.Token);
                if (await Task.WhenAny(waitForMail, delay) == waitForMail)
                {
                    waitForMail = null;
                    await timer.CancelAsync();
                }
            }
            else
            {
                await waitForMail;
                waitForMail = null;
            }
        }
    }

    private void StartBatch(string key, Dictionary<string, Queue<Pending>> queues, Dictionary<string, int> rows)
    {
        var queue = queues[key];
        var batch = new List<Pending>();
        var taken = 0;
        // Whole items in arrival order; an item larger than the limit runs on its own.
        while (queue.Count > 0 && (batch.Count == 0 || taken + queue.Peek().Rows <= _options.MaxBatchSize))
        {
            var item = queue.Dequeue();
            batch.Add(item);
            taken += item.Rows;
        }
        rows[key] -= taken;
        if (queue.Count == 0)
        {
            queues.Remove(key);
            rows.Remove(key);
        }
        Interlocked.Add(ref _queued, -batch.Count);
        Interlocked.Increment(ref _running);
        // Started, not awaited: a batch function that completes synchronously (a cheap run) runs on
        // this loop's thread; one that goes asynchronous (a heavy run handed to its own thread)
        // frees the loop at once to dispatch the next batch.
        var run = RunAsync(batch, taken);
        if (!run.IsCompleted)
        {
            _batches[run] = 0;
            _ = run.ContinueWith(t => _batches.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    private async Task RunAsync(List<Pending> batch, int rows)
    {
        try
        {
            if (_onBatch is not null)
            {
                var waits = new TimeSpan[batch.Count];
                for (var i = 0; i < batch.Count; i++)
                {
                    waits[i] = _time.GetElapsedTime(batch[i].Enqueued);
                }
                _onBatch(new BatchInfo(batch.Count, rows, waits));
            }
            IReadOnlyList<TOut> results;
            try
            {
                var items = new TIn[batch.Count];
                for (var i = 0; i < batch.Count; i++)
                {
                    items[i] = batch[i].Item;
                }
                results = await _runBatch(items);
                if (results.Count != batch.Count)
                {
                    throw Mismatch(batch.Count, results.Count);
                }
            }
            catch (Exception error)
            {
                // Every waiter of this batch must learn of the failure; no other batch is touched.
                foreach (var pending in batch)
                {
                    pending.Completion.TrySetException(error);
                }
                return;
            }
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i].Completion.TrySetResult(results[i]);
            }
        }
        finally
        {
            Release();
        }
    }

    private static BatchFailedException Mismatch(int items, int results) =>
        new($"batch of {items} requests returned {results} results; every request of the batch failed");

    /// <summary>Runs what is queued, waits for running batches; later submits run alone.</summary>
    public async ValueTask DisposeAsync()
    {
        _closed = true;
        _inbox.Writer.TryWrite(null);
        await _dispatcher;
        // A submit that raced with closing may have queued after the loop ended: run it alone.
        _inbox.Writer.TryComplete();
        while (_inbox.Reader.TryRead(out var late))
        {
            if (late is not null)
            {
                Interlocked.Decrement(ref _queued);
                try
                {
                    late.Completion.TrySetResult(await RunAloneAsync(late.Item, countSlot: false));
                }
                catch (Exception error)
                {
                    late.Completion.TrySetException(error);
                }
            }
        }
        await Task.WhenAll(_batches.Keys);
    }

    private sealed class Pending(TIn item, int rows, string key, long enqueued)
    {
        public TIn Item { get; } = item;

        public int Rows { get; } = rows;

        public string Key { get; } = key;

        public long Enqueued { get; } = enqueued;

        public TaskCompletionSource<TOut> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
