using Lepton.Cli.Samples;
using Lepton.Shared.Registry;
using Lepton.Shared.Validation;
using Microsoft.ML.OnnxRuntime;

namespace Lepton.Shared.Tests.Validation;

/// <summary>Validation on real ONNX models in ONNX Runtime: parsing, limits, hostile files, compatibility, the smoke test.</summary>
public sealed class ModelValidatorTests
{
    private static readonly (Models.Dataset Train, Models.Dataset Test) Digits = SampleDatasets.Digits();
    private static readonly ValidationLimits Limits = new();

    private static ValidationOutcome Validate(byte[] model, Signature? production = null, Bump bump = Bump.Initial, bool breaking = false, ValidationLimits? limits = null) =>
        ModelValidator.Validate(model, production, bump, breaking, limits ?? Limits);

    private static string Rejection(byte[] model, Signature? production = null, Bump bump = Bump.Initial, bool breaking = false, ValidationLimits? limits = null)
    {
        var outcome = Validate(model, production, bump, breaking, limits);
        Assert.False(outcome.Passed, "the model should have been refused");
        Assert.DoesNotContain("/tmp", outcome.Rejection!, StringComparison.Ordinal);
        return outcome.Rejection!;
    }

    private static Signature DigitsSignature()
    {
        var outcome = Validate(SampleDatasets.GoodClassifier(Digits.Train));
        return outcome.Signature!;
    }

    [Fact]
    public void A_valid_model_passes_with_its_signature()
    {
        var outcome = Validate(SampleDatasets.GoodClassifier(Digits.Train));

        Assert.True(outcome.Passed, outcome.Rejection);
        Assert.Equal([new TensorSpec("input", "float", [null, 64])], outcome.Signature!.Inputs);
        Assert.Equal(["label", "probabilities"], outcome.Signature.Outputs.Select(o => o.Name));
        Assert.Equal(new TensorSpec("probabilities", "float", [null, 10]), outcome.Signature.Outputs[1]);
    }

    [Fact]
    public void Bytes_that_are_not_onnx_are_refused()
    {
        var garbage = Enumerable.Repeat("\0garbage\u00ff"u8.ToArray(), 10).SelectMany(b => b).ToArray();
        Assert.Contains("not an ONNX model", Rejection(garbage), StringComparison.Ordinal);
        Assert.Contains("not an ONNX model", Rejection("this is not an onnx file at all"u8.ToArray()), StringComparison.Ordinal);
        Assert.Contains("not an ONNX model", Rejection([]), StringComparison.Ordinal);
    }

