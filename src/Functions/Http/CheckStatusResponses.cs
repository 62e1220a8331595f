using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;

namespace Lepton.Functions.Http;

/// <summary>The body of a Durable HTTP start: the instance id and the management links (Durable's names).</summary>
public sealed record CheckStatusPayload(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("statusQueryGetUri")] string StatusQueryGetUri,
    [property: JsonPropertyName("sendEventPostUri")] string SendEventPostUri,
    [property: JsonPropertyName("terminatePostUri")] string TerminatePostUri,
    [property: JsonPropertyName("purgeHistoryDeleteUri")] string PurgeHistoryDeleteUri,
    [property: JsonPropertyName("suspendPostUri")] string SuspendPostUri,
    [property: JsonPropertyName("resumePostUri")] string ResumePostUri);

/// <summary>
/// The check-status response a host without the Functions runtime answers a start with: the same
/// 202, <c>Location</c> header and body shape as Durable Functions' <c>CreateCheckStatusResponseAsync</c>,
/// with links under the request's own base (<c>/runtime/webhooks/durabletask/instances/{id}</c>,
/// which such a host serves). The Functions app calls <c>CreateCheckStatusResponseAsync</c> itself.
/// </summary>
public static class CheckStatusResponses
{
    public static CheckStatusPayload Payload(HttpRequest request, string instanceId)
    {
        var instance = $"{request.Scheme}://{request.Host}{request.PathBase}/{ControlApiRoutes.DurableInstances}/{Uri.EscapeDataString(instanceId)}";
        return new CheckStatusPayload(
            instanceId,
            instance,
            instance + "/raiseEvent/{eventName}",
            instance + "/terminate?reason={text}",
            instance,
            instance + "/suspend?reason={text}",
            instance + "/resume?reason={text}");
    }

    public static ApiResult Accepted(HttpRequest request, string instanceId)
    {
        var payload = Payload(request, instanceId);
        return ApiResult.Json(payload, StatusCodes.Status202Accepted, new Dictionary<string, string>
        {
            ["Location"] = payload.StatusQueryGetUri,
            ["Retry-After"] = "10",
        });
    }
}
