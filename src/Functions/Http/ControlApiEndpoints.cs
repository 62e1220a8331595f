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
        return api;
    }

    private static void MapCommand(RouteGroupBuilder api, string route, OperatorAction action) =>
        api.MapPost(route, (ControlApi handlers, DurableTaskClient client, HttpRequest request, string model, string version) =>
            handlers.CommandAsync(request, model, version, action, client, request.HttpContext.RequestAborted));
}

/// <summary>The control API's error mapping on a plain ASP.NET Core host: every exception becomes its <see cref="LeptonProblems"/> response.</summary>
public sealed class LeptonExceptionHandler(ILogger<LeptonExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        await LeptonProblems.For(exception, httpContext.Request.Path.Value, logger).ExecuteAsync(httpContext);
        return true;
    }
}
