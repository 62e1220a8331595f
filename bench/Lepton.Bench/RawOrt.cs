using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;

namespace Lepton.Bench;

/// <summary>
/// The in-process baseline: one ONNX Runtime session (1 intra-op + 1 inter-op thread, as the
/// worker's) running the same input back to back, in its own process pinned to the worker's core.
/// Prints rows/s and microseconds per call.
/// </summary>
public static class RawOrt
{
    public static int Run(string[] args)
    {
        var path = args[0];
        var rows = int.Parse(args[1], CultureInfo.InvariantCulture);
        var features = int.Parse(args[2], CultureInfo.InvariantCulture);
        var seconds = double.Parse(args[3], CultureInfo.InvariantCulture);
        using var options = new SessionOptions
        {
            IntraOpNumThreads = 1,
            InterOpNumThreads = 1,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        using var session = new InferenceSession(path, options);
        var random = new Random(0);
        var x = Enumerable.Range(0, rows * features).Select(_ => (float)random.NextDouble()).ToArray();
        using var input = OrtValue.CreateTensorValueFromMemory(x, [rows, features]);
        using var runOptions = new RunOptions();
        string[] inputNames = [.. session.InputNames];
        string[] outputNames = [.. session.OutputNames];
        OrtValue[] inputs = [input];
        for (var i = 0; i < 200; i++)
        {
            using var warm = session.Run(runOptions, inputNames, inputs, outputNames);
        }
        var calls = 0L;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            using var outputs = session.Run(runOptions, inputNames, inputs, outputNames);
            calls++;
        }
        var elapsed = clock.Elapsed.TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{calls * rows / elapsed} {elapsed * 1e6 / calls}"));
        return 0;
    }
}
