using static Lepton.Cli.Samples.OnnxGraph;

namespace Lepton.Cli.Samples;

/// <summary>
/// Small, real ONNX models built in code (no training framework, nothing downloaded), used by the
/// demo, the benchmarks and the tests. Inputs are named <c>input</c> (float32, batch first) unless
/// stated; classifiers output <c>label</c> (int64 [N]) and <c>probabilities</c> (float32 [N, classes]).
/// </summary>
public static class SampleModels
{
    /// <summary>softmax(x·W + b): <paramref name="weights"/> is features × classes, row-major.</summary>
    public static byte[] LinearClassifier(int features, int classes, float[] weights, float[] bias)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, null, features);
        var logits = Logits(graph, input, features, classes, weights, bias);
        ClassifierOutputs(graph, logits, classes);
        return graph.ToBytes();
    }

    /// <summary>
    /// A linear classifier whose outputs become NaN for any row holding a value above
    /// <paramref name="maxInput"/> (sqrt of a negative): fine on data in the training range,
    /// broken on unseen inputs.
    /// </summary>
    public static byte[] NanOutsideRange(int features, int classes, float[] weights, float[] bias, float maxInput)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, null, features);
        var logits = Logits(graph, input, features, classes, weights, bias);
        var headroom = graph.Node("Sub", [graph.Constant([maxInput], 1), input]);
        var root = graph.Node("Sqrt", [headroom]);
        var poison = graph.Node("ReduceSum", [root, graph.Constant([1L], 1)], attributes: ("keepdims", 1L));
        var zeroed = graph.Node("Mul", [poison, graph.Constant([0f], 1)]);
        ClassifierOutputs(graph, graph.Node("Add", [logits, zeroed]), classes);
        return graph.ToBytes();
    }

    /// <summary>A linear classifier that also spins through <paramref name="extraLayers"/> square MatMuls (slow on purpose).</summary>
    public static byte[] SlowClassifier(int features, int classes, float[] weights, float[] bias, int extraLayers, int width = 256)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, null, features);
        var logits = Logits(graph, input, features, classes, weights, bias);
        var spin = graph.Node("MatMul", [input, graph.Constant(new float[features * width], features, width)]);
        var square = graph.Constant(Identity(width), width, width);
        for (var i = 0; i < extraLayers; i++)
        {
            spin = graph.Node("MatMul", [spin, square]);
        }
        var nothing = graph.Node("ReduceSum", [spin, graph.Constant([1L], 1)], attributes: ("keepdims", 1L));
        ClassifierOutputs(graph, graph.Node("Add", [logits, graph.Node("Mul", [nothing, graph.Constant([0f], 1)])]), classes);
        return graph.ToBytes();
    }

    /// <summary>x·w + b → <c>prediction</c> float32 [N, 1].</summary>
    public static byte[] LinearRegressor(int features, float[] weights, float bias)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, null, features);
        var product = graph.Node("MatMul", [input, graph.Constant(weights, features, 1)]);
        graph.Output("prediction", graph.Node("Add", [product, graph.Constant([bias], 1)]), Types.Float, null, 1);
        return graph.ToBytes();
    }

    /// <summary>
    /// A multi-layer perceptron: <paramref name="layers"/> Gemm+Relu layers of
    /// <paramref name="width"/>, deterministic weights from <paramref name="seed"/>; output
    /// <c>output</c> float32 [N, <paramref name="outputs"/>].
    /// </summary>
    public static byte[] Mlp(int features, int width, int layers, int outputs, int seed = 0)
    {
        var random = new Random(seed);
        var graph = new OnnxGraph();
        var value = graph.Input("input", Types.Float, null, features);
        var fanIn = features;
        for (var layer = 0; layer < layers; layer++)
        {
            var w = graph.Constant(RandomWeights(random, fanIn * width, fanIn), fanIn, width);
            var b = graph.Constant(new float[width], width);
            value = graph.Node("Relu", [graph.Node("Gemm", [value, w, b])]);
            fanIn = width;
        }
        var head = graph.Node("Gemm", [value, graph.Constant(RandomWeights(random, fanIn * outputs, fanIn), fanIn, outputs), graph.Constant(new float[outputs], outputs)]);
        graph.Output("output", head, Types.Float, null, outputs);
        return graph.ToBytes();
    }

    /// <summary>The cheapest useful model: <c>output = input + 1</c>, float32 [N, <paramref name="features"/>].</summary>
    public static byte[] AddOne(int features = 4)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, null, features);
        graph.Output("output", graph.Node("Add", [input, graph.Constant([1f], 1)]), Types.Float, null, features);
        return graph.ToBytes();
    }

    /// <summary>
    /// <c>output = factor · input</c>, float32 [N, <paramref name="features"/>]: every answer proves
    /// which version computed it (routing tests, the demo); a negative factor flips every argmax.
    /// </summary>
    public static byte[] Scale(float factor, int features = 4)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, null, features);
        graph.Output("output", graph.Node("Mul", [input, graph.Constant([factor], 1)]), Types.Float, null, features);
        return graph.ToBytes();
    }

    /// <summary>A string model: <c>text</c> (BYTES/string [N]) echoed to <c>echo</c>.</summary>
    public static byte[] StringEcho()
    {
        var graph = new OnnxGraph();
        var input = graph.Input("text", Types.String, [null]);
        graph.Output("echo", graph.Node("Identity", [input]), Types.String, [null]);
        return graph.ToBytes();
    }

    /// <summary>A model declaring a fixed input of <paramref name="rows"/> × <paramref name="columns"/> floats.</summary>
    public static byte[] FixedShape(long rows, long columns)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, rows, columns);
        graph.Output("output", graph.Node("Identity", [input]), Types.Float, rows, columns);
        return graph.ToBytes();
    }

    /// <summary>A model using an operator from a domain ONNX Runtime does not know.</summary>
    public static byte[] UnknownOperatorDomain()
    {
        var graph = new OnnxGraph();
        graph.UseDomain("com.example.custom", 1);
        var input = graph.Input("input", Types.Float, null, 4);
        graph.Output("output", graph.Node("Mystery", [input], domain: "com.example.custom"), Types.Float, null, 4);
        return graph.ToBytes();
    }

    /// <summary>A linear classifier whose weights are declared to live in an external file.</summary>
    public static byte[] ExternalData(int features = 4, int classes = 2)
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", Types.Float, null, features);
        ClassifierOutputs(graph, Logits(graph, input, features, classes, new float[features * classes], new float[classes]), classes);
        graph.ExternalizeInitializers("../../secrets/weights.bin");
        return graph.ToBytes();
    }

    private static string Logits(OnnxGraph graph, string input, int features, int classes, float[] weights, float[] bias)
    {
        if (weights.Length != features * classes || bias.Length != classes)
        {
            throw new ArgumentException($"weights must be {features}×{classes} and bias {classes} long");
        }
        var product = graph.Node("MatMul", [input, graph.Constant(weights, features, classes)]);
        return graph.Node("Add", [product, graph.Constant(bias, classes)]);
    }

    private static void ClassifierOutputs(OnnxGraph graph, string logits, int classes)
    {
        graph.Output("label", graph.Node("ArgMax", [logits], attributes: [("axis", 1L), ("keepdims", 0L)]), Types.Int64, [null]);
        graph.Output("probabilities", graph.Node("Softmax", [logits], attributes: ("axis", 1L)), Types.Float, null, classes);
    }

    private static float[] Identity(int width)
    {
        var values = new float[width * width];
        for (var i = 0; i < width; i++)
        {
            values[(i * width) + i] = 1f;
        }
        return values;
    }

    private static float[] RandomWeights(Random random, int count, int fanIn)
    {
        var scale = (float)Math.Sqrt(2.0 / fanIn);
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = (float)((random.NextDouble() * 2) - 1) * scale;
        }
        return values;
    }
}
