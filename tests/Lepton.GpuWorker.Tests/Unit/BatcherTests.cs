using System.Collections.Concurrent;
using Lepton.GpuWorker.Serving;

namespace Lepton.GpuWorker.Tests.Unit;

/// <summary>The dynamic batcher on its own: grouping, limits, delays, failures, closing.</summary>
public sealed class BatcherTests
{
    /// <summary>A batch function that records each batch and can be held until released (a signal, not a sleep).</summary>
    private sealed class Recorder
    {
        public ConcurrentQueue<(string Key, int Value)[]> Batches { get; } = new();

        public TaskCompletionSource Gate { get; set; } = Open();

        public int? FailOn { get; init; }

        public Func<int, int>? ResultCount { get; init; }

        public static TaskCompletionSource Open()
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            gate.SetResult();
            return gate;
        }

        public async ValueTask<IReadOnlyList<int>> Run(IReadOnlyList<(string Key, int Value)> items)
        {
            Batches.Enqueue([.. items]);
            await Gate.Task;
            if (FailOn is { } bad && items.Any(i => i.Value == bad))
            {
                throw new InvalidOperationException("boom");
            }
            var results = items.Select(i => i.Value * 10).ToList();
            return ResultCount is { } count ? results.Take(count(items.Count)).ToList() : results;
        }
    }

    private static DynamicBatcher<(string Key, int Value), int> Batcher(Recorder recorder, int max, double delayMs, int concurrent = 1, Func<(string Key, int Value), int>? rows = null) =>
        new(recorder.Run, new BatcherOptions(max, TimeSpan.FromMilliseconds(delayMs), concurrent), rowsOf: rows, keyOf: i => i.Key);

    [Fact(Timeout = 60_000)]
    public async Task Concurrent_items_share_batches_up_to_the_limit_and_each_gets_its_own_result()
    {
        var ct = TestContext.Current.CancellationToken;
        var recorder = new Recorder { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var batcher = Batcher(recorder, 4, 50);
        var first = batcher.SubmitAsync(("k", 0)).AsTask(); // idle: runs at once and holds the only slot
        var rest = Enumerable.Range(1, 9).Select(i => batcher.SubmitAsync(("k", i)).AsTask()).ToList();
        recorder.Gate.SetResult();
        Assert.Equal(0, await first.WaitAsync(ct));
        Assert.Equal(Enumerable.Range(1, 9).Select(i => i * 10), await Task.WhenAll(rest).WaitAsync(ct));
        var sizes = recorder.Batches.Select(b => b.Length).ToList();
        Assert.Equal(1, sizes[0]);
        Assert.All(sizes, s => Assert.InRange(s, 1, 4));
        Assert.True(sizes.Count <= 4, string.Join(",", sizes));
        Assert.Equal(Enumerable.Range(0, 10), recorder.Batches.SelectMany(b => b.Select(i => i.Value)));
    }

    [Fact(Timeout = 60_000)]
    public async Task Only_items_with_the_same_key_share_a_batch()
    {
        var ct = TestContext.Current.CancellationToken;
        var recorder = new Recorder { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var batcher = Batcher(recorder, 8, 20);
        var busy = batcher.SubmitAsync(("z", 0)).AsTask();
        var items = new[] { ("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5) };
        var results = items.Select(i => batcher.SubmitAsync(i).AsTask()).ToList();
        recorder.Gate.SetResult();
        await busy.WaitAsync(ct);
        Assert.Equal(new[] { 10, 20, 30, 40, 50 }, await Task.WhenAll(results).WaitAsync(ct));
        Assert.All(recorder.Batches, b => Assert.Single(b.Select(i => i.Key).Distinct()));
        Assert.Contains(recorder.Batches, b => b.Select(i => i.Value).SequenceEqual([1, 3, 5]));
        Assert.Contains(recorder.Batches, b => b.Select(i => i.Value).SequenceEqual([2, 4]));
    }

    [Fact]
    public async Task An_idle_batcher_runs_a_lone_item_at_once_on_the_callers_thread()
    {
        var recorder = new Recorder();
        await using var batcher = Batcher(recorder, 64, 60_000);
        var result = batcher.SubmitAsync(("k", 7));
        // Completed synchronously: no queue, no wait for company, no max delay.
        Assert.True(result.IsCompletedSuccessfully);
        Assert.Equal(70, await result);
    }

    [Fact(Timeout = 60_000)]
    public async Task Items_arriving_while_busy_wait_at_most_the_max_delay_for_company()
    {
        var ct = TestContext.Current.CancellationToken;
        var recorder = new Recorder { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var batcher = Batcher(recorder, 64, 50, concurrent: 2);
        var busy = batcher.SubmitAsync(("k", 0)).AsTask(); // holds one of two slots
        var started = DateTime.UtcNow;
        var waiter = batcher.SubmitAsync(("k", 7)).AsTask();
        // The second slot is free: it runs once its max delay expires, while the first is still held.
        while (recorder.Batches.Count < 2)
        {
            await Task.Yield();
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10), "the waiting item never started");
        }
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(45));
        recorder.Gate.SetResult();
        Assert.Equal(70, await waiter.WaitAsync(ct));
        Assert.Equal(0, await busy.WaitAsync(ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task Rows_count_towards_the_limit_and_an_oversized_item_runs_alone()
    {
        var ct = TestContext.Current.CancellationToken;
        var recorder = new Recorder { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var batcher = Batcher(recorder, 4, 10, rows: i => i.Value);
        var busy = batcher.SubmitAsync(("k", 1)).AsTask();
        var results = new[] { 3, 6, 1, 2 }.Select(n => batcher.SubmitAsync(("k", n)).AsTask()).ToList();
        recorder.Gate.SetResult();
        await busy.WaitAsync(ct);
        Assert.Equal(new[] { 30, 60, 10, 20 }, await Task.WhenAll(results).WaitAsync(ct));
        var rows = recorder.Batches.Skip(1).Select(b => b.Sum(i => i.Value)).ToList();
        Assert.Equal([3, 6, 3], rows);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_failed_batch_fails_each_of_its_waiters_and_no_other()
    {
        var ct = TestContext.Current.CancellationToken;
        var recorder = new Recorder { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), FailOn = 2 };
        await using var batcher = Batcher(recorder, 2, 10);
        var submitted = Enumerable.Range(0, 4).Select(i => batcher.SubmitAsync(("k", i)).AsTask()).ToList();
        recorder.Gate.SetResult();
        var outcomes = await Task.WhenAll(submitted.Select(async t =>
        {
            try
            {
                return (object)await t;
            }
            catch (InvalidOperationException error)
            {
                return error;
            }
        })).WaitAsync(ct);
        // Batches: [0] alone (idle), then [1, 2] which fails, then [3].
        Assert.Equal(0, outcomes[0]);
        Assert.IsType<InvalidOperationException>(outcomes[1]);
        Assert.IsType<InvalidOperationException>(outcomes[2]);
        Assert.Equal(30, outcomes[3]);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_wrong_number_of_results_fails_the_whole_batch()
    {
        var ct = TestContext.Current.CancellationToken;
        var recorder = new Recorder { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), ResultCount = n => n - 1 };
        await using var batcher = Batcher(recorder, 3, 10);
        var submitted = Enumerable.Range(0, 3).Select(i => batcher.SubmitAsync(("k", i)).AsTask()).ToList();
        recorder.Gate.SetResult();
        foreach (var task in submitted)
        {
            await Assert.ThrowsAsync<BatchFailedException>(() => task.WaitAsync(ct));
        }
        var error = await Assert.ThrowsAsync<BatchFailedException>(() => submitted[1]);
        Assert.Contains("batch of 2 requests returned 1 results", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Batches_grow_while_all_slots_are_busy()
    {
        var ct = TestContext.Current.CancellationToken;
        var recorder = new Recorder { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        await using var batcher = Batcher(recorder, 32, 0);
        var first = batcher.SubmitAsync(("k", 0)).AsTask();
        var rest = Enumerable.Range(1, 8).Select(i => batcher.SubmitAsync(("k", i)).AsTask()).ToList();
        recorder.Gate.SetResult();
        Assert.Equal(0, await first.WaitAsync(ct));
        Assert.Equal(Enumerable.Range(1, 8).Select(i => i * 10), await Task.WhenAll(rest).WaitAsync(ct));
        Assert.Equal([1, 8], recorder.Batches.Select(b => b.Length));
    }

    [Fact(Timeout = 60_000)]
    public async Task Closing_runs_what_is_queued_and_later_submits_still_work()
    {
        var ct = TestContext.Current.CancellationToken;
        var recorder = new Recorder { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var batcher = Batcher(recorder, 8, 60_000);
        var busy = batcher.SubmitAsync(("k", 9)).AsTask();
        var queued = Enumerable.Range(0, 3).Select(i => batcher.SubmitAsync(("k", i)).AsTask()).ToList();
        var closing = batcher.DisposeAsync().AsTask();
        recorder.Gate.SetResult();
        await closing.WaitAsync(ct);
        Assert.Equal(new[] { 0, 10, 20 }, await Task.WhenAll(queued).WaitAsync(ct));
        Assert.Equal(90, await busy.WaitAsync(ct));
        Assert.Equal(50, await batcher.SubmitAsync(("k", 5)));
        Assert.Equal(0, batcher.Queued);
    }

    [Theory]
    [InlineData(0, 0.0, 1)]
    [InlineData(1, -1.0, 1)]
    [InlineData(1, 0.0, 0)]
    public void Bad_limits_are_refused(int max, double delayMs, int concurrent)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatcherOptions(max, TimeSpan.FromMilliseconds(delayMs), concurrent).Validate());
    }
}
