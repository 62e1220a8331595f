using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;
using Lepton.GpuWorker.Tensors;
using Lepton.Shared;

namespace Lepton.GpuWorker.Protocol;

/// <summary>An output to answer with, and whether it goes as binary data.</summary>
public readonly record struct OutputSelection(string Name, TensorData Data, bool Binary);

/// <summary>
/// Encodes inference responses of the Open Inference Protocol: the JSON header (outputs as JSON
/// <c>data</c>, non-finite numbers as <c>null</c>, or as <c>parameters.binary_data_size</c>), then
/// the binary outputs in order, BYTES elements with 4-byte little-endian length prefixes.
/// </summary>
public static class OipJsonEncoder
{
    /// <summary>
    /// The outputs to answer with: those asked for, in order, each binary if it asked so; or every
    /// output of the model in declaration order, binary if the request said
    /// <c>binary_data_output</c>.
    /// </summary>
    public static OutputSelection[] Select(InferRequest request, IReadOnlyList<string> outputNames, TensorData[] outputs, bool forceBinary = false)
    {
        if (request.Outputs.Count == 0)
        {
            var all = new OutputSelection[outputs.Length];
            for (var i = 0; i < outputs.Length; i++)
            {
                all[i] = new OutputSelection(outputNames[i], outputs[i], forceBinary || request.BinaryOutput);
            }
            return all;
        }
        var chosen = new OutputSelection[request.Outputs.Count];
        for (var i = 0; i < chosen.Length; i++)
        {
            var wanted = request.Outputs[i];
            var index = IndexOf(outputNames, wanted.Name);
            chosen[i] = new OutputSelection(wanted.Name, outputs[index], forceBinary || wanted.Binary);
        }
        return chosen;
    }

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (names[i] == name)
            {
                return i;
            }
        }
        throw new InvalidInputException($"output '{name}' does not exist");
    }

    /// <summary>Writes the response's JSON header; returns whether any output follows as binary data.</summary>
    public static bool WriteHeader(Utf8JsonWriter writer, string model, string version, string id, ReadOnlySpan<OutputSelection> outputs)
    {
        var anyBinary = false;
        writer.WriteStartObject();
        writer.WriteString("model_name"u8, model);
        writer.WriteString("model_version"u8, version);
        writer.WriteString("id"u8, id);
        writer.WriteStartArray("outputs"u8);
        foreach (var output in outputs)
        {
            var tensor = output.Data;
            writer.WriteStartObject();
            writer.WriteString("name"u8, output.Name);
            writer.WriteString("datatype"u8, DataTypes.Name(tensor.Type));
            writer.WriteStartArray("shape"u8);
            foreach (var dim in tensor.Shape)
            {
                writer.WriteNumberValue(dim);
            }
            writer.WriteEndArray();
            if (output.Binary)
            {
                anyBinary = true;
                writer.WriteStartObject("parameters"u8);
                writer.WriteNumber("binary_data_size"u8, tensor.WireLength);
                writer.WriteEndObject();
            }
            else
            {
                writer.WritePropertyName("data"u8);
                WriteData(writer, output.Name, tensor);
            }
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        writer.WriteEndObject();
        writer.Flush();
        return anyBinary;
    }

    private static void WriteData(Utf8JsonWriter writer, string name, TensorData tensor)
    {
        writer.WriteStartArray();
        switch (tensor.Type)
        {
            case DataType.Fp32:
                foreach (var v in tensor.As<float>())
                {
                    if (float.IsFinite(v))
                    {
                        writer.WriteNumberValue(v);
                    }
                    else
                    {
                        writer.WriteNullValue();
                    }
                }
                break;
            case DataType.Fp64:
                foreach (var v in tensor.As<double>())
                {
                    if (double.IsFinite(v))
                    {
                        writer.WriteNumberValue(v);
                    }
                    else
                    {
                        writer.WriteNullValue();
                    }
                }
                break;
            case DataType.Fp16:
                foreach (var v in tensor.As<Half>())
                {
                    if (Half.IsFinite(v))
                    {
                        writer.WriteNumberValue((float)v);
                    }
                    else
                    {
                        writer.WriteNullValue();
                    }
                }
                break;
            case DataType.Bool:
                foreach (var v in tensor.Span)
                {
                    writer.WriteBooleanValue(v != 0);
                }
                break;
            case DataType.Int8:
                WriteIntegers(writer, tensor.As<sbyte>());
                break;
            case DataType.Int16:
                WriteIntegers(writer, tensor.As<short>());
                break;
            case DataType.Int32:
                WriteIntegers(writer, tensor.As<int>());
                break;
            case DataType.Int64:
                WriteIntegers(writer, tensor.As<long>());
                break;
            case DataType.UInt8:
                WriteIntegers(writer, tensor.Span);
                break;
            case DataType.UInt16:
                WriteIntegers(writer, tensor.As<ushort>());
                break;
            case DataType.UInt32:
                WriteIntegers(writer, tensor.As<uint>());
                break;
            case DataType.UInt64:
                foreach (var v in tensor.As<ulong>())
                {
                    writer.WriteNumberValue(v);
                }
                break;
            case DataType.Bytes:
                for (var i = 0; i < tensor.Count; i++)
                {
                    var element = tensor.Element(i);
                    if (!Utf8.IsValid(element))
                    {
                        throw new InvalidInputException(
                            $"output '{name}' holds bytes that are not UTF-8 text, which JSON cannot carry; request it with "
                            + "parameters.binary_data = true");
                    }
                    writer.WriteStringValue(element);
                }
                break;
        }
        writer.WriteEndArray();
    }

    private static void WriteIntegers<T>(Utf8JsonWriter writer, Span<T> values)
        where T : unmanaged, System.Numerics.IBinaryInteger<T>
    {
        foreach (var v in values)
        {
            writer.WriteNumberValue(long.CreateTruncating(v));
        }
    }

    /// <summary>Bytes of binary data following the header.</summary>
    public static long BinaryLength(ReadOnlySpan<OutputSelection> outputs)
    {
        long total = 0;
        foreach (var output in outputs)
        {
            if (output.Binary)
            {
                total += output.Data.WireLength;
            }
        }
        return total;
    }

    /// <summary>Appends the binary outputs (in order) to <paramref name="target"/>.</summary>
    public static void WriteBinary(IBufferWriter<byte> target, ReadOnlySpan<OutputSelection> outputs)
    {
        foreach (var output in outputs)
        {
            if (output.Binary)
            {
                WriteTensorBytes(target, output.Data);
            }
        }
    }

    /// <summary>A tensor's wire bytes: raw little-endian elements, or length-prefixed BYTES elements.</summary>
    public static void WriteTensorBytes(IBufferWriter<byte> target, TensorData tensor)
    {
        if (tensor.Type != DataType.Bytes)
        {
            target.Write(tensor.Span);
            return;
        }
        for (var i = 0; i < tensor.Count; i++)
        {
            var element = tensor.Element(i);
            var span = target.GetSpan(4 + element.Length);
            BinaryPrimitives.WriteInt32LittleEndian(span, element.Length);
            element.CopyTo(span[4..]);
            target.Advance(4 + element.Length);
        }
    }

    /// <summary>The error body every failed request gets: <c>{"error": message, "code": code}</c>.</summary>
    public static void WriteError(Utf8JsonWriter writer, string message, string code)
    {
        writer.WriteStartObject();
        writer.WriteString("error"u8, message);
        writer.WriteString("code"u8, code);
        writer.WriteEndObject();
        writer.Flush();
    }
}
