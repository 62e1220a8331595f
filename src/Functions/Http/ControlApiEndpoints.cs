using Lepton.Functions.Lifecycle;
using Lepton.Shared.Lifecycle;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging;

namespace Lepton.Functions.Http;

/// <summary>
/// The control API on a plain ASP.NET Core host (the local stack, the tests): the same routes and
/// the same <see cref="ControlApi"/> handlers as the Functions app's triggers. Errors go to
/// <see cref="LeptonExceptionHandler"/>; register it with <c>AddExceptionHandler</c> and call
/// <c>UseExceptionHandler</c>.
/// </summary>
public static class ControlApiEndpoints
{
    /// <summary>Maps every route; returns the group of routes that need a caller's identity (all but health), for the host's auth.</summary>
    public static RouteGroupBuilder MapLeptonControlApi(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet($"/{ControlApiRoutes.Prefix}/{ControlApiRoutes.Health}", () => ControlApi.Health()).AllowAnonymous();
        var api = endpoints.MapGroup($"/{ControlApiRoutes.Prefix}");
        api.MapGet(ControlApiRoutes.Models, (ControlApi handlers, HttpContext http) => handlers.ListModelsAsync(http.RequestAborted));
        api.MapGet(ControlApiRoutes.Model, (ControlApi handlers, HttpContext http, string model) => handlers.ModelAsync(model, http.RequestAborted));
        api.MapPut(ControlApiRoutes.Routes, (ControlApi handlers, HttpRequest request, string model) => handlers.PutRoutesAsync(request, model, request.HttpContext.RequestAborted));
        api.MapGet(ControlApiRoutes.Version, (ControlApi handlers, DurableTaskClient client, HttpContext http, string model, string version) =>
            handlers.VersionAsync(model, version, client, http.RequestAborted));
        api.MapPost(ControlApiRoutes.Start, async (ControlApi handlers, DurableTaskClient client, HttpRequest request, string model, string version) =>
        {
            var started = await handlers.StartAsync(request, model, version, client, request.HttpContext.RequestAborted);
            return CheckStatusResponses.Accepted(request, started.InstanceId);
        });
        MapCommand(api, ControlApiRoutes.Approve, OperatorAction.Approve);
        MapCommand(api, ControlApiRoutes.Promote, OperatorAction.Promote);
        MapCommand(api, ControlApiRoutes.Rollback, OperatorAction.Rollback);
        MapCommand(api, ControlApiRoutes.Abort, OperatorAction.Abort);
        api.MapGet(ControlApiRoutes.History, (ControlApi handlers, HttpContext http, string model, string version) => handlers.HistoryAsync(model, version, http.RequestAborted));
        api.MapGet(ControlApiRoutes.ModelHistory, (ControlApi handlers, HttpContext http, string model) => handlers.ModelHistoryAsync(model, http.RequestAborted));
        return api;
    }

    /// <summary>
    /// The Durable HTTP management routes a start's check-status links point at
    /// (<c>/runtime/webhooks/durabletask/instances/{id}</c>), which the Functions host serves in
    /// Azure: the status (202 while it runs, 200 completed, 400 failed or terminated, 404 unknown),
    /// <c>raiseEvent/{eventName}</c> and <c>terminate</c>. Returns the group for the host's auth.
    /// </summary>
    public static RouteGroupBuilder MapDurableInstanceRoutes(this IEndpointRouteBuilder endpoints)
    {
        var instances = endpoints.MapGroup($"/{ControlApiRoutes.DurableInstances}");
        instances.MapGet("{instanceId}", async (DurableTaskClient client, HttpContext http, string instanceId) =>
        {
            var instance = await LifecycleStarter.DescribeAsync(client, instanceId, http.RequestAborted)
                ?? throw new Shared.NotFoundException($"no orchestration instance '{instanceId}'", "instance_not_found");
            var status = instance.RuntimeStatus switch
            {
                "Completed" => StatusCodes.Status200OK,
                "Failed" or "Terminated" => StatusCodes.Status400BadRequest,
                _ => StatusCodes.Status202Accepted,
            };
            return ApiResult.Json(new DurableInstanceStatus(
                instance.Name, instance.InstanceId, instance.RuntimeStatus, instance.Input, instance.CustomStatus, instance.Output, instance.Created, instance.Updated), status);
        });
        instances.MapPost("{instanceId}/raiseEvent/{eventName}", async (DurableTaskClient client, HttpRequest request, string instanceId, string eventName) =>
        {
            using var reader = new StreamReader(request.Body);
            var text = await reader.ReadToEndAsync(request.HttpContext.RequestAborted);
            var payload = text.Length == 0 ? null : System.Text.Json.Nodes.JsonNode.Parse(text);
            await client.RaiseEventAsync(instanceId, eventName, payload, request.HttpContext.RequestAborted);
            return Results.Accepted();
        });
        instances.MapPost("{instanceId}/terminate", async (DurableTaskClient client, HttpContext http, string instanceId, string? reason) =>
        {
            await client.TerminateInstanceAsync(instanceId, reason, http.RequestAborted);
            return Results.Accepted();
        });
        return instances;
    }

    private static void MapCommand(RouteGroupBuilder api, string route, OperatorAction action) =>
        api.MapPost(route, (ControlApi handlers, DurableTaskClient client, HttpRequest request, string model, string version) =>
            handlers.CommandAsync(request, model, version, action, client, request.HttpContext.RequestAborted));
}

/// <summary>Durable's instance status document (its member names, not snake_case).</summary>
public sealed record DurableInstanceStatus(
    [property: System.Text.Json.Serialization.JsonPropertyName("name")] string Name,
    [property: System.Text.Json.Serialization.JsonPropertyName("instanceId")] string InstanceId,
    [property: System.Text.Json.Serialization.JsonPropertyName("runtimeStatus")] string RuntimeStatus,
    [property: System.Text.Json.Serialization.JsonPropertyName("input")] System.Text.Json.Nodes.JsonNode? Input,
    [property: System.Text.Json.Serialization.JsonPropertyName("customStatus")] System.Text.Json.Nodes.JsonNode? CustomStatus,
    [property: System.Text.Json.Serialization.JsonPropertyName("output")] System.Text.Json.Nodes.JsonNode? Output,
    [property: System.Text.Json.Serialization.JsonPropertyName("createdTime")] DateTimeOffset CreatedTime,
    [property: System.Text.Json.Serialization.JsonPropertyName("lastUpdatedTime")] DateTimeOffset LastUpdatedTime);

/// <summary>The control API's error mapping on a plain ASP.NET Core host: every exception becomes its <see cref="LeptonProblems"/> response.</summary>
public sealed class LeptonExceptionHandler(ILogger<LeptonExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        await LeptonProblems.For(exception, httpContext.Request.Path.Value, logger).ExecuteAsync(httpContext);
        return true;
    }
}
