using System.Buffers;
using System.IO.Pipelines;
using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.DataPlane;
using Lepton.GpuWorker.Protocol;
using Lepton.Shared;

namespace Lepton.GpuWorker.Http;

/// <summary>
/// The two infer routes, which carry nearly all traffic: read the body within the limit straight
/// from the request pipe, decode it, call <see cref="InferenceDataPlane.InferAsync"/>, and encode the
/// answer into the response pipe (JSON header, then binary outputs copied once).
/// </summary>
public sealed class InferEndpoint(InferenceDataPlane dataPlane, ServerOptions server, InferenceOptions inference, ILogger<InferEndpoint> log)
{
    private const string OctetStream = "application/octet-stream";

    public async Task HandleAsync(HttpContext context)
    {
        var requestId = HttpResults.RequestId(context);
        var routeValues = context.Request.RouteValues;
        var model = (string)routeValues["model"]!;
        var version = routeValues.TryGetValue("version", out var pinned) ? (string?)pinned : null;
        InferRequest? request = null;
        InferOutcome outcome;
        try
        {
            var reader = context.Request.BodyReader;
            var body = await ReadBodyAsync(context.Request, reader, server.MaxBodyBytes);
            try
            {
                var headerLength = OipJsonDecoder.ParseHeaderLength(context.Request.Headers[OipJsonDecoder.HeaderLengthHeader].FirstOrDefault(), body.Length);
                request = OipJsonDecoder.Decode(body, headerLength, inference.MaxElements);
            }
            finally
            {
                reader.AdvanceTo(body.End);
            }
            string? sticky = null;
            if (dataPlane.StickyHeader(model) is { } header && context.Request.Headers.TryGetValue(header, out var key) && key.Count > 0)
            {
                sticky = key[0];
            }
            outcome = await dataPlane.InferAsync(model, version, request, sticky);
        }
        catch (Exception error)
        {
            request?.Dispose();
            await HttpResults.WriteErrorAsync(context, error, requestId, version, log);
            return;
        }
        using (outcome)
        {
            try
            {
                await WriteAsync(context, outcome, requestId);
            }
            catch (Exception error)
            {
                await HttpResults.WriteErrorAsync(context, error, requestId, outcome.Version, log);
            }
        }
    }

    /// <summary>The whole body, cut off at <paramref name="limit"/> whether or not it declared a length.</summary>
    private static async ValueTask<ReadOnlySequence<byte>> ReadBodyAsync(HttpRequest request, PipeReader reader, long limit)
    {
        if (request.ContentLength > limit)
        {
            throw TooLarge(limit);
        }
        while (true)
        {
            var read = await reader.ReadAsync();
            if (read.Buffer.Length > limit)
            {
                reader.AdvanceTo(read.Buffer.End);
                throw TooLarge(limit);
            }
            if (read.IsCompleted)
            {
                return read.Buffer;
            }
            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    private static PayloadTooLargeException TooLarge(long limit) => new(
        $"request body is larger than {limit} bytes ({WorkerSettingNames.MaxBodyBytes}); send fewer rows per request or use the binary tensor extension");

    private static async Task WriteAsync(HttpContext context, InferOutcome outcome, string requestId)
    {
        var request = outcome.Request;
        var outputs = OipJsonEncoder.Select(request, outcome.Onnx.OutputNames, outcome.Result.Outputs);
        var response = context.Response;
        var (buffer, writer) = HttpResults.Scratch();
        var binary = OipJsonEncoder.WriteHeader(writer, outcome.Model, outcome.Version, request.Id ?? requestId, outputs);
        var headers = response.Headers;
        headers[HttpResults.RequestIdHeader] = requestId;
        headers[HttpResults.VersionHeader] = outcome.Version;
        var jsonLength = buffer.WrittenCount;
        long length = jsonLength;
        if (binary)
        {
            headers[OipJsonDecoder.HeaderLengthHeader] = jsonLength.ToString(System.Globalization.CultureInfo.InvariantCulture);
            response.ContentType = OctetStream;
            length += OipJsonEncoder.BinaryLength(outputs);
        }
        else
        {
            response.ContentType = HttpResults.Json;
        }
        response.ContentLength = length;
        var pipe = response.BodyWriter;
        // Copied into the response pipe before any await: the scratch buffer is per thread.
        pipe.Write(buffer.WrittenSpan);
        if (binary)
        {
            OipJsonEncoder.WriteBinary(pipe, outputs);
        }
        await pipe.FlushAsync();
    }
}
