using Lepton.Cli.Samples;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lepton.Cli.Tests;

/// <summary>The sample models are real: ONNX Runtime loads them and computes what they claim.</summary>
public sealed class SampleModelsTests
{
    private static float[] Run(byte[] model, string output, float[] input, params int[] shape)
    {
        using var session = new InferenceSession(model);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(input, shape))]);
        return results.Single(r => r.Name == output).AsEnumerable<float>().ToArray();
    }

    [Fact]
    public void The_linear_classifier_computes_softmax_and_argmax()
    {
        var model = SampleModels.LinearClassifier(2, 2, [1, 0, 0, 1], [0, 0]);
        using var session = new InferenceSession(model);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(new float[] { 3, 1, 0, 2 }, [2, 2]))]);
        Assert.Equal([0L, 1L], results.Single(r => r.Name == "label").AsEnumerable<long>());
        var probabilities = results.Single(r => r.Name == "probabilities").AsEnumerable<float>().ToArray();
        Assert.Equal(1 / (1 + Math.Exp(-2)), probabilities[0], 5);
    }

    [Fact]
    public void The_nan_model_is_finite_inside_its_range_and_nan_outside()
    {
        var model = SampleModels.NanOutsideRange(2, 2, [1, 0, 0, 1], [0, 0], maxInput: 16);
        var probabilities = Run(model, "probabilities", [1, 2, 17, 0], 2, 2);
        Assert.All(probabilities[..2], p => Assert.True(float.IsFinite(p)));
        Assert.All(probabilities[2..], p => Assert.True(float.IsNaN(p)));
    }

    [Fact]
    public void The_other_models_load_and_run()
    {
        Assert.Equal([2f, 3f, 4f, 5f], Run(SampleModels.AddOne(), "output", [1, 2, 3, 4], 1, 4));
        Assert.Equal([7f], Run(SampleModels.LinearRegressor(2, [2, 3], 2), "prediction", [1, 1], 1, 2));
        Assert.Equal(3, Run(SampleModels.Mlp(8, 16, 2, 3), "output", new float[8], 1, 8).Length);
        Assert.Equal([1L], RunLabels(SampleModels.SlowClassifier(2, 2, [0, 1, 0, 1], [0, 0], extraLayers: 3, width: 8), [1, 2]));
    }

    private static long[] RunLabels(byte[] model, float[] input)
    {
        using var session = new InferenceSession(model);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(input, [1, input.Length]))]);
        return results.Single(r => r.Name == "label").AsEnumerable<long>().ToArray();
    }

    [Fact]
    public void The_string_model_echoes_text()
    {
        using var session = new InferenceSession(SampleModels.StringEcho());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("text", new DenseTensor<string>(new[] { "a", "ünï" }, [2]))]);
        Assert.Equal(["a", "ünï"], results.Single().AsEnumerable<string>());
    }

    [Fact]
    public void The_broken_models_are_refused_by_onnx_runtime()
    {
        Assert.ThrowsAny<OnnxRuntimeException>(() => new InferenceSession(SampleModels.UnknownOperatorDomain()));
        Assert.ThrowsAny<OnnxRuntimeException>(() => new InferenceSession(SampleModels.ExternalData()));
    }
}
