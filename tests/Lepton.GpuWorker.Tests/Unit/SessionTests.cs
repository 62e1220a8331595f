using Lepton.Cli.Samples;
using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.Protocol;
using Lepton.GpuWorker.Serving;
using Lepton.GpuWorker.Tensors;
using Lepton.GpuWorker.Tests.Harness;
using Lepton.Shared;

namespace Lepton.GpuWorker.Tests.Unit;

/// <summary>Sessions on real ONNX Runtime: signature checks, exact batching, failures, footprints.</summary>
public sealed class SessionTests : IDisposable
{
    private static readonly ProviderChoice Cpu = ExecutionProviders.Choose(new ExecutionOptions { Provider = "cpu", IntraOpThreads = 1 }, [ExecutionProviders.Cpu], 0);

    private readonly string _dir = Directory.CreateTempSubdirectory("lepton-session-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private OnnxVersion Load(byte[] onnx, int maxBatchSize = 32)
    {
        var path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".onnx");
        File.WriteAllBytes(path, onnx);
        return new OnnxVersion("m", "1.0.0", path, Cpu, maxBatchSize);
    }

    private static InferRequest Request(string name, DataType type, long[] shape, float[]? values = null)
    {
        var count = (int)shape.Aggregate(1L, (a, b) => a * b);
        var tensor = TensorData.Numeric(type, shape, count, clear: true);
        values?.CopyTo(tensor.As<float>());
        return new InferRequest(null, [new NamedTensor(name, tensor)], [], false);
    }

    [Fact]
    public void Batched_results_are_exactly_the_unbatched_ones()
    {
        using var version = Load(TestModels.Digits());
        var sizes = new[] { 1, 3, 2, 5, 1 };
        var requests = sizes.Select((rows, i) => Request("input", DataType.Fp32, [rows, 64], TestModels.DigitsRows(rows, i))).ToList();
        var items = requests.Select(r => version.Prepare(r, rejectNonfinite: true)).ToList();
        var batched = version.RunBatch(items);
        Assert.Equal(items.Count, batched.Length);
        for (var i = 0; i < items.Count; i++)
        {
            var alone = version.RunBatch([items[i]])[0];
            Assert.Equal(sizes.Sum(), batched[i].BatchRows);
            for (var o = 0; o < alone.Outputs.Length; o++)
            {
                Assert.Equal(alone.Outputs[o].Shape, batched[i].Outputs[o].Shape);
                Assert.Equal(alone.Outputs[o].Span.ToArray(), batched[i].Outputs[o].Span.ToArray());
            }
            alone.Dispose();
            batched[i].Dispose();
        }
        requests.ForEach(r => r.Dispose());
    }

