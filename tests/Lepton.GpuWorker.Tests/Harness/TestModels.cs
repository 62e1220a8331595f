using Lepton.Cli.Samples;
using static Lepton.Cli.Samples.OnnxGraph;

namespace Lepton.GpuWorker.Tests.Harness;

/// <summary>Real ONNX graphs for the tests, including ones that break one thing on purpose.</summary>
public static class TestModels
{
    /// <summary>A 64-feature, 10-class linear classifier with fixed random weights (like the reference's digits model).</summary>
    public static byte[] Digits(int seed = 7)
    {
        var random = new Random(seed);
        var weights = Enumerable.Range(0, 64 * 10).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var bias = Enumerable.Range(0, 10).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        return SampleModels.LinearClassifier(64, 10, weights, bias);
    }

    /// <summary><see cref="Digits"/>'s predictions, computed the slow way (extra 256×256 MatMuls per row).</summary>
    public static byte[] SlowDigits(int seed = 7, int extraLayers = 24)
    {
        var random = new Random(seed);
        var weights = Enumerable.Range(0, 64 * 10).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var bias = Enumerable.Range(0, 10).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        return SampleModels.SlowClassifier(64, 10, weights, bias, extraLayers);
    }

    /// <summary>Rows of digits-like inputs in [0, 16).</summary>
    public static float[] DigitsRows(int rows, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, rows * 64).Select(_ => (float)Math.Floor(random.NextDouble() * 16)).ToArray();
    }

    /// <summary>NaN for every row (sqrt of a negative number), shape [N, 4] → classifier outputs.</summary>
    public static byte[] AlwaysNan() =>
        SampleModels.NanOutsideRange(4, 2, new float[8], new float[2], maxInput: -1f);

    /// <summary>Declares a symbolic leading output dimension but sums over the rows: one row out per batch.</summary>
    public static byte[] CollapsesRows(int features = 4)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, null, features);
        var summed = graph.Node("ReduceSum", [input, graph.Constant([0L], 1)], attributes: ("keepdims", 1L));
        graph.Output("output", summed, Types.Float, null, features);
        return graph.ToBytes();
    }

    /// <summary>Reshapes to [1, n]: fine for one row, ONNX Runtime raises for more.</summary>
    public static byte[] RaisesAboveOneRow(int features = 4)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, null, features);
        var reshaped = graph.Node("Reshape", [input, graph.Constant([1L, features], 2)]);
        graph.Output("output", reshaped, Types.Float, 1, features);
        return graph.ToBytes();
    }
}
