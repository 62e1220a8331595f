using System.Collections.Frozen;
using System.Text;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lepton.GpuWorker.Tensors;

/// <summary>The tensor element types of the Open Inference Protocol that the worker serves.</summary>
public enum DataType
{
    Bool,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,

    /// <summary>Variable-length byte strings (ONNX <c>string</c> tensors).</summary>
    Bytes,
}

/// <summary>
/// The one table between the protocol's type names (<c>FP32</c>), ONNX Runtime's element types and
/// Triton's model-configuration names (<c>TYPE_FP32</c>).
/// </summary>
public static class DataTypes
{
    private static readonly (DataType Type, string Name, TensorElementType Ort, int Size, string Config)[] Table =
    [
        (DataType.Bool, "BOOL", TensorElementType.Bool, 1, "TYPE_BOOL"),
        (DataType.UInt8, "UINT8", TensorElementType.UInt8, 1, "TYPE_UINT8"),
        (DataType.UInt16, "UINT16", TensorElementType.UInt16, 2, "TYPE_UINT16"),
        (DataType.UInt32, "UINT32", TensorElementType.UInt32, 4, "TYPE_UINT32"),
        (DataType.UInt64, "UINT64", TensorElementType.UInt64, 8, "TYPE_UINT64"),
        (DataType.Int8, "INT8", TensorElementType.Int8, 1, "TYPE_INT8"),
        (DataType.Int16, "INT16", TensorElementType.Int16, 2, "TYPE_INT16"),
        (DataType.Int32, "INT32", TensorElementType.Int32, 4, "TYPE_INT32"),
        (DataType.Int64, "INT64", TensorElementType.Int64, 8, "TYPE_INT64"),
        (DataType.Fp16, "FP16", TensorElementType.Float16, 2, "TYPE_FP16"),
        (DataType.Fp32, "FP32", TensorElementType.Float, 4, "TYPE_FP32"),
        (DataType.Fp64, "FP64", TensorElementType.Double, 8, "TYPE_FP64"),
        (DataType.Bytes, "BYTES", TensorElementType.String, 0, "TYPE_STRING"),
    ];

    private static readonly FrozenDictionary<string, DataType> ByName =
        Table.ToFrozenDictionary(t => t.Name, t => t.Type, StringComparer.Ordinal);

    private static readonly FrozenDictionary<TensorElementType, DataType> ByOrt =
        Table.ToFrozenDictionary(t => t.Ort, t => t.Type);

    /// <summary>Every protocol name, for error messages.</summary>
    public static readonly string SupportedNames = string.Join(", ", Table.Select(t => t.Name));

    public static string Name(DataType type) => Table[(int)type].Name;

    /// <summary>Bytes per element; 0 for <see cref="DataType.Bytes"/> (variable length).</summary>
    public static int ElementSize(DataType type) => Table[(int)type].Size;

    public static TensorElementType ToOrt(DataType type) => Table[(int)type].Ort;

    /// <summary>Triton's model-configuration name (<c>TYPE_FP32</c>).</summary>
    public static string ConfigName(DataType type) => Table[(int)type].Config;

    public static bool IsFloat(DataType type) => type is DataType.Fp16 or DataType.Fp32 or DataType.Fp64;

    public static bool TryParse(string name, out DataType type) => ByName.TryGetValue(name, out type);

    public static bool TryParse(ReadOnlySpan<byte> utf8Name, out DataType type)
    {
        // Names are short ASCII: compare without allocating a string.
        foreach (var entry in Table)
        {
            if (Ascii.Equals(utf8Name, entry.Name))
            {
                type = entry.Type;
                return true;
            }
        }
        type = default;
        return false;
    }

    public static bool TryFromOrt(TensorElementType ort, out DataType type) => ByOrt.TryGetValue(ort, out type);
}
