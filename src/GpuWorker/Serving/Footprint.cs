using Google.Protobuf;
using Lepton.Shared;
using Onnx;

namespace Lepton.GpuWorker.Serving;

/// <summary>
/// What a session of a model will hold in memory, estimated from its initializers before ONNX
/// Runtime sees it, so the memory budget can refuse a load instead of running out of memory.
/// </summary>
public static class Footprint
{
    // ONNX Runtime holds each initializer once and may keep a pre-packed copy of GEMM/Conv weights
    // beside it: twice the raw bytes plus a fixed arena/session overhead is a safe upper estimate.
    public const double Factor = 2.0;
    public const long OverheadBytes = 8L * 1024 * 1024;

    /// <summary>Estimated bytes for the model file at <paramref name="path"/>.</summary>
    public static long Estimate(string path)
    {
        ModelProto model;
        try
        {
            using var file = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(file);
        }
        catch (InvalidProtocolBufferException error)
        {
            throw new InvalidModelException($"the model file is not a readable ONNX file: {error.Message}");
        }
        long total = 0;
        foreach (var initializer in model.Graph?.Initializer ?? [])
        {
            long count = 1;
            foreach (var dim in initializer.Dims)
            {
                count *= Math.Max(0, dim);
            }
            total += count * ElementSize((TensorProto.Types.DataType)initializer.DataType);
        }
        return (long)(total * Factor) + OverheadBytes;
    }

    private static int ElementSize(TensorProto.Types.DataType type) => type switch
    {
        TensorProto.Types.DataType.Uint8 or TensorProto.Types.DataType.Int8 or TensorProto.Types.DataType.Bool => 1,
        TensorProto.Types.DataType.Uint16 or TensorProto.Types.DataType.Int16 or TensorProto.Types.DataType.Float16
            or TensorProto.Types.DataType.Bfloat16 => 2,
        TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Int32 or TensorProto.Types.DataType.Uint32 => 4,
        TensorProto.Types.DataType.Complex128 => 16,
        _ => 8,
    };
}
