using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lepton.GpuWorker.DataPlane;
using Lepton.GpuWorker.Protocol;
using Lepton.Shared;

namespace Lepton.GpuWorker.Http;

/// <summary>
/// Writing answers: the one place an error becomes an HTTP status, <c>Retry-After</c> and the OIP
/// error body <c>{"error": …, "code": …}</c>; every answer carries <c>x-request-id</c> and, once a
/// version is known, <c>x-lepton-version</c>.
/// </summary>
public static class HttpResults
{
    public const string RequestIdHeader = "x-request-id";
    public const string VersionHeader = "x-lepton-version";
    public const string Json = "application/json";

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? _threadBuffer;

    [ThreadStatic]
    private static Utf8JsonWriter? _threadWriter;

    /// <summary>A per-thread buffer and JSON writer, reset for one response (never held across an await).</summary>
    public static (ArrayBufferWriter<byte> Buffer, Utf8JsonWriter Writer) Scratch()
    {
        var buffer = _threadBuffer ??= new ArrayBufferWriter<byte>(4096);
        buffer.ResetWrittenCount();
        var writer = _threadWriter ??= new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true });
        writer.Reset(buffer);
        if (buffer.Capacity > 1 << 20)
        {
            // Don't keep a huge buffer alive for a thread after one large response.
            _threadBuffer = new ArrayBufferWriter<byte>(4096);
            _threadWriter = null;
        }
        return (buffer, writer);
    }

    /// <summary>The caller's request id if it is a sane header value, else a new random 128-bit hex id.</summary>
    public static string RequestId(HttpContext context)
    {
        var given = context.Request.Headers[RequestIdHeader];
        if (given.Count > 0 && given[0] is { Length: > 0 and <= 128 } id && id.All(c => c is > ' ' and < (char)127))
        {
            return id;
        }
        return NewRequestId();
    }

    public static string NewRequestId()
    {
        Span<byte> bytes = stackalloc byte[16];
        Random.Shared.NextBytes(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    /// <summary>Status, code and message of any exception (unknown ones are logged and become 500).</summary>
    public static (int Status, string Code, string Message, TimeSpan? RetryAfter) Describe(Exception error, ILogger log)
    {
        switch (error)
        {
            case NotReadyException notReady:
                return (notReady.StatusCode, notReady.Code, notReady.Message, notReady.RetryAfter ?? TimeSpan.FromSeconds(1));
            case LeptonException lepton:
                return (lepton.StatusCode, lepton.Code, lepton.Message, lepton.Kind == ErrorKind.Unavailable ? TimeSpan.FromSeconds(1) : null);
            case BadHttpRequestException bad:
                return (bad.StatusCode, bad.StatusCode == 413 ? "payload_too_large" : "bad_request", $"bad request: {bad.Message}", null);
            case OperationCanceledException or IOException:
                // The caller went away mid-request: nobody reads this answer, and it is not a server error.
                return (400, "client_disconnected", "the client disconnected", null);
            default:
                log.LogError(error, "unexpected error");
                return (500, "internal", $"internal error: {error.GetType().Name}", null);
        }
    }

    public static async Task WriteErrorAsync(HttpContext context, Exception error, string requestId, string? version, ILogger log)
    {
        var (status, code, message, retryAfter) = Describe(error, log);
        var response = context.Response;
        if (response.HasStarted)
        {
            return;
        }
        response.StatusCode = status;
        response.Headers[RequestIdHeader] = requestId;
        if ((error.Data[InferenceDataPlane.VersionKey] as string ?? version) is { } served)
        {
            response.Headers[VersionHeader] = served;
        }
        if (retryAfter is { } delay)
        {
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(delay.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }
        var (buffer, writer) = Scratch();
        OipJsonEncoder.WriteError(writer, message, code);
        response.ContentType = Json;
        response.ContentLength = buffer.WrittenCount;
        // Copied into the response pipe before the await, so the per-thread buffer is free again.
        response.BodyWriter.Write(buffer.WrittenSpan);
        await response.BodyWriter.FlushAsync();
    }

    public static async Task WriteJsonAsync(HttpContext context, JsonNode body, string requestId, string? version = null, int status = 200)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.Headers[RequestIdHeader] = requestId;
        if (version is not null)
        {
            response.Headers[VersionHeader] = version;
        }
        var bytes = JsonSerializer.SerializeToUtf8Bytes(body);
        response.ContentType = Json;
        response.ContentLength = bytes.Length;
        await response.Body.WriteAsync(bytes);
    }
}