    [Fact]
    public void The_size_limit_is_checked_first()
    {
        var reason = Rejection(SampleDatasets.GoodClassifier(Digits.Train), limits: new ValidationLimits { MaxBytes = 100 });
        Assert.Contains("over the limit of 100", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Opsets_outside_the_limits_are_refused_and_the_newest_supported_one_loads()
    {
        Assert.Contains("uses opset 17; Lepton accepts 7..10", Rejection(SampleModels.AddOne(), limits: new ValidationLimits { MaxOpset = 10 }), StringComparison.Ordinal);

        Assert.True(Validate(Relu(ValidationLimits.DefaultMaxOpset)).Passed);
        Assert.Contains($"uses opset {ValidationLimits.DefaultMaxOpset + 1}", Rejection(Relu(ValidationLimits.DefaultMaxOpset + 1)), StringComparison.Ordinal);
        Assert.Contains("uses opset 6", Rejection(Relu(6)), StringComparison.Ordinal);
    }

    [Fact]
    public void A_huge_declared_input_is_refused_before_anything_is_allocated()
    {
        // The reference promoted a first version declaring a 20000×20000 input (1.6 GB per smoke run).
        var model = SampleModels.FixedShape(20000, 20000);
        var before = GC.GetAllocatedBytesForCurrentThread();

        var reason = Rejection(model);

        Assert.Contains("input 'input' declares a fixed shape of 20000×20000", reason, StringComparison.Ordinal);
        Assert.Contains("symbolic", reason, StringComparison.Ordinal);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 * 1024 * 1024, "validation allocated the declared tensor");
        Assert.True(Validate(SampleModels.FixedShape(8, 4)).Passed);
    }

    [Fact]
    public void Unknown_operator_domains_are_refused_before_onnx_runtime_sees_them()
    {
        var reason = Rejection(SampleModels.UnknownOperatorDomain());
        Assert.Contains("'com.example.custom'", reason, StringComparison.Ordinal);
        Assert.DoesNotContain("ONNX Runtime cannot load", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void External_data_is_refused_without_naming_its_location()
    {
        var reason = Rejection(SampleModels.ExternalData());
        Assert.Contains("external files", reason, StringComparison.Ordinal);
        Assert.DoesNotContain("secrets", reason, StringComparison.Ordinal);
        Assert.DoesNotContain("weights.bin", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Non_finite_outputs_fail_the_smoke_test()
    {
        // Every generated input lies in [0, 1), above this model's range: every output is NaN.
        var model = SampleModels.NanOutsideRange(4, 2, new float[8], [0, 0], maxInput: -1);
        Assert.Contains("non-finite value", Rejection(model), StringComparison.Ordinal);
    }

    [Fact]
    public void A_declared_output_shape_must_match_what_the_model_returns()
    {
        var graph = new OnnxGraph();
        var input = graph.Input("input", OnnxGraph.Types.Float, null, 4);
        graph.Output("output", graph.Node("Identity", [input]), OnnxGraph.Types.Float, null, 4, 1);
        Assert.Contains("declared shape [None, 4, 1]", Rejection(graph.ToBytes()), StringComparison.Ordinal);
    }

    [Fact]
    public void String_models_pass_with_generated_text()
    {
        var outcome = Validate(SampleModels.StringEcho());
        Assert.True(outcome.Passed, outcome.Rejection);
        Assert.Equal("string", outcome.Signature!.Inputs[0].Dtype);
    }

    [Fact]
    public void An_incompatible_minor_is_refused_with_the_differences()
    {
        var reason = Rejection(SampleDatasets.NarrowerInput(Digits.Train), DigitsSignature(), Bump.Minor);
        Assert.Contains("input 'input' shape changed from [None, 64] to [None, 32]", reason, StringComparison.Ordinal);
        Assert.Contains("new major version", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_breaking_major_may_change_the_signature()
    {
        var narrower = SampleDatasets.NarrowerInput(Digits.Train);
        Assert.Contains("declare \"breaking\": true", Rejection(narrower, DigitsSignature(), Bump.Major), StringComparison.Ordinal);
        var outcome = Validate(narrower, DigitsSignature(), Bump.Major, breaking: true);
        Assert.True(outcome.Passed, outcome.Rejection);
        Assert.Equal([null, 32], outcome.Signature!.Inputs[0].Shape);
    }

    [Fact]
    public void Compatibility_rules()
    {
        var production = new Signature([new TensorSpec("x", "float", [null, 4])], [new TensorSpec("y", "float", [null])]);
        var extraOutput = production with { Outputs = [.. production.Outputs, new TensorSpec("extra", "int64", [null])] };
        Assert.Empty(SignatureCompatibility.Problems(extraOutput, production));
        var fixedBatch = production with { Inputs = [new TensorSpec("x", "float", [8, 4])] };
        Assert.Contains("fixed a dimension", SignatureCompatibility.Problems(fixedBatch, production)[0], StringComparison.Ordinal);
        var retyped = production with { Inputs = [new TensorSpec("x", "double", [null, 4])] };
        Assert.Contains("dtype changed from float to double", SignatureCompatibility.Problems(retyped, production)[0], StringComparison.Ordinal);
        var reranked = production with { Inputs = [new TensorSpec("x", "float", [null, 4, 1])] };
        Assert.Contains("rank changed", SignatureCompatibility.Problems(reranked, production)[0], StringComparison.Ordinal);
        var more = new Signature([.. production.Inputs, new TensorSpec("z", "float", [null])], []);
        var problems = SignatureCompatibility.Problems(more, production);
        Assert.Contains(problems, p => p.Contains("new required input(s) 'z'", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("output 'y' is missing", StringComparison.Ordinal));
    }

    [Fact]
    public void Onnx_runtime_messages_lose_source_locations_and_paths()
    {
        var message = "[ErrorCode:Fail] /onnxruntime_src/onnxruntime/core/graph/model_load_utils.h:46 void onnxruntime::Validate(const std::string&, int) "
            + "Load model from /home/alice/models/x.onnx failed\nstack";
        Assert.Equal("Load model from <path> failed", OrtMessages.Clean(message));
    }

    [Fact]
    public void The_onnx_runtime_signature_matches_the_declared_one_for_a_consistent_model()
    {
        using var session = new InferenceSession(SampleDatasets.GoodClassifier(Digits.Train));
        Assert.Equal(DigitsSignature(), OrtModels.SignatureOf(session));
    }

    private static byte[] Relu(int opset)
    {
        var graph = new OnnxGraph { OpsetVersion = opset };
        var input = graph.Input("input", OnnxGraph.Types.Float, null, 4);
        graph.Output("output", graph.Node("Relu", [input]), OnnxGraph.Types.Float, null, 4);
        return graph.ToBytes();
    }
}
