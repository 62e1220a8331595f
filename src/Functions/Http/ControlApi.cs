using System.Text.Json;
using System.Text.Json.Nodes;
using Lepton.Functions.Lifecycle;
using Lepton.Shared;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Models;
using Lepton.Shared.Policies;
using Lepton.Shared.Registry;
using Microsoft.AspNetCore.Http;
using Microsoft.DurableTask.Client;

namespace Lepton.Functions.Http;

/// <summary>
/// The control API's handlers, host-independent: each takes the ASP.NET Core request, its route
/// values and the Durable client, calls the registry, model store or lifecycle starter, and returns
/// an <see cref="ApiResult"/>. Errors are thrown and mapped once (<see cref="LeptonProblems"/>) by
/// the host: the Functions app's <see cref="ProblemDetailsMiddleware"/>, or
/// <see cref="LeptonExceptionHandler"/> elsewhere.
/// </summary>
public sealed class ControlApi(ModelRegistry registry, ModelStore store, LifecycleStarter starter, ControlApiOptions options)
{
    private static readonly string[] StartFields = ["policy"];
    private static readonly string[] CommandFields = ["reason"];
    private static readonly string[] RouteFields = ["production", "candidate", "candidate_weight_bp", "shadow", "shadow_fraction_bp", "sticky_header", "reason"];

    public static ApiResult Health() => ApiResult.Json(new { Status = "ok" });

    public async Task<ApiResult> ListModelsAsync(CancellationToken cancellationToken) =>
        ApiResult.Json(new { Models = await registry.ListModelsAsync(cancellationToken) });

    public async Task<ApiResult> ModelAsync(string model, CancellationToken cancellationToken)
    {
        var versions = await registry.ListVersionsAsync(model, cancellationToken);
        if (versions.Count == 0)
        {
            throw new ModelNotFoundException($"model '{model}' has no versions; upload one with `lepton push`");
        }
        var routes = await registry.GetRoutesAsync(model, cancellationToken);
        return ApiResult.Json(new
        {
            Model = model,
            Versions = versions.Select(v => new { v.Version, v.Stage, v.Reason, v.Updated }),
            Routes = routes,
        });
    }

    public async Task<ApiResult> VersionAsync(string model, string version, DurableTaskClient client, CancellationToken cancellationToken)
    {
        var record = await registry.GetVersionAsync(model, version, cancellationToken);
        var lifecycle = record.InstanceId is { } id ? await LifecycleStarter.DescribeAsync(client, id, cancellationToken) : null;
        var reports = await store.ListReportsAsync(model, version, cancellationToken);
        return ApiResult.Json(new { Version = record, Lifecycle = lifecycle, Reports = reports });
    }

    /// <summary>Starts the version's lifecycle (idempotent); the host answers with the Durable check-status response.</summary>
    public async Task<StartedLifecycle> StartAsync(HttpRequest request, string model, string version, DurableTaskClient client, CancellationToken cancellationToken)
    {
        var body = await RequestBodies.ReadObjectAsync(request, StartFields, cancellationToken);
        var overrides = PolicyResolver.ParseLayer(body["policy"]) is { } layer ? (JsonObject)layer.DeepClone() : [];
        PolicyResolver.Resolve(overrides); // a bad override is refused now, with a 400, not inside the run
        return await starter.StartUploadAsync(client, model, version, overrides, AuditActors.Of(request.HttpContext, options), cancellationToken);
    }

