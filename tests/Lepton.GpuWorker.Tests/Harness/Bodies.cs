using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Lepton.GpuWorker.Tests.Harness;

/// <summary>Request bodies of the Open Inference Protocol, JSON and binary.</summary>
public static class Bodies
{
    public static string Json(float[] values, long rows, long columns, string name = "input", string datatype = "FP32") =>
        new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = name,
                ["datatype"] = datatype,
                ["shape"] = new JsonArray(rows, columns),
                ["data"] = new JsonArray([.. values.Select(v => (JsonNode)v)]),
            }),
        }.ToJsonString();

    public static StringContent JsonContent(string json) => new(json, Encoding.UTF8, "application/json");

    public static StringContent Rows(float[,] x)
    {
        var flat = x.Cast<float>().ToArray();
        return JsonContent(Json(flat, x.GetLength(0), x.GetLength(1)));
    }

    /// <summary>A binary-extension body: JSON header then raw float32 bytes; outputs all binary.</summary>
    public static ByteArrayContent Binary(float[] values, long rows, long columns, bool binaryOutput = true)
    {
        var header = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "input",
                ["shape"] = new JsonArray(rows, columns),
                ["datatype"] = "FP32",
                ["parameters"] = new JsonObject { ["binary_data_size"] = values.Length * 4 },
            }),
            ["parameters"] = new JsonObject { ["binary_data_output"] = binaryOutput },
        }.ToJsonString();
        var headerBytes = Encoding.UTF8.GetBytes(header);
        var body = new byte[headerBytes.Length + (values.Length * 4)];
        headerBytes.CopyTo(body, 0);
        Buffer.BlockCopy(values, 0, body, headerBytes.Length, values.Length * 4);
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", headerBytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return content;
    }

    /// <summary>The first output's data of a JSON answer.</summary>
    public static float[] Output(JsonDocument doc, int index = 0) =>
        doc.RootElement.GetProperty("outputs")[index].GetProperty("data").EnumerateArray().Select(e => e.GetSingle()).ToArray();

    /// <summary>Splits a binary answer into its JSON header and the bytes after it.</summary>
    public static (JsonDocument Header, byte[] Binary) SplitBinary(HttpResponseMessage response, byte[] body)
    {
        var length = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single(), System.Globalization.CultureInfo.InvariantCulture);
        return (JsonDocument.Parse(body.AsMemory(0, length)), body[length..]);
    }
}
