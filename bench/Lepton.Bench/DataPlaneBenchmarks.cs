using System.Buffers;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Lepton.Cli.Samples;
using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.DataPlane;
using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Protocol;
using Lepton.GpuWorker.Routing;
using Lepton.GpuWorker.Serving;
using Lepton.Shared.Configuration;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;

namespace Lepton.Bench;

/// <summary>
/// The worker's own work per request without Kestrel: decode a tiny JSON request, route, check,
/// batch (idle path), run ONNX Runtime, count, encode — against one raw ONNX Runtime call of the
/// same model. The difference is what Lepton adds per request inside the process.
/// </summary>
[MemoryDiagnoser]
public class DataPlaneBenchmarks
{
    private readonly ArrayBufferWriter<byte> _buffer = new(4096);
    private InferenceDataPlane _plane = null!;
    private ReadOnlySequence<byte> _body;
    private InferenceSession _raw = null!;
    private OrtValue _rawInput = null!;
    private RunOptions _runOptions = null!;
    private string _dir = "";

    /// <summary>Diagnostics: the served path in a loop for a profiler (<c>Lepton.Bench plane [seconds]</c>).</summary>
    public static async Task<int> LoopAsync(string[] args)
    {
        var bench = new DataPlaneBenchmarks();
        bench.Setup();
        var seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 10;
        // CPU time, not wall time: on a shared machine the process is descheduled at random, which
        // a wall clock would count as the step's cost.
        double Time(Action step)
        {
            using var process = System.Diagnostics.Process.GetCurrentProcess();
            for (var i = 0; i < 20_000; i++)
            {
                step();
            }
            process.Refresh();
            var cpu = process.TotalProcessorTime;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long calls = 0;
            while (clock.Elapsed.TotalSeconds < seconds / 5)
            {
                step();
                calls++;
            }
            process.Refresh();
            return (process.TotalProcessorTime - cpu).TotalMilliseconds * 1000 / calls;
        }
        var version = bench._plane.Pool.GetReady("tiny", "1.0.0")!;
        // Twice: the first pass lets tiered compilation settle, the second is the figure.
        double full = 0, raw = 0;
        for (var pass = 0; pass < 2; pass++)
        {
            Console.WriteLine(pass == 0 ? "(warm-up pass)" : "(measured pass)");
            full = Time(() => bench.ServeTinyJson().GetAwaiter().GetResult());
            raw = Time(() => bench.RawOrtCall());
            Console.WriteLine($"full path     {full:F2} us");
            Console.WriteLine($"raw ORT call  {raw:F2} us");
            Console.WriteLine($"decode        {Time(() => OipJsonDecoder.Decode(bench._body, null, 1 << 24).Dispose()):F2} us");
            var header = System.Text.Encoding.UTF8.GetBytes("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4],\"parameters\":{\"binary_data_size\":16}}]}");
            var binaryBody = new ReadOnlySequence<byte>([.. header, .. new byte[16]]);
            Console.WriteLine($"decode binary {Time(() => OipJsonDecoder.Decode(binaryBody, header.Length, 1 << 24).Dispose()):F2} us");
            var dataFirst = new ReadOnlySequence<byte>("""{"inputs":[{"data":[1,2,3,4],"name":"input","datatype":"FP32","shape":[1,4]}]}"""u8.ToArray());
            Console.WriteLine($"decode data1st {Time(() => OipJsonDecoder.Decode(dataFirst, null, 1 << 24).Dispose()):F2} us");
            Console.WriteLine($"tokens only   {Time(() =>
            {
                var reader = new Utf8JsonReader(bench._body);
                while (reader.Read())
                {
                }
            }):F2} us");
            Console.WriteLine($"tensor rent   {Time(() => Lepton.GpuWorker.Tensors.TensorData.Numeric(Lepton.GpuWorker.Tensors.DataType.Fp32, [1, 4], 4).Dispose()):F2} us");
            Console.WriteLine($"prepare+run   {Time(() =>
            {
                using var request = OipJsonDecoder.Decode(bench._body, null, 1 << 24);
                foreach (var result in version.Onnx.RunBatch([version.Onnx.Prepare(request, true)]))
                {
                    result.Dispose();
                }
            }):F2} us (incl. decode)");
            Console.WriteLine($"served infer  {Time(() =>
            {
                var request = OipJsonDecoder.Decode(bench._body, null, 1 << 24);
                bench._plane.InferAsync("tiny", null, request, null).AsTask().GetAwaiter().GetResult().Dispose();
            }):F2} us (incl. decode)");
        }
        Console.WriteLine(System.FormattableString.Invariant($"RESULT {full} {raw}"));
        bench.Cleanup();
        return 0;
    }

    [GlobalSetup]
    public void Setup()
    {
        _dir = Directory.CreateTempSubdirectory("lepton-plane-").FullName;
        var path = Path.Combine(_dir, "tiny.onnx");
        File.WriteAllBytes(path, SampleModels.AddOne(4));
        var execution = new ExecutionOptions { Provider = "cpu", IntraOpThreads = 1 };
        var choice = ExecutionProviders.Choose(execution, [ExecutionProviders.Cpu], 0);
        var clients = new StorageClients(new StorageOptions { ConnectionString = "UseDevelopmentStorage=true" });
        var registry = new ModelRegistry(clients, TimeProvider.System);
        var metrics = new WorkerMetrics("bench", choice.Name);
        var loader = new LoaderOptions { Models = ["tiny"] };
        var threads = new InferenceThreads(1);
        var pool = new VersionPool(registry, new ModelStore(clients, new ModelStoreOptions { CacheDir = _dir }), choice, execution, loader, metrics, TimeProvider.System, threads, NullLogger<VersionPool>.Instance);
        var onnx = new OnnxVersion("tiny", "1.0.0", path, choice, 32);
        pool.Adopt(new ServedVersion(onnx, metrics.For("tiny", "1.0.0"), TimeSpan.FromMilliseconds(2), 1, 0.3, 0.01, 0, TimeProvider.System, threads));
        var state = new ReplicaState();
        state.Publish([new RouteTable("tiny", "1.0.0")]);
        _plane = new InferenceDataPlane(pool, state, registry, new RollupRecorder("bench", 10, TimeProvider.System), metrics, new InferenceOptions(), loader,
            choice, new ServerOptions(), new StorageGuard("bench", new StorageGuardOptions(), TimeProvider.System, NullLogger.Instance),
            TimeProvider.System, NullLogger<InferenceDataPlane>.Instance);
        _body = new ReadOnlySequence<byte>("""{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}"""u8.ToArray());
        _raw = new InferenceSession(path, choice.CreateSessionOptions());
        _rawInput = OrtValue.CreateTensorValueFromMemory(new float[] { 1, 2, 3, 4 }, [1, 4]);
        _runOptions = new RunOptions();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _raw.Dispose();
        _rawInput.Dispose();
        _runOptions.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Decode → route → check → batch (idle) → ORT → count → encode, as the HTTP binding does minus Kestrel.</summary>
    [Benchmark]
    public async Task<int> ServeTinyJson()
    {
        var request = OipJsonDecoder.Decode(_body, null, 1 << 24);
        using var outcome = await _plane.InferAsync("tiny", null, request, null);
        var outputs = OipJsonEncoder.Select(outcome.Request, outcome.Onnx.OutputNames, outcome.Result.Outputs);
        _buffer.ResetWrittenCount();
        using var writer = new Utf8JsonWriter(_buffer);
        OipJsonEncoder.WriteHeader(writer, outcome.Model, outcome.Version, "0123456789abcdef0123456789abcdef", outputs);
        return _buffer.WrittenCount;
    }

    /// <summary>One raw ONNX Runtime call of the same model with a prepared input.</summary>
    [Benchmark(Baseline = true)]
    public int RawOrtCall()
    {
        using var outputs = _raw.Run(_runOptions, ["input"], [_rawInput], ["output"]);
        return outputs.Count;
    }
}
