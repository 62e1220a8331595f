using System.Buffers;
using System.Text;
using CsCheck;
using Lepton.GpuWorker.Grpc;
using Lepton.GpuWorker.Protocol;
using Lepton.Shared;
using Proto = Lepton.GpuWorker.Grpc.Protocol;

namespace Lepton.GpuWorker.Tests.Unit;

/// <summary>
/// Property tests: no body, however malformed, makes a decoder fail with anything but a caller error
/// (400 or 413) — never a 5xx — and the element budget holds for any shape.
/// </summary>
public sealed class HostileInputTests
{
    private const long Budget = 10_000;

    private static readonly string[] Fragments =
    [
        "{", "}", "[", "]", ",", ":", "\"inputs\"", "\"outputs\"", "\"name\"", "\"datatype\"", "\"shape\"", "\"data\"",
        "\"parameters\"", "\"binary_data_size\"", "\"binary_data_output\"", "\"binary_data\"", "\"id\"", "\"FP32\"", "\"BYTES\"",
        "\"INT8\"", "\"BOOL\"", "\"x\"", "0", "1", "-1", "4", "1e400", "9223372036854775807", "2.5", "true", "false", "null",
        "\"\\u0000\"", "\"\\ud800\"", " ",
    ];

    private static void MustBeCallerError(Action decode)
    {
        try
        {
            decode();
        }
        catch (LeptonException error) when (error.StatusCode is 400 or 413)
        {
        }
    }

    private static void DecodeAndDispose(byte[] body, int? headerLength)
    {
        using var request = OipJsonDecoder.Decode(new ReadOnlySequence<byte>(body), headerLength, Budget);
        Assert.True(request.Elements <= Budget);
    }

    [Fact]
    public void Random_bytes_never_escape_as_server_errors()
    {
        Gen.Byte.Array[0, 300].Sample(body =>
        {
            MustBeCallerError(() => DecodeAndDispose(body, null));
            MustBeCallerError(() => DecodeAndDispose(body, body.Length > 1 ? body.Length / 2 : null));
        }, iter: 3000);
    }

    [Fact]
    public void Json_shaped_noise_never_escapes_as_server_errors()
    {
        Gen.Int[0, Fragments.Length - 1].Select(i => Fragments[i]).Array[0, 60].Select(parts => Encoding.UTF8.GetBytes(string.Concat(parts))).Sample(body =>
            MustBeCallerError(() => DecodeAndDispose(body, null)), iter: 5000);
    }

    [Fact]
    public void Mutated_valid_requests_never_escape_as_server_errors()
    {
        var header = Encoding.UTF8.GetBytes("""{"id":"a","inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}},{"name":"t","shape":[2],"datatype":"BYTES","data":["ab","c"]}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]}""");
        var valid = header.Concat(new byte[16]).ToArray();
        DecodeAndDispose(valid, header.Length);
        Gen.Select(Gen.Int[0, valid.Length - 1], Gen.Byte, Gen.Int[0, 3], Gen.Int[-8, 8]).Sample((position, value, how, shift) =>
        {
            var body = (byte[])valid.Clone();
            switch (how)
            {
                case 0:
                    body[position] = value;
                    break;
                case 1:
                    body = body[..position];
                    break;
                case 2:
                    body = [.. body[..position], value, .. body[position..]];
                    break;
                default:
                    body[position] ^= (byte)(1 << (value % 8));
                    break;
            }
            var length = Math.Clamp(header.Length + shift, 1, Math.Max(1, body.Length));
            MustBeCallerError(() => DecodeAndDispose(body, body.Length == 0 ? null : length));
        }, iter: 5000);
    }

    [Fact]
    public void Any_shape_is_checked_against_the_budget_before_allocating()
    {
        Gen.Long[-5, long.MaxValue].Array[0, 6].Sample(shape =>
        {
            var json = $$"""{"inputs":[{"name":"x","datatype":"FP32","shape":[{{string.Join(",", shape)}}],"data":[]}]}""";
            MustBeCallerError(() => DecodeAndDispose(Encoding.UTF8.GetBytes(json), null));
        }, iter: 2000);
    }

    [Fact]
    public void Malformed_grpc_messages_never_escape_as_server_errors()
    {
        string[] names = ["FP32", "INT64", "BYTES", "FP16", "BOOL", "UINT8", "nope", ""];
        var datatypes = Gen.Int[0, names.Length - 1].Select(i => names[i]);
        Gen.Select(datatypes, Gen.Long[-2, 1L << 40].Array[0, 4], Gen.Byte.Array[0, 64], Gen.Float.Array[0, 10], Gen.Bool).Sample((datatype, shape, raw, floats, useRaw) =>
        {
            var request = new Proto.ModelInferRequest { ModelName = "m" };
            var input = new Proto.ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = datatype, Contents = new Proto.InferTensorContents() };
            input.Shape.AddRange(shape);
            input.Contents.Fp32Contents.AddRange(floats);
            request.Inputs.Add(input);
            if (useRaw)
            {
                request.RawInputContents.Add(Google.Protobuf.ByteString.CopyFrom(raw));
            }
            MustBeCallerError(() =>
            {
                using var decoded = GrpcInferenceService.Decode(request, Budget);
            });
        }, iter: 3000);
    }
}
