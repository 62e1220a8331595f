using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Lepton.Cli.Samples;
using Lepton.GpuWorker.Tests.Harness;
using Lepton.Shared.Metrics;
using Lepton.Testing;

namespace Lepton.GpuWorker.Tests;

/// <summary>
/// Bad input and failing models over HTTP: clear 4xx/5xx answers, counted for the right version,
/// and afterwards good requests are still served (nothing is lost or left broken).
/// </summary>
public sealed class ErrorTests(AzuriteFixture azurite) : IDisposable
{
    private const string Good = """{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}""";
    private const string Signature = "expected signature inputs: input FP32[-1,4]";

    private readonly string _model = TestNames.Model("err");
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

    private static ByteArrayContent Raw(string body, params (string Name, string Value)[] headers) => Raw(Encoding.UTF8.GetBytes(body), headers);

    private static ByteArrayContent Raw(byte[] body, params (string Name, string Value)[] headers)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        foreach (var (name, value) in headers)
        {
            content.Headers.TryAddWithoutValidation(name, value);
        }
        return content;
    }

    private static async Task OkAsync(WorkerHost worker, string model, CancellationToken ct)
    {
        using var response = await worker.Http.PostAsync($"/v2/models/{model}/infer", Raw(Good), ct);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(ct));
    }

    [Fact(Timeout = 120_000)]
    public async Task Bad_requests_get_clear_errors_and_lose_nothing()
    {
        var ct = TestContext.Current.CancellationToken;
        await Publisher.PublishAsync(_model, "1.0.0", SampleModels.Scale(2f));
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
        var settings = WorkerHost.Defaults(azurite, _cache, _model);
        settings["LEPTON_WORKER_MAX_BODY_BYTES"] = "4096";
        settings["LEPTON_WORKER_MAX_ELEMENTS"] = "64";
        await using var worker = await WorkerHost.StartAsync(settings);
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
        var cases = new (string Body, (string, string)[] Headers, int Status, string Fragment)[]
        {
            ("""{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}""", [], 400, "missing ['input']"),
            ("""{"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 4], "data": [1, 2, 3, 4]}]}""", [], 400, "datatype INT64"),
            ("""{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}""", [], 400, "shape [1, 3]"),
            ("""{"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4], "data": [1, 2, 3]}]}""", [], 400, "needs 8"),
            ("""{"inputs": [""", [], 400, "not valid JSON"),
            (Good, [("Inference-Header-Content-Length", "x")], 400, "Inference-Header-Content-Length"),
            (Good, [("Inference-Header-Content-Length", "99999")], 400, "Inference-Header-Content-Length"),
            ("""{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}], "outputs": [{"name": "nope"}]}""", [], 400, "['nope']"),
            ("{" + new string(' ', 5000) + "}", [], 413, "LEPTON_WORKER_MAX_BODY_BYTES"),
            ("""{"inputs": [{"name": "input", "datatype": "FP32", "shape": [100, 4], "data": []}]}""", [], 413, "LEPTON_WORKER_MAX_ELEMENTS"),
            ("""{"inputs": [{"name": "input", "datatype": "FP32", "shape": [9223372036854775807, 9223372036854775807], "data": []}]}""", [], 413, "LEPTON_WORKER_MAX_ELEMENTS"),
        };
        foreach (var (body, headers, status, fragment) in cases)
        {
            using var response = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Raw(body, headers), ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            Assert.True(status == (int)response.StatusCode, $"{fragment}: {(int)response.StatusCode} {text}");
            using var doc = JsonDocument.Parse(text);
            var error = doc.RootElement.GetProperty("error").GetString()!;
            Assert.Contains(fragment, error, StringComparison.Ordinal);
            Assert.True(doc.RootElement.TryGetProperty("code", out _));
            Assert.Single(response.Headers.GetValues("x-request-id"));
            if (status == 400 && error.Contains("signature", StringComparison.Ordinal))
            {
                Assert.Contains(Signature, error, StringComparison.Ordinal);
                Assert.Equal("1.0.0", response.Headers.GetValues("x-lepton-version").Single());
            }
            await OkAsync(worker, _model, ct);
        }
        // A chunked upload without Content-Length is still cut at the limit.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("{" + new string(' ', 9000) + "}")));
        using (var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{_model}/infer") { Content = chunked })
        {
            request.Headers.TransferEncodingChunked = true;
            using var response = await worker.Http.SendAsync(request, ct);
            Assert.Equal(413, (int)response.StatusCode);
        }
        using (var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{_model}/infer") { Content = Raw(Good) })
        {
            request.Headers.Add("x-request-id", "trace-1");
            using var response = await worker.Http.SendAsync(request, ct);
            Assert.Equal("trace-1", response.Headers.GetValues("x-request-id").Single());
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            Assert.Equal("trace-1", doc.RootElement.GetProperty("id").GetString());
        }
        using (var response = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Raw(Good.Replace("{\"inputs\"", "{\"id\": \"body-id\", \"inputs\"", StringComparison.Ordinal)), ct))
        {
            Assert.Equal(32, response.Headers.GetValues("x-request-id").Single().Length);
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            Assert.Equal("body-id", doc.RootElement.GetProperty("id").GetString());
        }
        using (var response = await worker.Http.GetAsync($"/v2/models/{_model}/infer", ct))
        {
            Assert.Equal(405, (int)response.StatusCode);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Nonfinite_outputs_and_onnxruntime_failures_count_for_their_version_only()
    {
        var ct = TestContext.Current.CancellationToken;
        string scale = _model, nan = _model + "-nan", raises = _model + "-raises";
        await Publisher.PublishAsync(scale, "1.0.0", SampleModels.Scale(2f));
        await Publisher.PublishAsync(nan, "1.0.0", TestModels.AlwaysNan());
        await Publisher.PublishAsync(raises, "1.0.0", TestModels.RaisesAboveOneRow());
        foreach (var model in new[] { scale, nan, raises })
        {
            await Publisher.RouteAsync(model, r => r with { Production = "1.0.0" });
        }
        await using var worker = await WorkerHost.StartAsync(WorkerHost.Defaults(azurite, _cache, scale, nan, raises));
        foreach (var model in new[] { scale, nan, raises })
        {
            await worker.WaitRoutesAsync(model, t => t.Production == "1.0.0");
        }
        const string twoRows = """{"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4], "data": [0, 1, 2, 3, 4, 5, 6, 7]}]}""";
        const string nonfiniteInput = """{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]}""";
        for (var i = 0; i < 3; i++)
        {
            using (var response = await worker.Http.PostAsync($"/v2/models/{nan}/infer", Raw(Good), ct))
            {
                Assert.Equal(500, (int)response.StatusCode);
                Assert.Contains("non-finite", await response.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
                Assert.Equal("1.0.0", response.Headers.GetValues("x-lepton-version").Single());
            }
            using (var response = await worker.Http.PostAsync($"/v2/models/{raises}/infer", Raw(twoRows), ct))
            {
                Assert.Equal(500, (int)response.StatusCode);
                Assert.Contains("ONNX Runtime failed", await response.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
            }
            // NaN in an input: refused before inference (400), never the version's error.
            var header = Encoding.UTF8.GetBytes(nonfiniteInput);
            var body = header.Concat(BitConverter.GetBytes(float.NaN)).Concat(new byte[12]).ToArray();
            using (var response = await worker.Http.PostAsync($"/v2/models/{scale}/infer", Raw(body, ("Inference-Header-Content-Length", header.Length.ToString(System.Globalization.CultureInfo.InvariantCulture))), ct))
            {
                Assert.Equal(400, (int)response.StatusCode);
                Assert.Contains("NaN or infinity", await response.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
            }
            await OkAsync(worker, raises, ct);
            await OkAsync(worker, scale, ct);
        }
        var metrics = new MetricsStore(azurite.Clients);
        async Task<(long, long, long)?> Errors(string model)
        {
            var row = (await metrics.TotalsAsync(model, 0, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 60, ct)).GetValueOrDefault("1.0.0");
            return row is null ? null : (row.Requests, row.Errors, row.Nonfinite);
        }
        await WorkerHost.WaitUntilAsync(async () => await Errors(nan) == (3, 3, 3), "nan rollup");
        await WorkerHost.WaitUntilAsync(async () => await Errors(raises) == (6, 3, 0), "raises rollup");
        await WorkerHost.WaitUntilAsync(async () => await Errors(scale) == (3, 0, 0), "scale rollup");
        var text = await worker.Http.GetStringAsync("/metrics", ct);
        Assert.Contains($"lepton_worker_requests_total{{model=\"{nan}\",version=\"1.0.0\",outcome=\"nonfinite\"}} 3", text, StringComparison.Ordinal);
        Assert.Contains($"lepton_worker_requests_total{{model=\"{raises}\",version=\"1.0.0\",outcome=\"error\"}} 3", text, StringComparison.Ordinal);
        Assert.Contains($"lepton_worker_requests_total{{model=\"{scale}\",version=\"1.0.0\",outcome=\"invalid\"}} 3", text, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Nonfinite_outputs_can_be_returned_when_configured()
    {
        var ct = TestContext.Current.CancellationToken;
        await Publisher.PublishAsync(_model, "1.0.0", TestModels.AlwaysNan());
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
        var settings = WorkerHost.Defaults(azurite, _cache, _model);
        settings["LEPTON_WORKER_NONFINITE_IS_ERROR"] = "false";
        await using var worker = await WorkerHost.StartAsync(settings);
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
        using (var response = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Raw(Good), ct))
        {
            Assert.Equal(200, (int)response.StatusCode);
            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            var probabilities = doc.RootElement.GetProperty("outputs").EnumerateArray().Single(o => o.GetProperty("name").GetString() == "probabilities");
            Assert.All(probabilities.GetProperty("data").EnumerateArray(), e => Assert.Equal(JsonValueKind.Null, e.ValueKind));
        }
        var binary = Good.Replace("]}]}", "]}], \"outputs\": [{\"name\": \"probabilities\", \"parameters\": {\"binary_data\": true}}]}", StringComparison.Ordinal);
        using (var response = await worker.Http.PostAsync($"/v2/models/{_model}/infer", Raw(binary), ct))
        {
            var (_, tail) = Bodies.SplitBinary(response, await response.Content.ReadAsByteArrayAsync(ct));
            var values = new float[tail.Length / 4];
            Buffer.BlockCopy(tail, 0, values, 0, tail.Length);
            Assert.Equal(2, values.Length);
            Assert.All(values, v => Assert.True(float.IsNaN(v)));
        }
    }
}
