using Lepton.Shared.Registry;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lepton.Shared.Validation;

/// <summary>ONNX Runtime sessions for validation and evaluation (CPU: neither needs a GPU), and the signature they report.</summary>
public static class OrtModels
{
    /// <summary>
    /// A CPU session over the model's bytes. Loading from bytes rather than a path keeps local
    /// paths out of ONNX Runtime's error messages, which become rejection reasons.
    /// </summary>
    public static InferenceSession CpuSession(byte[] model)
    {
        using var options = new SessionOptions
        {
            // Errors only: ONNX Runtime's warnings would drown the clear message Lepton gives.
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = 1,
        };
        return new InferenceSession(model, options);
    }

    /// <summary>The ONNX name of an element type (<c>float</c>, <c>int64</c>…), as the registry stores it.</summary>
    public static string TypeName(TensorElementType type) => type switch
    {
        TensorElementType.Float => "float",
        TensorElementType.Double => "double",
        TensorElementType.Float16 => "float16",
        TensorElementType.BFloat16 => "bfloat16",
        TensorElementType.Int8 => "int8",
        TensorElementType.Int16 => "int16",
        TensorElementType.Int32 => "int32",
        TensorElementType.Int64 => "int64",
        TensorElementType.UInt8 => "uint8",
        TensorElementType.UInt16 => "uint16",
        TensorElementType.UInt32 => "uint32",
        TensorElementType.UInt64 => "uint64",
        TensorElementType.Bool => "bool",
        TensorElementType.String => "string",
        _ => type.ToString().ToLowerInvariant(),
    };

    /// <summary>
    /// The model's inputs and outputs as ONNX Runtime sees them (names, order, element types),
    /// with the shapes the graph declares where it declares one (<paramref name="declared"/>),
    /// else ONNX Runtime's; symbolic dimensions are <c>null</c>.
    /// </summary>
    public static Signature SignatureOf(InferenceSession session, IReadOnlyDictionary<string, IReadOnlyList<long?>>? declared = null) => new(
        session.InputMetadata.Select(p => Spec("input", p.Key, p.Value, declared)).ToList(),
        session.OutputMetadata.Select(p => Spec("output", p.Key, p.Value, declared)).ToList());

    private static TensorSpec Spec(string kind, string name, NodeMetadata metadata, IReadOnlyDictionary<string, IReadOnlyList<long?>>? declared)
    {
        if (!metadata.IsTensor)
        {
            throw new InvalidModelException(
                $"{kind} {ModelName.Quote(name)} is a {metadata.OnnxValueType switch { OnnxValueType.ONNX_TYPE_SEQUENCE => "sequence", OnnxValueType.ONNX_TYPE_MAP => "map", _ => "non-tensor value" }}, "
                + "not a tensor; Lepton serves tensors only (for skl2onnx classifiers export with options={'zipmap': False})");
        }
        var shape = declared is not null && declared.TryGetValue(name, out var given)
            ? given
            : metadata.Dimensions.Select(d => d > 0 ? (long?)d : null).ToList();
        return new TensorSpec(name, TypeName(metadata.ElementDataType), shape);
    }
}