    /// <summary>
    /// Sends an operator command to the version's running lifecycle; without one, 409 naming the
    /// final stage. A decisive command (<see cref="OperatorCommands.Decides"/>) is claimed on the
    /// version row first, so of a promote and a rollback racing in one stage exactly one is sent:
    /// the other gets 409 naming the command that won and the stage it leads to; a repeat of the
    /// winner is accepted once (202 with <c>duplicate: true</c>, nothing sent again).
    /// </summary>
    public async Task<ApiResult> CommandAsync(HttpRequest request, string model, string version, OperatorAction action, DurableTaskClient client, CancellationToken cancellationToken)
    {
        var body = await RequestBodies.ReadObjectAsync(request, CommandFields, cancellationToken);
        var record = await registry.GetVersionAsync(model, version, cancellationToken);
        var lifecycle = record.InstanceId is { } id ? await LifecycleStarter.DescribeAsync(client, id, cancellationToken) : null;
        var name = OperatorCommand.Name(action);
        if (lifecycle is not { IsRunning: true })
        {
            throw new ConflictException(
                $"{model} {version} has no running lifecycle (it is {lifecycle?.RuntimeStatus ?? "not started"}, stage '{StageNames.ToWire(record.Stage)}'); "
                + $"{name} applies to a running rollout: change traffic with PUT /api/models/{model}/routes instead");
        }
        var command = new OperatorCommand(action, AuditActors.Of(request.HttpContext, options), RequestBodies.Text(body, "reason", ""));
        if (OperatorCommands.Decides(PhaseOf(lifecycle), action)
            && await registry.ClaimCommandAsync(model, version, command, cancellationToken) is { } held)
        {
            if (OperatorCommands.SameDecision(held.Command.Action, action))
            {
                return ApiResult.Json(new { lifecycle.InstanceId, Sent = held.Command, Duplicate = true }, StatusCodes.Status202Accepted);
            }
            var won = OperatorCommand.Name(held.Command.Action);
            throw new ConflictException(
                $"{model} {version}: {won} by {held.Command.Actor} was accepted first (in stage '{StageNames.ToWire(held.Stage)}'), so the lifecycle goes to "
                + $"'{StageNames.ToWire(OperatorCommands.Outcome(held.Command.Action, held.Stage))}'; {name} was not sent",
                "command_conflict");
        }
        await client.RaiseEventAsync(lifecycle.InstanceId, LifecycleNames.OperatorEvent, command, cancellationToken);
        return ApiResult.Json(new { lifecycle.InstanceId, Sent = command }, StatusCodes.Status202Accepted);
    }

    /// <summary>The phase the run last published (its custom status); registering when it has published none.</summary>
    private static LifecyclePhase PhaseOf(LifecycleInstance lifecycle)
    {
        if (lifecycle.CustomStatus is JsonObject status && status["phase"] is JsonValue phase && phase.TryGetValue<string>(out var name))
        {
            try
            {
                return LeptonJson.Deserialize<LifecyclePhase>($"\"{name}\"");
            }
            catch (JsonException)
            {
            }
        }
        return LifecyclePhase.Registering;
    }

    /// <summary>A manual route change, validated by the registry and audited with the caller as actor.</summary>
    public async Task<ApiResult> PutRoutesAsync(HttpRequest request, string model, CancellationToken cancellationToken)
    {
        JsonObject body;
        try
        {
            body = await RequestBodies.ReadObjectAsync(request, RouteFields, cancellationToken);
        }
        catch (InvalidInputException error) when (error.Code == "invalid_input")
        {
            throw new InvalidRoutesException(error.Message);
        }
        var routes = await registry.GetRoutesAsync(model, cancellationToken);
        foreach (var (key, node) in body)
        {
            routes = key switch
            {
                "production" => routes with { Production = VersionOrNull(key, node) },
                "candidate" => routes with { Candidate = VersionOrNull(key, node) },
                "shadow" => routes with { Shadow = VersionOrNull(key, node) },
                "sticky_header" => routes with { StickyHeader = VersionOrNull(key, node) },
                "candidate_weight_bp" => routes with { CandidateWeightBp = BasisPoints(key, node) },
                "shadow_fraction_bp" => routes with { ShadowFractionBp = BasisPoints(key, node) },
                _ => routes,
            };
        }
        var reason = RequestBodies.Text(body, "reason", "manual route change");
        var stored = await registry.SetRoutesAsync(routes, AuditActors.Of(request.HttpContext, options), reason, cancellationToken);
        return ApiResult.Json(stored);
    }

    public async Task<ApiResult> HistoryAsync(string model, string version, CancellationToken cancellationToken) =>
        ApiResult.Json(new { Events = await registry.HistoryAsync(model, version, cancellationToken) });

    /// <summary>The model's whole audit log: every version's transitions and every traffic change (which belongs to no one version).</summary>
    public async Task<ApiResult> ModelHistoryAsync(string model, CancellationToken cancellationToken)
    {
        var events = await registry.HistoryAsync(model, null, cancellationToken);
        if (events.Count == 0)
        {
            throw new ModelNotFoundException($"model '{model}' has no versions; upload one with `lepton push`");
        }
        return ApiResult.Json(new { Events = events });
    }

    private static string? VersionOrNull(string key, JsonNode? node) => node switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        _ => throw new InvalidRoutesException($"{key} must be a string or null, got {node.ToJsonString()}"),
    };

    private static int BasisPoints(string key, JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var bp) && !v.ToJsonString().Contains('.', StringComparison.Ordinal)
            ? bp
            : throw new InvalidRoutesException($"{key} must be a whole number of basis points (0..10000), got {node?.ToJsonString() ?? "null"}");
}