    [Fact]
    public void Mlp_batched_matches_unbatched_within_float_rounding()
    {
        using var version = Load(SampleModels.Mlp(32, 128, 2, 8));
        var random = new Random(0);
        var x = Enumerable.Range(0, 6 * 32).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var requests = Enumerable.Range(0, 3).Select(i => Request("input", DataType.Fp32, [2, 32], x[(i * 64)..((i + 1) * 64)])).ToList();
        var items = requests.Select(r => version.Prepare(r, true)).ToList();
        var batched = version.RunBatch(items);
        for (var i = 0; i < items.Count; i++)
        {
            using var alone = version.RunBatch([items[i]])[0];
            var a = alone.Outputs[0].As<float>().ToArray();
            var b = batched[i].Outputs[0].As<float>().ToArray();
            // Same kernels, different row counts: only float rounding, nothing more.
            Assert.All(a.Zip(b), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-5 * Math.Max(1, Math.Abs(p.First)), $"{p.First} vs {p.Second}"));
            batched[i].Dispose();
        }
        requests.ForEach(r => r.Dispose());
    }

    [Theory]
    [InlineData("pixels", DataType.Fp32, new long[] { 1, 64 }, "missing ['input']")]
    [InlineData("input", DataType.Fp64, new long[] { 1, 64 }, "datatype FP64, expected FP32")]
    [InlineData("input", DataType.Fp32, new long[] { 1, 32 }, "shape [1, 32], expected [-1, 64]")]
    [InlineData("input", DataType.Fp32, new long[] { 64 }, "shape [64]")]
    [InlineData("input", DataType.Fp32, new long[] { 0, 64 }, "at least one row")]
    public void Wrong_inputs_name_the_expected_signature(string name, DataType type, long[] shape, string fragment)
    {
        using var version = Load(TestModels.Digits());
        using var request = Request(name, type, shape);
        var error = Assert.Throws<InvalidInputException>(() => version.Prepare(request, true));
        Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
        Assert.Contains("expected signature inputs: input FP32[-1,64]", error.Message, StringComparison.Ordinal);
        Assert.Contains("probabilities FP32[-1,10]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nonfinite_outputs_are_flagged_and_nonfinite_inputs_refused()
    {
        using var nan = Load(TestModels.AlwaysNan());
        using var ones = Request("input", DataType.Fp32, [2, 4], [1, 1, 1, 1, 1, 1, 1, 1]);
        using (var result = nan.RunBatch([nan.Prepare(ones, true)])[0])
        {
            Assert.True(result.Nonfinite);
        }
        using var scale = Load(SampleModels.Scale(2f));
        using (var result = scale.RunBatch([scale.Prepare(ones, true)])[0])
        {
            Assert.False(result.Nonfinite);
        }
        using var infinite = Request("input", DataType.Fp32, [1, 4], [1, float.PositiveInfinity, 1, 1]);
        Assert.Throws<NonFiniteInputException>(() => scale.Prepare(infinite, rejectNonfinite: true));
        using var passed = scale.RunBatch([scale.Prepare(infinite, rejectNonfinite: false)])[0];
        Assert.True(passed.Nonfinite);
    }

    [Fact]
    public void A_fixed_leading_dimension_disables_batching()
    {
        using var version = Load(SampleModels.FixedShape(2, 4), maxBatchSize: 64);
        Assert.False(version.Batchable);
        Assert.Equal(1, version.MaxBatchSize);
        using var request = Request("input", DataType.Fp32, [2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
        using var result = version.RunBatch([version.Prepare(request, true)])[0];
        Assert.Equal([1f, 2, 3, 4, 5, 6, 7, 8], result.Outputs[0].As<float>().ToArray());
        using var wrong = Request("input", DataType.Fp32, [3, 4]);
        Assert.Contains("expected [2, 4]", Assert.Throws<InvalidInputException>(() => version.Prepare(wrong, true)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Outputs_without_one_row_per_input_row_fail_the_batch()
    {
        using var version = Load(TestModels.CollapsesRows());
        using var a = Request("input", DataType.Fp32, [1, 4]);
        using var b = Request("input", DataType.Fp32, [2, 4]);
        var error = Assert.Throws<BatchFailedException>(() => version.RunBatch([version.Prepare(a, true), version.Prepare(b, true)]));
        Assert.Contains("1 rows for 3 input rows", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Onnxruntime_errors_become_inference_failures()
    {
        using var version = Load(TestModels.RaisesAboveOneRow());
        using var one = Request("input", DataType.Fp32, [1, 4]);
        using (var result = version.RunBatch([version.Prepare(one, true)])[0])
        {
            Assert.Equal([1L, 4L], result.Outputs[0].Shape);
        }
        using var three = Request("input", DataType.Fp32, [3, 4]);
        var error = Assert.Throws<InferenceFailedException>(() => version.RunBatch([version.Prepare(three, true)]));
        Assert.Contains("ONNX Runtime failed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_onnxruntime_cannot_load_is_refused_without_a_local_path()
    {
        var error = Assert.Throws<InvalidModelException>(() => Load(SampleModels.UnknownOperatorDomain()));
        Assert.Contains("ONNX Runtime cannot load it", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_dir, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Strings_batch_and_echo_as_bytes()
    {
        using var version = Load(SampleModels.StringEcho());
        InferRequest Words(params string[] words)
        {
            var tensor = TensorData.Strings([words.Length], words.Length, 16);
            for (var i = 0; i < words.Length; i++)
            {
                tensor.SetElement(i, System.Text.Encoding.UTF8.GetBytes(words[i]));
            }
            return new InferRequest(null, [new NamedTensor("text", tensor)], [], false);
        }
        using var a = Words("a", "bé");
        using var b = Words("", "c");
        var results = version.RunBatch([version.Prepare(a, true), version.Prepare(b, true)]);
        Assert.Equal("bé"u8.ToArray(), results[0].Outputs[0].Element(1).ToArray());
        Assert.Empty(results[1].Outputs[0].Element(0).ToArray());
        Assert.Equal("c"u8.ToArray(), results[1].Outputs[0].Element(1).ToArray());
        foreach (var r in results)
        {
            r.Dispose();
        }
    }

    [Fact]
    public void The_footprint_comes_from_the_initializers()
    {
        File.WriteAllBytes(Path.Combine(_dir, "small.onnx"), SampleModels.AddOne());
        File.WriteAllBytes(Path.Combine(_dir, "big.onnx"), SampleModels.Mlp(64, 256, 2, 10));
        // Mlp: 64×256 + 256 + 256×256 + 256 + 256×10 + 10 floats; AddOne: one float.
        var weights = ((64 * 256) + 256 + (256 * 256) + 256 + (256 * 10) + 10) * 4L;
        Assert.Equal((2 * weights) - (2 * 4), Footprint.Estimate(Path.Combine(_dir, "big.onnx")) - Footprint.Estimate(Path.Combine(_dir, "small.onnx")));
        File.WriteAllBytes(Path.Combine(_dir, "broken.onnx"), "not onnx"u8.ToArray());
        Assert.Contains("not a readable ONNX file", Assert.Throws<InvalidModelException>(() => Footprint.Estimate(Path.Combine(_dir, "broken.onnx"))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_warm_up_request_fits_the_signature()
    {
        using var version = Load(TestModels.Digits());
        using var warm = version.WarmUpRequest();
        var item = version.Prepare(warm, true);
        Assert.Equal(1, item.Rows);
        Assert.Equal([1L, 64L], item.Feeds[0].Shape);
    }
}
