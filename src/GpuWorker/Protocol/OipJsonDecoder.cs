using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Lepton.GpuWorker.Tensors;
using Lepton.Shared;

namespace Lepton.GpuWorker.Protocol;

/// <summary>
/// Decodes an Open Inference Protocol v2 HTTP request body (KServe v2 / Triton) into an
/// <see cref="InferRequest"/>: a JSON header with tensors as JSON <c>data</c> (flat or nested,
/// row-major), or, with Triton's binary tensor extension, raw little-endian bytes after the JSON
/// header whose length is the <c>Inference-Header-Content-Length</c> header, each input saying its
/// size in <c>parameters.binary_data_size</c>. BYTES elements are 4-byte little-endian lengths and
/// their bytes. Every malformed part raises <see cref="InvalidInputException"/> naming the field;
/// the element budget is checked from the shapes before any tensor buffer is allocated.
/// </summary>
public static class OipJsonDecoder
{
    public const string HeaderLengthHeader = "Inference-Header-Content-Length";

    private const int MaxNesting = 32;

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 64, CommentHandling = JsonCommentHandling.Disallow };

    /// <summary>The JSON header's length from the header value, or <c>null</c> when the header is absent.</summary>
    public static int? ParseHeaderLength(string? raw, long bodyLength)
    {
        if (raw is null)
        {
            return null;
        }
        if (!int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var length))
        {
            throw Fail($"{HeaderLengthHeader} '{Clip(raw)}' is not a number");
        }
        if (length <= 0 || length > bodyLength)
        {
            throw Fail($"{HeaderLengthHeader} {length} must be within 1..{bodyLength} (the body size)");
        }
        return length;
    }

    /// <summary>Parses the body; <paramref name="maxElements"/> bounds the elements of all inputs together.</summary>
    public static InferRequest Decode(ReadOnlySequence<byte> body, int? headerLength, long maxElements)
    {
        var header = headerLength is { } n ? body.Slice(0, n) : body;
        var binary = headerLength is { } m ? body.Slice(m) : ReadOnlySequence<byte>.Empty;
        var inputs = new List<NamedTensor>();
        try
        {
            var reader = new Utf8JsonReader(header, ReaderOptions);
            return ReadRequest(ref reader, binary, headerLength is not null, maxElements, inputs);
        }
        catch (JsonException error)
        {
            Dispose(inputs);
            throw Fail($"the body is not valid JSON ({error.Message})");
        }
        catch (InvalidOperationException)
        {
            // Utf8JsonReader validates UTF-8 only when a string is transcoded.
            Dispose(inputs);
            throw Fail("the body is not valid JSON (a string is not valid UTF-8)");
        }
        catch
        {
            Dispose(inputs);
            throw;
        }
    }

    private static InferRequest ReadRequest(
        ref Utf8JsonReader reader, ReadOnlySequence<byte> binary, bool hasHeaderLength, long maxElements, List<NamedTensor> inputs)
    {
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw Fail("the body must be a JSON object with an 'inputs' list");
        }
        string? id = null;
        var sawInputs = false;
        var outputs = new List<RequestedOutput>();
        var binaryOutput = false;
        long offset = 0;
        long elements = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("inputs"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    throw Fail("'inputs' must be a non-empty list of tensors");
                }
                sawInputs = true;
                var position = 0;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    var input = ReadInput(ref reader, position++, binary, hasHeaderLength, maxElements, ref offset, ref elements);
                    if (inputs.Exists(i => i.Name == input.Name))
                    {
                        input.Data.Dispose();
                        throw Fail($"input '{Clip(input.Name)}' appears twice");
                    }
                    inputs.Add(input);
                }
            }
            else if (reader.ValueTextEquals("outputs"u8))
            {
                reader.Read();
                ReadOutputs(ref reader, outputs);
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                id = reader.TokenType switch
                {
                    JsonTokenType.String => reader.GetString(),
                    JsonTokenType.Number => Encoding.UTF8.GetString(reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan),
                    JsonTokenType.Null => null,
                    _ => throw Fail("'id' must be a string"),
                };
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    throw Fail("'parameters' must be an object");
                }
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("binary_data_output"u8))
                    {
                        reader.Read();
                        binaryOutput = ReadBool(ref reader, "parameters.binary_data_output");
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Skip();
            }
        }
        // Anything after the top-level object (other than whitespace) is malformed JSON.
        if (reader.Read())
        {
            throw Fail("the body holds more than one JSON value");
        }
        if (!sawInputs || inputs.Count == 0)
        {
            throw Fail("'inputs' must be a non-empty list of tensors");
        }
        if (offset != binary.Length)
        {
            throw Fail($"{binary.Length - offset} bytes of binary data are not claimed by any input");
        }
        return new InferRequest(id, inputs, outputs, binaryOutput);
    }

    private static NamedTensor ReadInput(
        ref Utf8JsonReader reader,
        int position,
        ReadOnlySequence<byte> binary,
        bool hasHeaderLength,
        long maxElements,
        ref long offset,
        ref long elements)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Fail($"inputs[{position}] must be an object with name, datatype, shape and data");
        }
        string? name = null;
        DataType? datatype = null;
        string? datatypeText = null;
        List<long>? shape = null;
        long? binarySize = null;
        var hasData = false;
        var data = default(Utf8JsonReader);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                name = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                if (string.IsNullOrEmpty(name))
                {
                    throw Fail($"inputs[{position}].name must be a non-empty string");
                }
            }
            else if (reader.ValueTextEquals("datatype"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.String)
                {
                    throw Fail($"inputs[{position}].datatype must be a string such as 'FP32'");
                }
                datatypeText = reader.GetString()!;
                datatype = DataTypes.TryParse(datatypeText, out var parsed) ? parsed : null;
            }
            else if (reader.ValueTextEquals("shape"u8))
            {
                reader.Read();
                shape = ReadShape(ref reader, position);
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                reader.Read();
                binarySize = ReadInputParameters(ref reader, position);
            }
            else if (reader.ValueTextEquals("data"u8))
            {
                // The data may come before the datatype and shape: remember where it is and
                // read it once the tensor's type and size are known.
                data = reader;
                hasData = true;
                reader.Skip();
            }
            else
            {
                reader.Skip();
            }
        }
        if (name is null)
        {
            throw Fail($"inputs[{position}].name must be a non-empty string");
        }
        var label = $"input '{Clip(name)}'";
        if (datatypeText is null)
        {
            throw Fail($"{label}: datatype must be a string such as 'FP32'");
        }
        if (datatype is not { } type)
        {
            throw Fail($"{label} has datatype '{Clip(datatypeText)}'; supported: {DataTypes.SupportedNames}");
        }
        if (shape is null)
        {
            throw Fail($"{label}: shape must be a list of non-negative integers");
        }
        var count = ElementCount(shape, label, maxElements);
        elements += count;
        if (elements > maxElements)
        {
            throw new PayloadTooLargeException(
                $"the request's inputs hold {elements} or more elements, over the budget of {maxElements} per request "
                + "(LEPTON_WORKER_MAX_ELEMENTS); send fewer rows per request");
        }
        var dims = shape.ToArray();
        if (binarySize is { } size)
        {
            if (!hasHeaderLength)
            {
                throw Fail($"{label} has binary_data_size but the request has no {HeaderLengthHeader} header");
            }
            if (offset + size > binary.Length)
            {
                throw Fail($"{label}: the binary data ends after {binary.Length - offset} of {size} bytes");
            }
            var chunk = binary.Slice(offset, size);
            offset += size;
            return new NamedTensor(name, ReadBinary(chunk, type, dims, (int)count, label));
        }
        if (!hasData)
        {
            throw Fail($"{label} has neither 'data' nor parameters.binary_data_size");
        }
        data.Read();
        return new NamedTensor(name, ReadJsonData(ref data, type, dims, (int)count, label));
    }

    private static List<long> ReadShape(ref Utf8JsonReader reader, int position)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Fail($"inputs[{position}].shape must be a list of non-negative integers");
        }
        var shape = new List<long>(4);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var dim) || dim < 0)
            {
                throw Fail($"inputs[{position}].shape must be a list of non-negative integers");
            }
            if (shape.Count == MaxNesting)
            {
                throw Fail($"inputs[{position}].shape has more than {MaxNesting} dimensions");
            }
            shape.Add(dim);
        }
        return shape;
    }

    internal static long ElementCount(IReadOnlyList<long> shape, string label, long maxElements)
    {
        long count = 1;
        foreach (var dim in shape)
        {
            // Checked against the budget dimension by dimension, so a hostile shape cannot overflow.
            if (dim != 0 && count > maxElements / dim)
            {
                throw new PayloadTooLargeException(
                    $"{label} has shape [{string.Join(", ", shape)}], over the budget of {maxElements} elements per request "
                    + "(LEPTON_WORKER_MAX_ELEMENTS); send fewer rows per request");
            }
            count *= dim;
        }
        return count;
    }

    private static long? ReadInputParameters(ref Utf8JsonReader reader, int position)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Fail($"inputs[{position}].parameters must be an object");
        }
        long? size = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("binary_data_size"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var value) || value < 0)
                {
                    throw Fail($"inputs[{position}]: binary_data_size must be a whole number of bytes");
                }
                size = value;
            }
            else if (reader.ValueTextEquals("shared_memory_region"u8))
            {
                throw Fail($"inputs[{position}] names a shared memory region; this worker does not serve the shared memory extensions: send the data in the body");
            }
            else
            {
                reader.Skip();
            }
        }
        return size;
    }

    private static void ReadOutputs(ref Utf8JsonReader reader, List<RequestedOutput> outputs)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return;
        }
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Fail("'outputs' must be a list of {name, parameters}");
        }
        var position = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw Fail($"outputs[{position}] must be an object with a 'name'");
            }
            string? name = null;
            var binary = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("name"u8))
                {
                    reader.Read();
                    name = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }
                else if (reader.ValueTextEquals("parameters"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        throw Fail($"outputs[{position}].parameters must be an object");
                    }
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("binary_data"u8))
                        {
                            reader.Read();
                            binary = ReadBool(ref reader, $"outputs[{position}].parameters.binary_data");
                        }
                        else if (reader.ValueTextEquals("classification"u8))
                        {
                            throw Fail($"outputs[{position}] asks for classification; this worker does not serve the classification extension: request the scores and take the top classes");
                        }
                        else if (reader.ValueTextEquals("shared_memory_region"u8))
                        {
                            throw Fail($"outputs[{position}] names a shared memory region; this worker does not serve the shared memory extensions");
                        }
                        else
                        {
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    reader.Skip();
                }
            }
            if (string.IsNullOrEmpty(name))
            {
                throw Fail($"outputs[{position}] must be an object with a 'name'");
            }
            if (outputs.Exists(o => o.Name == name))
            {
                throw Fail($"output '{Clip(name)}' is requested twice");
            }
            outputs.Add(new RequestedOutput(name, binary));
            position++;
        }
    }

    private static bool ReadBool(ref Utf8JsonReader reader, string field) => reader.TokenType switch
    {
        JsonTokenType.True => true,
        JsonTokenType.False => false,
        _ => throw Fail($"{field} must be true or false"),
    };

    private static TensorData ReadBinary(ReadOnlySequence<byte> chunk, DataType type, long[] shape, int count, string label)
    {
        if (type == DataType.Bytes)
        {
            return ReadBytesElements(chunk, shape, count, label);
        }
        var expected = (long)count * DataTypes.ElementSize(type);
        if (chunk.Length != expected)
        {
            throw Fail(
                $"{label}: binary_data_size {chunk.Length} does not match shape [{string.Join(", ", shape)}] of "
                + $"{DataTypes.Name(type)} ({expected} bytes)");
        }
        var tensor = TensorData.Numeric(type, shape, count);
        chunk.CopyTo(tensor.Span);
        if (type == DataType.Bool)
        {
            // ONNX booleans are one byte holding 0 or 1; any other byte is read as true.
            foreach (ref var b in tensor.Span)
            {
                b = b == 0 ? (byte)0 : (byte)1;
            }
        }
        return tensor;
    }

    /// <summary>BYTES elements as Triton serializes them: a 4-byte little-endian length, then the bytes.</summary>
    public static TensorData ReadBytesElements(ReadOnlySequence<byte> chunk, long[] shape, int count, string label)
    {
        var capacity = (int)Math.Max(0, chunk.Length - (4L * count));
        var tensor = TensorData.Strings(shape, count, capacity);
        try
        {
            var reader = new SequenceReader<byte>(chunk);
            for (var i = 0; i < count; i++)
            {
                if (!reader.TryReadLittleEndian(out int length) || length < 0 || reader.Remaining < length)
                {
                    throw Fail(
                        $"{label}: the BYTES data ends inside element {i} of {count} (each element is a 4-byte "
                        + "little-endian length followed by that many bytes)");
                }
                var target = tensor.ReserveElement(i, length);
                reader.UnreadSequence.Slice(0, length).CopyTo(target);
                reader.Advance(length);
                tensor.CommitElement(i, length);
            }
            if (reader.Remaining != 0)
            {
                throw Fail($"{label}: {reader.Remaining} bytes follow the {count} BYTES elements of its shape");
            }
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    private static TensorData ReadJsonData(ref Utf8JsonReader reader, DataType type, long[] shape, int count, string label)
    {
        var name = DataTypes.Name(type);
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Fail($"{label}: data must be a list of {name} values");
        }
        var tensor = type == DataType.Bytes ? TensorData.Strings(shape, count, count * 8) : TensorData.Numeric(type, shape, count);
        try
        {
            var depth = 0;
            var index = 0;
            while (true)
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartArray:
                        if (++depth > MaxNesting)
                        {
                            throw Fail($"{label}: data is nested more than {MaxNesting} levels deep");
                        }
                        break;
                    case JsonTokenType.EndArray:
                        depth--;
                        break;
                    case JsonTokenType.Number or JsonTokenType.True or JsonTokenType.False or JsonTokenType.String:
                        if (index < count)
                        {
                            Store(ref reader, tensor, index, type, label);
                        }
                        index++;
                        break;
                    default:
                        throw Fail($"{label}: data must be a (flat or nested) list of {name} values");
                }
                if (depth == 0)
                {
                    break;
                }
                reader.Read();
            }
            if (index != count)
            {
                throw Fail($"{label}: data has {index} values but the shape [{string.Join(", ", shape)}] needs {count}");
            }
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    private static void Store(ref Utf8JsonReader reader, TensorData tensor, int index, DataType type, string label)
    {
        if (type == DataType.Bytes)
        {
            if (reader.TokenType != JsonTokenType.String)
            {
                throw Fail($"{label}: data must be a list of BYTES values (strings)");
            }
            var room = tensor.ReserveElement(index, reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length);
            tensor.CommitElement(index, reader.CopyString(room));
            return;
        }
        var span = tensor.Span;
        if (type == DataType.Bool)
        {
            span[index] = reader.TokenType switch
            {
                JsonTokenType.True => 1,
                JsonTokenType.False => 0,
                JsonTokenType.Number when reader.TryGetInt32(out var v) && v is 0 or 1 => (byte)v,
                _ => throw Fail($"{label}: data must be a list of BOOL values (true/false)"),
            };
            return;
        }
        if (reader.TokenType != JsonTokenType.Number)
        {
            throw Fail($"{label}: data must be a (flat or nested) list of {DataTypes.Name(type)} values");
        }
        var ok = type switch
        {
            DataType.Fp32 => Put(span, index, reader.TryGetSingle(out var f), f),
            DataType.Fp64 => Put(span, index, reader.TryGetDouble(out var d), d),
            DataType.Fp16 => Put(span, index, reader.TryGetSingle(out var h), (Half)h),
            DataType.Int8 => Put(span, index, reader.TryGetSByte(out var i8), i8),
            DataType.Int16 => Put(span, index, reader.TryGetInt16(out var i16), i16),
            DataType.Int32 => Put(span, index, reader.TryGetInt32(out var i32), i32),
            DataType.Int64 => Put(span, index, reader.TryGetInt64(out var i64), i64),
            DataType.UInt8 => Put(span, index, reader.TryGetByte(out var u8), u8),
            DataType.UInt16 => Put(span, index, reader.TryGetUInt16(out var u16), u16),
            DataType.UInt32 => Put(span, index, reader.TryGetUInt32(out var u32), u32),
            DataType.UInt64 => Put(span, index, reader.TryGetUInt64(out var u64), u64),
            _ => false,
        };
        if (!ok)
        {
            var kind = DataTypes.IsFloat(type) ? "numbers" : "whole numbers within the type's range";
            throw Fail($"{label}: data must be a list of {DataTypes.Name(type)} values ({kind})");
        }
    }

    private static bool Put<T>(Span<byte> span, int index, bool parsed, T value)
        where T : unmanaged
    {
        if (parsed)
        {
            MemoryMarshal.Cast<byte, T>(span)[index] = value;
        }
        return parsed;
    }

    private static void Dispose(List<NamedTensor> inputs)
    {
        foreach (var input in inputs)
        {
            input.Data.Dispose();
        }
    }

    /// <summary>At most 64 characters of caller-supplied text in an error message.</summary>
    internal static string Clip(string text) => text.Length <= 64 ? text : string.Concat(text.AsSpan(0, 61), "...");

    internal static InvalidInputException Fail(string problem) => new(
        $"malformed inference request: {problem}; see the Open Inference Protocol v2 (KServe/Triton) request format");
}
