using Lepton.Shared.Lifecycle;
using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Http;
using Microsoft.DurableTask.Client;

namespace Lepton.Functions.Http;

/// <summary>
/// The control API's HTTP triggers: function keys required (<see cref="AuthorizationLevel.Function"/>)
/// except <c>health</c>. Each binds the route values and the Durable client and calls one
/// <see cref="ControlApi"/> handler; errors are mapped by <see cref="ProblemDetailsMiddleware"/>.
/// </summary>
public sealed class HttpFunctions(ControlApi api)
{
    [Function("health")]
    public static IResult Health([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = ControlApiRoutes.Health)] HttpRequest request) =>
        ControlApi.Health();

    [Function("list_models")]
    public Task<ApiResult> ListModels([HttpTrigger(AuthorizationLevel.Function, "get", Route = ControlApiRoutes.Models)] HttpRequest request) =>
        api.ListModelsAsync(request.HttpContext.RequestAborted);

    [Function("model_detail")]
    public Task<ApiResult> Model([HttpTrigger(AuthorizationLevel.Function, "get", Route = ControlApiRoutes.Model)] HttpRequest request, string model) =>
        api.ModelAsync(model, request.HttpContext.RequestAborted);

    [Function("put_routes")]
    public Task<ApiResult> PutRoutes([HttpTrigger(AuthorizationLevel.Function, "put", Route = ControlApiRoutes.Routes)] HttpRequest request, string model) =>
        api.PutRoutesAsync(request, model, request.HttpContext.RequestAborted);

    [Function("version_detail")]
    public Task<ApiResult> Version(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = ControlApiRoutes.Version)] HttpRequest request,
        string model,
        string version,
        [DurableClient] DurableTaskClient client) =>
        api.VersionAsync(model, version, client, request.HttpContext.RequestAborted);

    /// <summary>Starts the lifecycle and answers with Durable's own check-status response (202, <c>Location</c>, management links with the system key).</summary>
    [Function("start_lifecycle")]
    public async Task<HttpResponseData> Start(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = ControlApiRoutes.Start)] HttpRequest request,
        string model,
        string version,
        [DurableClient] DurableTaskClient client,
        FunctionContext context)
    {
        var started = await api.StartAsync(request, model, version, client, context.CancellationToken);
        var requestData = await context.GetHttpRequestDataAsync()
            ?? throw new InvalidOperationException("the start function was invoked without an HTTP request");
        return await client.CreateCheckStatusResponseAsync(requestData, started.InstanceId, context.CancellationToken);
    }

    [Function("approve")]
    public Task<ApiResult> Approve(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = ControlApiRoutes.Approve)] HttpRequest request, string model, string version, [DurableClient] DurableTaskClient client) =>
        api.CommandAsync(request, model, version, OperatorAction.Approve, client, request.HttpContext.RequestAborted);

    [Function("promote")]
    public Task<ApiResult> Promote(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = ControlApiRoutes.Promote)] HttpRequest request, string model, string version, [DurableClient] DurableTaskClient client) =>
        api.CommandAsync(request, model, version, OperatorAction.Promote, client, request.HttpContext.RequestAborted);

    [Function("rollback")]
    public Task<ApiResult> Rollback(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = ControlApiRoutes.Rollback)] HttpRequest request, string model, string version, [DurableClient] DurableTaskClient client) =>
        api.CommandAsync(request, model, version, OperatorAction.Rollback, client, request.HttpContext.RequestAborted);

    [Function("abort")]
    public Task<ApiResult> Abort(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = ControlApiRoutes.Abort)] HttpRequest request, string model, string version, [DurableClient] DurableTaskClient client) =>
        api.CommandAsync(request, model, version, OperatorAction.Abort, client, request.HttpContext.RequestAborted);

    [Function("version_history")]
    public Task<ApiResult> History([HttpTrigger(AuthorizationLevel.Function, "get", Route = ControlApiRoutes.History)] HttpRequest request, string model, string version) =>
        api.HistoryAsync(model, version, request.HttpContext.RequestAborted);

    [Function("model_history")]
    public Task<ApiResult> ModelHistory([HttpTrigger(AuthorizationLevel.Function, "get", Route = ControlApiRoutes.ModelHistory)] HttpRequest request, string model) =>
        api.ModelHistoryAsync(model, request.HttpContext.RequestAborted);
}
