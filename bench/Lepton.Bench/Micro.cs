using System.Buffers;
using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using Lepton.GpuWorker.Protocol;
using Lepton.GpuWorker.Routing;
using Lepton.GpuWorker.Serving;

namespace Lepton.Bench;

/// <summary>BenchmarkDotNet micro-benchmarks of the hot path's pure parts: router, batcher, decoders, encoder.</summary>
public static class Micro
{
    public static int Run(string[] args)
    {
        var quick = args.Contains("--quick");
        var job = quick
            ? Job.Default.WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(3).WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(100))
            : Job.ShortRun;
        var config = DefaultConfig.Instance.AddJob(job.WithId(quick ? "quick" : "short")).WithOptions(ConfigOptions.DisableOptimizationsValidator);
        var filtered = args.Where(a => a != "--quick").ToArray();
        BenchmarkSwitcher.FromTypes([typeof(DataPlaneBenchmarks), typeof(RouterBenchmarks), typeof(BatcherBenchmarks), typeof(DecoderBenchmarks)])
            .Run(filtered.Length == 0 ? ["--filter", "*"] : filtered, config);
        return 0;
    }
}

[MemoryDiagnoser]
public class RouterBenchmarks
{
    private readonly RouteTable _table = new("digits", "1.0.0", "1.1.0", 2_500, StickyHeader: "x-user");

    [Benchmark]
    public string? PickRandomBucket() => _table.Pick(Random.Shared.Next(StickyBucket.Buckets));

    [Benchmark]
    public string? PickStickyKey() => _table.Pick(StickyBucket.Of("digits", "user-1234567"));
}

[MemoryDiagnoser]
public class BatcherBenchmarks
{
    private DynamicBatcher<int, int> _batcher = null!;

    [GlobalSetup]
    public void Setup() => _batcher = new DynamicBatcher<int, int>(
        items => ValueTask.FromResult<IReadOnlyList<int>>([.. items]), new BatcherOptions(32, TimeSpan.FromMilliseconds(2), 2));

    [GlobalCleanup]
    public void Cleanup() => _batcher.DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>The common case: an idle batcher runs the item at once on the caller's thread.</summary>
    [Benchmark]
    public ValueTask<int> SubmitIdle() => _batcher.SubmitAsync(1);

    /// <summary>64 concurrent submissions: queued, batched, completed through their TaskCompletionSources.</summary>
    [Benchmark(OperationsPerInvoke = 64)]
    public async Task Submit64Concurrent()
    {
        var tasks = new Task<int>[64];
        for (var i = 0; i < tasks.Length; i++)
        {
            tasks[i] = Task.Run(() => _batcher.SubmitAsync(i).AsTask());
        }
        await Task.WhenAll(tasks);
    }
}

[MemoryDiagnoser]
public class DecoderBenchmarks
{
    private ReadOnlySequence<byte> _tinyJson;
    private ReadOnlySequence<byte> _mlpBinary;
    private int _mlpHeader;
    private ReadOnlySequence<byte> _mlpJson;
    private InferRequest _request = null!;
    private OutputSelection[] _outputs = null!;
    private readonly ArrayBufferWriter<byte> _buffer = new(1 << 16);

    [GlobalSetup]
    public void Setup()
    {
        _tinyJson = new ReadOnlySequence<byte>("""{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}"""u8.ToArray());
        var random = new Random(0);
        var x = Enumerable.Range(0, 32 * 256).Select(_ => (float)random.NextDouble()).ToArray();
        var header = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"input","shape":[32,256],"datatype":"FP32","parameters":{"binary_data_size":32768}}],"parameters":{"binary_data_output":true}}""");
        var body = new byte[header.Length + 32768];
        header.CopyTo(body, 0);
        Buffer.BlockCopy(x, 0, body, header.Length, 32768);
        _mlpBinary = new ReadOnlySequence<byte>(body);
        _mlpHeader = header.Length;
        _mlpJson = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(
            "{\"inputs\":[{\"name\":\"input\",\"shape\":[32,256],\"datatype\":\"FP32\",\"data\":[" + string.Join(",", x) + "]}]}"));
        _request = OipJsonDecoder.Decode(_tinyJson, null, 1 << 24);
        _outputs = [new OutputSelection("output", _request.Inputs[0].Data, false)];
    }

    [Benchmark]
    public int DecodeTinyJson()
    {
        using var request = OipJsonDecoder.Decode(_tinyJson, null, 1 << 24);
        return request.Inputs.Count;
    }

    [Benchmark]
    public int DecodeMlpBinary32x256()
    {
        using var request = OipJsonDecoder.Decode(_mlpBinary, _mlpHeader, 1 << 24);
        return request.Inputs.Count;
    }

    [Benchmark]
    public int DecodeMlpJson32x256()
    {
        using var request = OipJsonDecoder.Decode(_mlpJson, null, 1 << 24);
        return request.Inputs.Count;
    }

    [Benchmark]
    public int EncodeTinyJson()
    {
        _buffer.ResetWrittenCount();
        using var writer = new Utf8JsonWriter(_buffer);
        OipJsonEncoder.WriteHeader(writer, "tiny", "1.0.0", "0123456789abcdef0123456789abcdef", _outputs);
        return _buffer.WrittenCount;
    }
}
