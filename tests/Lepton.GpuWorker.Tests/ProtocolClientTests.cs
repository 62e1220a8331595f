using System.Globalization;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Lepton.Cli.Samples;
using Lepton.GpuWorker.Grpc.Protocol;
using Lepton.GpuWorker.Tests.Harness;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Workers;
using Lepton.Testing;
using Microsoft.ML.OnnxRuntime;

namespace Lepton.GpuWorker.Tests;

/// <summary>
/// Existing Open Inference Protocol clients work unchanged: the exact bytes tritonclient 2.73's HTTP
/// client writes (read from its source: python-rapidjson's compact JSON, geventhttpclient's request
/// head, binary tensors after the header) replayed over a plain socket; gRPC messages encoded by
/// field number as Triton's grpc_service.proto defines them; HTTP and gRPC giving identical answers.
/// </summary>
public sealed class ProtocolClientTests(AzuriteFixture azurite) : IDisposable
{
    private readonly string _model = TestNames.Model("oip");
    private readonly string _cache = Path.Combine(Path.GetTempPath(), "lepton-worker-" + Guid.NewGuid().ToString("N")[..8]);

    private Publisher Publisher => new(azurite.Clients, _cache + "-publisher");

    public void Dispose()
    {
        foreach (var dir in new[] { _cache, _cache + "-publisher" })
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private async Task<(WorkerHost Worker, byte[] Onnx)> DigitsAsync()
    {
        var onnx = TestModels.Digits();
        await Publisher.PublishAsync(_model, "1.0.0", onnx);
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
        var settings = WorkerHost.Defaults(azurite, _cache, _model);
        settings["LEPTON_WORKER_MAX_BODY_BYTES"] = "16384";
        var worker = await WorkerHost.StartAsync(settings);
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
        return (worker, onnx);
    }

    private (long[] Labels, float[] Probabilities) Expected(byte[] onnx, float[] x, int rows)
    {
        var path = Path.Combine(_cache, "expected.onnx");
        Directory.CreateDirectory(_cache);
        File.WriteAllBytes(path, onnx);
        using var session = new InferenceSession(path);
        using var input = OrtValue.CreateTensorValueFromMemory(x, [rows, 64]);
        using var outputs = session.Run(new RunOptions(), ["input"], [input], ["label", "probabilities"]);
        return (outputs[0].GetTensorDataAsSpan<long>().ToArray(), outputs[1].GetTensorDataAsSpan<float>().ToArray());
    }

    /// <summary>How Python's repr writes a float32 value turned into a Python float (what rapidjson emits).</summary>
    private static string PyRepr(float value)
    {
        var text = ((double)value).ToString("R", CultureInfo.InvariantCulture);
        return text.Contains('.', StringComparison.Ordinal) || text.Contains('E', StringComparison.Ordinal) ? text : text + ".0";
    }

    private static float[] Floats(byte[] bytes) => Enumerable.Range(0, bytes.Length / 4).Select(i => BitConverter.ToSingle(bytes, i * 4)).ToArray();

    private static long[] Longs(byte[] bytes) => Enumerable.Range(0, bytes.Length / 8).Select(i => BitConverter.ToInt64(bytes, i * 8)).ToArray();

    /// <summary>tritonclient's InferResult: the JSON header, then each binary output in order by binary_data_size.</summary>
    private static Dictionary<string, (string Datatype, byte[]? Binary, JsonElement? Data)> ParseTritonResult(RawHttp.Answer answer, out JsonDocument header)
    {
        var length = answer.Headers.TryGetValue("Inference-Header-Content-Length", out var raw) ? int.Parse(raw, CultureInfo.InvariantCulture) : answer.Body.Length;
        header = JsonDocument.Parse(answer.Body.AsMemory(0, length));
        var offset = length;
        var outputs = new Dictionary<string, (string, byte[]?, JsonElement?)>();
        foreach (var output in header.RootElement.GetProperty("outputs").EnumerateArray())
        {
            var name = output.GetProperty("name").GetString()!;
            var datatype = output.GetProperty("datatype").GetString()!;
            if (output.TryGetProperty("parameters", out var parameters) && parameters.TryGetProperty("binary_data_size", out var size))
            {
                outputs[name] = (datatype, answer.Body[offset..(offset + size.GetInt32())], null);
                offset += size.GetInt32();
            }
            else
            {
                outputs[name] = (datatype, null, output.GetProperty("data"));
            }
        }
        Assert.Equal(answer.Body.Length, offset);
        return outputs;
    }

    [Fact(Timeout = 120_000)]
    public async Task Tritonclient_http_requests_byte_for_byte_binary_and_json()
    {
        var ct = TestContext.Current.CancellationToken;
        var (worker, onnx) = await DigitsAsync();
        await using var _ = worker;
        var x = TestModels.DigitsRows(5, 3).Select((v, i) => i % 7 == 0 ? 0.1f : v / 16f).ToArray();
        var expected = Expected(onnx, x, 5);
        var port = worker.HttpPort;

        // InferInput.set_data_from_numpy(x, binary_data=True) + two InferRequestedOutput(binary_data=True), request_id="t-1".
        var binaryJson = "{\"id\":\"t-1\",\"inputs\":[{\"name\":\"input\",\"shape\":[5,64],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":1280}}],"
            + "\"outputs\":[{\"name\":\"label\",\"parameters\":{\"binary_data\":true}},{\"name\":\"probabilities\",\"parameters\":{\"binary_data\":true}}]}";
        var header = Encoding.UTF8.GetBytes(binaryJson);
        var raw = new byte[x.Length * 4];
        Buffer.BlockCopy(x, 0, raw, 0, raw.Length);
        var answer = await RawHttp.SendAsync(port, RawHttp.GeventRequest("POST", $"/v2/models/{_model}/infer", port, [.. header, .. raw],
            ("Inference-Header-Content-Length", header.Length.ToString(CultureInfo.InvariantCulture))), ct);
        Assert.True(answer.Status == 200, answer.Text);
        var outputs = ParseTritonResult(answer, out var doc);
        Assert.Equal("1.0.0", doc.RootElement.GetProperty("model_version").GetString());
        Assert.Equal("t-1", doc.RootElement.GetProperty("id").GetString());
        Assert.Equal("INT64", outputs["label"].Datatype);
        Assert.Equal(expected.Labels, Longs(outputs["label"].Binary!));
        Assert.Equal(expected.Probabilities, Floats(outputs["probabilities"].Binary!));

        // client.infer(model, [input], model_version="1.0.0") without outputs: binary_data_output for all.
        var pinnedJson = "{\"inputs\":[{\"name\":\"input\",\"shape\":[5,64],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":1280}}],\"parameters\":{\"binary_data_output\":true}}";
        header = Encoding.UTF8.GetBytes(pinnedJson);
        answer = await RawHttp.SendAsync(port, RawHttp.GeventRequest("POST", $"/v2/models/{_model}/versions/1.0.0/infer", port, [.. header, .. raw],
            ("Inference-Header-Content-Length", header.Length.ToString(CultureInfo.InvariantCulture))), ct);
        Assert.True(answer.Status == 200, answer.Text);
        outputs = ParseTritonResult(answer, out doc);
        Assert.Equal(["label", "probabilities"], outputs.Keys);
        Assert.Equal(expected.Labels, Longs(outputs["label"].Binary!));
        Assert.Equal(expected.Probabilities, Floats(outputs["probabilities"].Binary!));
        Assert.Equal("1.0.0", answer.Headers["x-lepton-version"]);

        // binary_data=False: data as Python floats, outputs as JSON.
        var jsonBody = "{\"id\":\"t-2\",\"inputs\":[{\"name\":\"input\",\"shape\":[5,64],\"datatype\":\"FP32\",\"data\":[" + string.Join(",", x.Select(PyRepr)) + "]}],"
            + "\"outputs\":[{\"name\":\"label\",\"parameters\":{\"binary_data\":false}},{\"name\":\"probabilities\",\"parameters\":{\"binary_data\":false}}]}";
        answer = await RawHttp.SendAsync(port, RawHttp.GeventRequest("POST", $"/v2/models/{_model}/infer", port, Encoding.UTF8.GetBytes(jsonBody)), ct);
        Assert.True(answer.Status == 200, answer.Text);
        Assert.False(answer.Headers.ContainsKey("Inference-Header-Content-Length"));
        outputs = ParseTritonResult(answer, out doc);
        Assert.Equal(expected.Labels, outputs["label"].Data!.Value.EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(expected.Probabilities, outputs["probabilities"].Data!.Value.EnumerateArray().Select(e => e.GetSingle()));
    }

    [Fact(Timeout = 120_000)]
    public async Task Tritonclient_http_metadata_calls_byte_for_byte()
    {
        var ct = TestContext.Current.CancellationToken;
        var (worker, _) = await DigitsAsync();
        await using var _ = worker;
        var port = worker.HttpPort;
        async Task<RawHttp.Answer> Get(string path) => await RawHttp.SendAsync(port, RawHttp.GeventRequest("GET", path, port, []), ct);

        Assert.Equal(200, (await Get("/v2/health/live")).Status);
        Assert.Equal(200, (await Get("/v2/health/ready")).Status);
        Assert.Equal(200, (await Get($"/v2/models/{_model}/ready")).Status);
        Assert.Equal(200, (await Get($"/v2/models/{_model}/versions/1.0.0/ready")).Status);
        using var meta = JsonDocument.Parse((await Get($"/v2/models/{_model}")).Body);
        Assert.Equal("""{"name":"input","datatype":"FP32","shape":[-1,64]}""", meta.RootElement.GetProperty("inputs")[0].GetRawText());
        Assert.Equal(["1.0.0"], meta.RootElement.GetProperty("versions").EnumerateArray().Select(e => e.GetString()));
        using var server = JsonDocument.Parse((await Get("/v2")).Body);
        Assert.Contains("binary_tensor_data", server.RootElement.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
        using var config = JsonDocument.Parse((await Get($"/v2/models/{_model}/config")).Body);
        Assert.Equal(32, config.RootElement.GetProperty("max_batch_size").GetInt32());
        Assert.Equal("TYPE_FP32", config.RootElement.GetProperty("input")[0].GetProperty("data_type").GetString());
        Assert.Equal([64L], config.RootElement.GetProperty("input")[0].GetProperty("dims").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(2000, config.RootElement.GetProperty("dynamic_batching").GetProperty("max_queue_delay_microseconds").GetInt64());
        // get_model_repository_index posts an empty body: geventhttpclient then sends no Content-Length at all.
        var index = await RawHttp.SendAsync(port, RawHttp.GeventRequest("POST", "/v2/repository/index", port, []), ct);
        Assert.True(index.Status == 200, index.Text);
        using var entries = JsonDocument.Parse(index.Body);
        Assert.Contains(entries.RootElement.EnumerateArray(), e => e.GetProperty("name").GetString() == _model && e.GetProperty("state").GetString() == "READY");
        var infer = Encoding.UTF8.GetBytes("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":[" + string.Join(",", Enumerable.Repeat("1.0", 64)) + "]}]}");
        Assert.Equal(200, (await RawHttp.SendAsync(port, RawHttp.GeventRequest("POST", $"/v2/models/{_model}/infer", port, infer), ct)).Status);
        using var stats = JsonDocument.Parse((await Get($"/v2/models/{_model}/stats")).Body);
        var entry = stats.RootElement.GetProperty("model_stats")[0];
        Assert.Equal("1.0.0", entry.GetProperty("version").GetString());
        Assert.Equal(1, entry.GetProperty("inference_stats").GetProperty("success").GetProperty("count").GetInt64());
        Assert.Equal(1, entry.GetProperty("inference_count").GetInt64());
        var missing = await Get("/v2/models/absent/ready");
        Assert.Equal(404, missing.Status);
        using var error = JsonDocument.Parse(missing.Body);
        Assert.Contains("not served", error.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Bytes_tensors_round_trip_as_onnx_strings_in_json_binary_and_grpc()
    {
        var ct = TestContext.Current.CancellationToken;
        await Publisher.PublishAsync(_model, "1.0.0", SampleModels.StringEcho());
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
        await using var worker = await WorkerHost.StartAsync(WorkerHost.Defaults(azurite, _cache, _model));
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
        var port = worker.HttpPort;
        var words = new[] { "héllo", "", "wörld \"quoted\"" };
        // serialize_byte_tensor: 4-byte little-endian length, then the bytes, per element.
        var elements = words.Select(Encoding.UTF8.GetBytes).ToArray();
        var serialized = elements.SelectMany(e => BitConverter.GetBytes(e.Length).Concat(e)).ToArray();
        var header = Encoding.UTF8.GetBytes($"{{\"inputs\":[{{\"name\":\"text\",\"shape\":[3],\"datatype\":\"BYTES\",\"parameters\":{{\"binary_data_size\":{serialized.Length}}}}}],\"parameters\":{{\"binary_data_output\":true}}}}");
        var answer = await RawHttp.SendAsync(port, RawHttp.GeventRequest("POST", $"/v2/models/{_model}/infer", port, [.. header, .. serialized],
            ("Inference-Header-Content-Length", header.Length.ToString(CultureInfo.InvariantCulture))), ct);
        Assert.True(answer.Status == 200, answer.Text);
        var outputs = ParseTritonResult(answer, out _);
        Assert.Equal("BYTES", outputs["echo"].Datatype);
        Assert.Equal(serialized, outputs["echo"].Binary);

        var json = "{\"inputs\":[{\"name\":\"text\",\"shape\":[3],\"datatype\":\"BYTES\",\"data\":[\"h\\u00e9llo\",\"\",\"w\\u00f6rld \\\"quoted\\\"\"]}]}";
        answer = await RawHttp.SendAsync(port, RawHttp.GeventRequest("POST", $"/v2/models/{_model}/infer", port, Encoding.UTF8.GetBytes(json)), ct);
        Assert.True(answer.Status == 200, answer.Text);
        outputs = ParseTritonResult(answer, out _);
        Assert.Equal(words, outputs["echo"].Data!.Value.EnumerateArray().Select(e => e.GetString()));

        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{worker.GrpcPort}");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var request = new ModelInferRequest { ModelName = _model };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "text", Datatype = "BYTES", Contents = new InferTensorContents() };
        input.Shape.Add(3);
        input.Contents.BytesContents.AddRange(elements.Select(ByteString.CopyFrom));
        request.Inputs.Add(input);
        var response = await client.ModelInferAsync(request, cancellationToken: ct);
        Assert.Equal(serialized, response.RawOutputContents[0].ToByteArray());
    }

    /// <summary>A ModelInferRequest encoded by hand from grpc_service.proto's field numbers, as any Triton client's protobuf library writes it.</summary>
    private static byte[] HandEncodedInfer(string model, string version, string id, float[] x, int rows)
    {
        using var buffer = new MemoryStream();
        var output = new CodedOutputStream(buffer);
        output.WriteTag(1, WireFormat.WireType.LengthDelimited);
        output.WriteString(model);
        if (version.Length > 0)
        {
            output.WriteTag(2, WireFormat.WireType.LengthDelimited);
            output.WriteString(version);
        }
        output.WriteTag(3, WireFormat.WireType.LengthDelimited);
        output.WriteString(id);
        using (var tensor = new MemoryStream())
        {
            var t = new CodedOutputStream(tensor);
            t.WriteTag(1, WireFormat.WireType.LengthDelimited);
            t.WriteString("input");
            t.WriteTag(2, WireFormat.WireType.LengthDelimited);
            t.WriteString("FP32");
            var shape = new[] { (long)rows, 64 };
            t.WriteTag(3, WireFormat.WireType.LengthDelimited);
            t.WriteLength(shape.Sum(CodedOutputStream.ComputeInt64Size));
            foreach (var d in shape)
            {
                t.WriteInt64(d);
            }
            t.Flush();
            output.WriteTag(5, WireFormat.WireType.LengthDelimited);
            output.WriteBytes(ByteString.CopyFrom(tensor.ToArray()));
        }
        foreach (var name in new[] { "label", "probabilities" })
        {
            using var requested = new MemoryStream();
            var r = new CodedOutputStream(requested);
            r.WriteTag(1, WireFormat.WireType.LengthDelimited);
            r.WriteString(name);
            r.Flush();
            output.WriteTag(6, WireFormat.WireType.LengthDelimited);
            output.WriteBytes(ByteString.CopyFrom(requested.ToArray()));
        }
        var raw = new byte[x.Length * 4];
        Buffer.BlockCopy(x, 0, raw, 0, raw.Length);
        output.WriteTag(7, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(raw));
        output.Flush();
        return buffer.ToArray();
    }

    [Fact(Timeout = 120_000)]
    public async Task Grpc_and_http_give_identical_answers()
    {
        var ct = TestContext.Current.CancellationToken;
        var (worker, onnx) = await DigitsAsync();
        await using var _ = worker;
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{worker.GrpcPort}");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        Assert.True((await client.ServerLiveAsync(new ServerLiveRequest(), cancellationToken: ct)).Live);
        Assert.True((await client.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: ct)).Ready);
        Assert.True((await client.ModelReadyAsync(new ModelReadyRequest { Name = _model }, cancellationToken: ct)).Ready);
        var meta = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = _model }, cancellationToken: ct);
        Assert.Equal([-1L, 64L], meta.Inputs[0].Shape);
        Assert.Contains("model_repository", (await client.ServerMetadataAsync(new ServerMetadataRequest(), cancellationToken: ct)).Extensions);
        var config = await client.ModelConfigAsync(new ModelConfigRequest { Name = _model }, cancellationToken: ct);
        Assert.Equal(32, config.Config.MaxBatchSize);
        Assert.Equal(DataType.TypeFp32, config.Config.Input[0].DataType);
        Assert.Contains((await client.RepositoryIndexAsync(new RepositoryIndexRequest(), cancellationToken: ct)).Models, m => m.Name == _model && m.State == "READY");

        var invoker = channel.CreateCallInvoker();
        var bytes = Marshallers.Create(b => b, b => b);
        var method = new Method<byte[], byte[]>(MethodType.Unary, "inference.GRPCInferenceService", "ModelInfer", bytes, bytes);
        for (var seed = 0; seed < 5; seed++)
        {
            var rows = 1 + seed;
            var x = TestModels.DigitsRows(rows, 100 + seed);
            var expected = Expected(onnx, x, rows);
            using var http = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Bodies.Binary(x, rows, 64), ct);
            var (header, tail) = Bodies.SplitBinary(http, await http.Content.ReadAsByteArrayAsync(ct));
            var grpcBytes = await invoker.AsyncUnaryCall(method, null, new CallOptions(cancellationToken: ct), HandEncodedInfer(_model, seed % 2 == 0 ? "" : "1.0.0", $"g-{seed}", x, rows));
            var grpc = ModelInferResponse.Parser.ParseFrom(grpcBytes);
            Assert.Equal("1.0.0", grpc.ModelVersion);
            Assert.Equal($"g-{seed}", grpc.Id);
            Assert.Equal(["label", "probabilities"], grpc.Outputs.Select(o => o.Name));
            Assert.Equal([(long)rows], grpc.Outputs[0].Shape);
            Assert.Equal(tail, grpc.RawOutputContents.SelectMany(c => c.ToByteArray()));
            Assert.Equal(expected.Labels, Longs(grpc.RawOutputContents[0].ToByteArray()));
            Assert.Equal(expected.Probabilities, Floats(grpc.RawOutputContents[1].ToByteArray()));
            header.Dispose();
        }
        var huge = new ModelInferRequest { ModelName = _model };
        huge.RawInputContents.Add(ByteString.CopyFrom(new byte[20000]));
        var tooLarge = await Assert.ThrowsAsync<RpcException>(async () => await client.ModelInferAsync(huge, cancellationToken: ct));
        Assert.Equal(StatusCode.ResourceExhausted, tooLarge.StatusCode);
        var notFound = await Assert.ThrowsAsync<RpcException>(async () => await client.ModelInferAsync(new ModelInferRequest { ModelName = "absent", Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32", Shape = { 1, 1 }, Contents = new InferTensorContents { Fp32Contents = { 1 } } } } }, cancellationToken: ct));
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        var badShape = new ModelInferRequest { ModelName = _model };
        badShape.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32", Shape = { 1, 3 }, Contents = new InferTensorContents { Fp32Contents = { 1, 2, 3 } } });
        var invalid = await Assert.ThrowsAsync<RpcException>(async () => await client.ModelInferAsync(badShape, cancellationToken: ct));
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
        Assert.Contains("expected signature", invalid.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("1.0.0", invalid.Trailers.GetValue("x-lepton-version"));
    }

    [Fact(Timeout = 120_000)]
    public async Task Heartbeats_and_prometheus_metrics()
    {
        var ct = TestContext.Current.CancellationToken;
        await Publisher.PublishAsync(_model, "1.0.0", SampleModels.Scale(1f));
        await Publisher.PublishAsync(_model, "1.1.0", SampleModels.Scale(2f), Stage.Canary);
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0", Candidate = "1.1.0" });
        var directory = new WorkerDirectory(azurite.Clients);
        Heartbeat? beat = null;
        await using (var worker = await WorkerHost.StartAsync(WorkerHost.Defaults(azurite, _cache, _model)))
        {
            await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
            await WorkerHost.WaitUntilAsync(async () =>
            {
                beat = (await directory.AllAsync(ct)).SingleOrDefault(h => h.Replica == worker.Replica);
                return beat is not null && beat.IsReady(_model, "1.0.0") && beat.IsReady(_model, "1.1.0");
            }, "a heartbeat with both versions ready (the candidate loads at weight 0)");
            Assert.Equal("CPUExecutionProvider", beat!.Provider);
            Assert.Equal($"http://127.0.0.1:{worker.HttpPort}", beat.Url);
            Assert.Equal($"http://127.0.0.1:{worker.GrpcPort}", beat.GrpcUrl);
            Assert.Equal(["1.0.0", "1.1.0"], beat.Loaded[_model]);
            Assert.False(beat.Draining);
            Assert.True(beat.RouteGenerations[_model] >= 1);
            for (var i = 0; i < 3; i++)
            {
                using var response = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Bodies.JsonContent(Bodies.Json([1, 2, 3, 4], 1, 4)), ct);
                Assert.Equal(200, (int)response.StatusCode);
            }
            var text = await worker.Http.GetStringAsync("/metrics", ct);
            Assert.Contains($"lepton_worker_requests_total{{model=\"{_model}\",version=\"1.0.0\",outcome=\"ok\"}} 3", text, StringComparison.Ordinal);
            Assert.Contains($"lepton_worker_info{{replica=\"{worker.Replica}\",provider=\"CPUExecutionProvider\"}} 1", text, StringComparison.Ordinal);
            Assert.Contains($"lepton_worker_version_ready{{model=\"{_model}\",version=\"1.0.0\"}} 1", text, StringComparison.Ordinal);
            Assert.Contains($"lepton_worker_batch_rows_count{{model=\"{_model}\",version=\"1.0.0\"}}", text, StringComparison.Ordinal);
            Assert.Contains($"lepton_worker_queue_seconds_bucket{{model=\"{_model}\",version=\"1.0.0\",le=\"0.001\"}}", text, StringComparison.Ordinal);
            Assert.Contains($"lepton_worker_request_duration_seconds_count{{model=\"{_model}\",version=\"1.0.0\"}} 3", text, StringComparison.Ordinal);
            await worker.StopAsync();
            // Shutting down publishes a last heartbeat marked draining: it no longer counts as live.
            beat = (await directory.AllAsync(ct)).Single(h => h.Replica == worker.Replica);
            Assert.True(beat.Draining);
        }
    }
}
