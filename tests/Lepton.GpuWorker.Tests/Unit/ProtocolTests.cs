using System.Buffers;
using System.Text;
using System.Text.Json;
using Lepton.GpuWorker.Protocol;
using Lepton.GpuWorker.Tensors;
using Lepton.Shared;

namespace Lepton.GpuWorker.Tests.Unit;

/// <summary>Open Inference Protocol decoding and encoding: JSON, the binary extension, BYTES, malformed requests.</summary>
public sealed class ProtocolTests
{
    private static InferRequest Decode(string json, long maxElements = 1_000_000) =>
        OipJsonDecoder.Decode(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(json)), null, maxElements);

    private static InferRequest DecodeBinary(string header, byte[] binary, long maxElements = 1_000_000)
    {
        var head = Encoding.UTF8.GetBytes(header);
        byte[] body = [.. head, .. binary];
        return OipJsonDecoder.Decode(new ReadOnlySequence<byte>(body), OipJsonDecoder.ParseHeaderLength(head.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), body.Length), maxElements);
    }

    [Fact]
    public void Json_tensors_flat_and_nested_in_any_key_order()
    {
        using var request = Decode("""
            {"id": "abc", "inputs": [
              {"data": [1, 2.5, 3, 4], "name": "x", "shape": [2, 2], "datatype": "FP32"},
              {"name": "y", "datatype": "INT64", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
              {"name": "b", "datatype": "BOOL", "shape": [3], "data": [true, false, 1]}
            ]}
            """);
        Assert.Equal("abc", request.Id);
        var x = request.Inputs[0].Data;
        Assert.Equal(DataType.Fp32, x.Type);
        Assert.Equal([2L, 2L], x.Shape);
        Assert.Equal([1f, 2.5f, 3f, 4f], x.As<float>().ToArray());
        Assert.Equal([1L, 2L, 3L, 4L], request.Inputs[1].Data.As<long>().ToArray());
        Assert.Equal([1, 0, 1], request.Inputs[2].Data.Span.ToArray());
        Assert.Empty(request.Outputs);
        Assert.False(request.BinaryOutput);
    }

    [Fact]
    public void Binary_tensors_follow_the_json_header_in_input_order()
    {
        var a = new float[] { 0, 1, 2, 3, 4, 5 };
        var raw = new byte[24];
        Buffer.BlockCopy(a, 0, raw, 0, 24);
        using var request = DecodeBinary("""
            {"inputs": [
              {"name": "a", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 24}},
              {"name": "b", "datatype": "BOOL", "shape": [2], "parameters": {"binary_data_size": 2}}
            ], "outputs": [{"name": "out", "parameters": {"binary_data": true}}], "parameters": {"binary_data_output": true}}
            """, [.. raw, 1, 7]);
        Assert.Equal(a, request.Inputs[0].Data.As<float>().ToArray());
        Assert.Equal([1, 1], request.Inputs[1].Data.Span.ToArray());
        Assert.Equal([new RequestedOutput("out", true)], request.Outputs);
        Assert.True(request.BinaryOutput);
    }

    [Fact]
    public void Bytes_elements_in_binary_and_json()
    {
        byte[] serialized = [3, 0, 0, 0, (byte)'a', (byte)'b', (byte)'c', 0, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xfe];
        using var binary = DecodeBinary("""{"inputs": [{"name": "t", "datatype": "BYTES", "shape": [3], "parameters": {"binary_data_size": 17}}]}""", serialized);
        var t = binary.Inputs[0].Data;
        Assert.Equal("abc"u8.ToArray(), t.Element(0).ToArray());
        Assert.Empty(t.Element(1).ToArray());
        Assert.Equal([0xff, 0xfe], t.Element(2).ToArray());
        Assert.Equal(17, t.WireLength);
        using var json = Decode("""{"inputs": [{"name": "t", "datatype": "BYTES", "shape": [2], "data": ["h\u00e9", "x\"y"]}]}""");
        Assert.Equal("hé"u8.ToArray(), json.Inputs[0].Data.Element(0).ToArray());
        Assert.Equal("x\"y"u8.ToArray(), json.Inputs[0].Data.Element(1).ToArray());
        var bad = Assert.Throws<InvalidInputException>(() => DecodeBinary("""{"inputs": [{"name": "t", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 6}}]}""", [9, 0, 0, 0, 1, 2]));
        Assert.Contains("ends inside element 0", bad.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("[1, 2]", "JSON object")]
    [InlineData("""{"inputs": []}""", "non-empty list")]
    [InlineData("""{"outputs": []}""", "non-empty list")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1]}]}""", "needs 2")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}""", "non-negative")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1], "data": [1]}]}""", "supported: BOOL")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ["a"]}]}""", "FP32 values")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}""", "INT8 values")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "INT64", "shape": [1], "data": [1.5]}]}""", "whole numbers")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}""", "neither")]
    [InlineData("""{"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}""", "name")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}, {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}""", "twice")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]}""", "no Inference-Header")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"shared_memory_region": "r"}}]}""", "shared memory")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": [{"name": "y", "parameters": {"classification": 3}}]}""", "classification")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]} {}""", "not valid JSON")]
    [InlineData("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [NaN]}]}""", "not valid JSON")]
    public void Malformed_requests_say_what_is_wrong(string body, string fragment)
    {
        var error = Assert.Throws<InvalidInputException>(() => Decode(body));
        Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
        Assert.Contains("Open Inference Protocol", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Binary_sizes_must_match_and_be_fully_claimed()
    {
        string Header(int size) => $$$"""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": {{{size}}}}}]}""";
        Assert.Contains("does not match shape", Assert.Throws<InvalidInputException>(() => DecodeBinary(Header(4), new byte[4])).Message, StringComparison.Ordinal);
        Assert.Contains("ends after 4", Assert.Throws<InvalidInputException>(() => DecodeBinary(Header(8), new byte[4])).Message, StringComparison.Ordinal);
        Assert.Contains("not claimed", Assert.Throws<InvalidInputException>(() => DecodeBinary(Header(8), new byte[12])).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("999999")]
    public void Bad_header_lengths_are_refused(string raw)
    {
        var error = Assert.Throws<InvalidInputException>(() => OipJsonDecoder.ParseHeaderLength(raw, 100));
        Assert.Contains("Inference-Header-Content-Length", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_element_budget_is_checked_from_the_shapes_before_allocating()
    {
        var error = Assert.Throws<PayloadTooLargeException>(() => Decode("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [4611686018427387904, 4611686018427387904], "data": []}]}""", 1000));
        Assert.Contains("LEPTON_WORKER_MAX_ELEMENTS", error.Message, StringComparison.Ordinal);
        // The budget is per request: two inputs that fit alone do not fit together.
        Assert.Throws<PayloadTooLargeException>(() => DecodeBinary(
            """{"inputs": [{"name": "x", "datatype": "FP32", "shape": [600], "parameters": {"binary_data_size": 2400}}, {"name": "y", "datatype": "FP32", "shape": [600], "parameters": {"binary_data_size": 2400}}]}""",
            new byte[4800], 1000));
        using var fits = Decode("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0, 1000000000000], "data": []}]}""", 1000);
        Assert.Equal(0, fits.Inputs[0].Data.Count);
    }

    private static string Encode(InferRequest request, params TensorData[] outputs)
    {
        var selected = OipJsonEncoder.Select(request, ["label", "p"], outputs);
        var buffer = new ArrayBufferWriter<byte>();
        using var writer = new Utf8JsonWriter(buffer);
        var binary = OipJsonEncoder.WriteHeader(writer, "m", "1.0.0", "r", selected);
        var header = Encoding.UTF8.GetString(buffer.WrittenSpan);
        if (binary)
        {
            OipJsonEncoder.WriteBinary(buffer, selected);
        }
        return header + "|" + Convert.ToHexString(buffer.WrittenSpan[Encoding.UTF8.GetByteCount(header)..]);
    }

    [Fact]
    public void Responses_in_json_and_binary_with_nonfinite_as_null()
    {
        using var label = TensorData.Numeric(DataType.Int64, [1], 1);
        label.As<long>()[0] = 1;
        using var p = TensorData.Numeric(DataType.Fp32, [1, 2], 2);
        p.As<float>()[0] = 0.25f;
        p.As<float>()[1] = float.NaN;
        using var all = Decode("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}""");
        Assert.Equal(
            """{"model_name":"m","model_version":"1.0.0","id":"r","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[1]},{"name":"p","datatype":"FP32","shape":[1,2],"data":[0.25,null]}]}|""",
            Encode(all, label, p));
        using var one = Decode("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": [{"name": "p", "parameters": {"binary_data": true}}]}""");
        var encoded = Encode(one, label, p);
        Assert.StartsWith("""{"model_name":"m","model_version":"1.0.0","id":"r","outputs":[{"name":"p","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}]}|0000803E""", encoded, StringComparison.Ordinal);
    }
}
