using Lepton.Shared.Registry;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lepton.Shared.Validation;

/// <summary>
/// One inference on generated input: every output must come back finite and in its declared
/// shape. The input is deterministic (a fixed seed), so a model passes or fails the same way every time.
/// </summary>
public static class SmokeTest
{
    /// <summary>Runs the smoke inference; throws <see cref="InvalidModelException"/> saying what came back wrong.</summary>
    public static void Run(InferenceSession session, Signature signature)
    {
        var random = new Random(0);
        var inputs = new List<OrtValue>();
        try
        {
            foreach (var (name, metadata) in session.InputMetadata)
            {
                inputs.Add(Generate(name, metadata, random));
            }
            IDisposableReadOnlyCollection<OrtValue> outputs;
            try
            {
                using var options = new RunOptions();
                outputs = session.Run(options, session.InputMetadata.Keys.ToList(), inputs, signature.Outputs.Select(o => o.Name).ToList());
            }
            catch (OnnxRuntimeException error)
            {
                throw new InvalidModelException($"smoke inference failed in ONNX Runtime: {FirstLine(error.Message)}");
            }
            using (outputs)
            {
                for (var i = 0; i < signature.Outputs.Count; i++)
                {
                    CheckOutput(signature.Outputs[i], outputs[i]);
                }
            }
        }
        finally
        {
            foreach (var input in inputs)
            {
                input.Dispose();
            }
        }
    }

    private static OrtValue Generate(string name, NodeMetadata metadata, Random random)
    {
        var shape = metadata.Dimensions
            .Select((d, i) => d > 0 ? d : (i == 0 ? OnnxInspection.SmokeBatch : OnnxInspection.SmokeSymbolicDim))
            .ToArray();
        var count = checked((int)shape.Aggregate(1L, (a, b) => a * b));
        return metadata.ElementDataType switch
        {
            TensorElementType.Float => Tensor(Fill(count, () => (float)random.NextDouble()), shape),
            TensorElementType.Double => Tensor(Fill(count, random.NextDouble), shape),
            TensorElementType.Float16 => Tensor(Fill(count, () => (Float16)(float)random.NextDouble()), shape),
            TensorElementType.BFloat16 => Tensor(Fill(count, () => (BFloat16)(float)random.NextDouble()), shape),
            TensorElementType.Int64 => Tensor(Fill(count, () => (long)random.Next(4)), shape),
            TensorElementType.Int32 => Tensor(Fill(count, () => random.Next(4)), shape),
            TensorElementType.Int16 => Tensor(Fill(count, () => (short)random.Next(4)), shape),
            TensorElementType.Int8 => Tensor(Fill(count, () => (sbyte)random.Next(4)), shape),
            TensorElementType.UInt8 => Tensor(Fill(count, () => (byte)random.Next(4)), shape),
            TensorElementType.UInt16 => Tensor(Fill(count, () => (ushort)random.Next(4)), shape),
            TensorElementType.UInt32 => Tensor(Fill(count, () => (uint)random.Next(4)), shape),
            TensorElementType.UInt64 => Tensor(Fill(count, () => (ulong)random.Next(4)), shape),
            TensorElementType.Bool => Tensor(Fill(count, () => random.Next(2) == 1), shape),
            TensorElementType.String => Strings(count, shape),
            var other => throw new InvalidModelException(
                $"input {ModelName.Quote(name)} has type {OrtModels.TypeName(other)}, which Lepton cannot generate smoke input for; "
                + "use float, double, integer, bool or string tensor inputs"),
        };
    }

    private static OrtValue Tensor<T>(T[] values, long[] shape)
        where T : unmanaged => OrtValue.CreateTensorValueFromMemory(values, shape);

    private static OrtValue Strings(int count, long[] shape)
    {
        var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
        for (var i = 0; i < count; i++)
        {
            value.StringTensorSetElementAt("lepton".AsSpan(), i);
        }
        return value;
    }

    private static T[] Fill<T>(int count, Func<T> next)
    {
        var values = new T[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = next();
        }
        return values;
    }

    private static void CheckOutput(TensorSpec spec, OrtValue value)
    {
        var name = ModelName.Quote(spec.Name);
        if (!value.IsTensor)
        {
            throw new InvalidModelException($"output {name} is not a tensor; Lepton serves tensors only");
        }
        var info = value.GetTensorTypeAndShape();
        var shape = info.Shape;
        var matches = shape.Length == spec.Shape.Count && spec.Shape.Select((d, i) => d is null || d == shape[i]).All(ok => ok);
        if (!matches)
        {
            throw new InvalidModelException(
                $"output {name} declared shape {SignatureCompatibility.Show(spec.Shape)} but smoke inference returned "
                + $"[{string.Join(", ", shape)}]; fix the graph's output shape");
        }
        var bad = info.ElementDataType switch
        {
            TensorElementType.Float => CountNonFinite(value.GetTensorDataAsSpan<float>(), float.IsFinite),
            TensorElementType.Double => CountNonFinite(value.GetTensorDataAsSpan<double>(), double.IsFinite),
            TensorElementType.Float16 => CountNonFinite(value.GetTensorDataAsSpan<Float16>(), h => float.IsFinite(h.ToFloat())),
            TensorElementType.BFloat16 => CountNonFinite(value.GetTensorDataAsSpan<BFloat16>(), h => float.IsFinite(h.ToFloat())),
            _ => 0,
        };
        if (bad > 0)
        {
            throw new InvalidModelException(
                $"output {name} has {bad} non-finite value(s) (NaN/inf) on generated input in the valid range; the model is numerically broken");
        }
    }

    private static int CountNonFinite<T>(ReadOnlySpan<T> values, Func<T, bool> isFinite)
    {
        var bad = 0;
        foreach (var v in values)
        {
            if (!isFinite(v))
            {
                bad++;
            }
        }
        return bad;
    }

    /// <summary>
    /// The readable part of an ONNX Runtime message: its first line without the error-code prefix,
    /// the C++ source location and function signature, and with any path replaced, since the
    /// message becomes a rejection reason a user reads.
    /// </summary>
    internal static string FirstLine(string message) => OrtMessages.Clean(message);
}
