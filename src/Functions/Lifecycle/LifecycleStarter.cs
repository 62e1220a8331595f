using System.Text.Json.Nodes;
using Lepton.Shared;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Rollout;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging;

namespace Lepton.Functions.Lifecycle;

/// <summary>Whether a start found the upload's lifecycle already there.</summary>
public sealed record StartedLifecycle(string InstanceId, bool Started);

/// <summary>What the reconciler did at start: the inconsistencies it repaired (per model) and the lifecycles it resumed.</summary>
public sealed record Reconciliation(IReadOnlyDictionary<string, IReadOnlyList<Repair>> Repairs, IReadOnlyList<string> Resumed);

/// <summary>The runtime state of a lifecycle orchestration, as the version detail route shows it.</summary>
public sealed record LifecycleInstance(
    string Name,
    string InstanceId,
    string RuntimeStatus,
    JsonNode? Input,
    JsonNode? CustomStatus,
    JsonNode? Output,
    DateTimeOffset Created,
    DateTimeOffset Updated)
{
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsRunning => RuntimeStatus is nameof(OrchestrationRuntimeStatus.Running) or nameof(OrchestrationRuntimeStatus.Pending)
        or nameof(OrchestrationRuntimeStatus.Suspended);
}

/// <summary>
/// The one idempotent way to start a lifecycle: the instance id comes from model, version and the
/// content hash (<see cref="InstanceIdFor"/>), and a start that finds an instance for the upload
/// (running, or finished) starts nothing, so a duplicate blob event or a repeated HTTP start never
/// runs a second lifecycle. Only a failed or terminated instance is started again.
/// </summary>
public sealed class LifecycleStarter(ModelStore store, ModelRegistry registry, RolloutRepair repair, ILogger<LifecycleStarter> logger)
{
    /// <summary>Statuses after which the same instance id may run again (e.g. after a host crash).</summary>
    private static readonly OrchestrationRuntimeStatus[] Kept =
    [
        OrchestrationRuntimeStatus.Completed,
        OrchestrationRuntimeStatus.Pending,
        OrchestrationRuntimeStatus.Running,
        OrchestrationRuntimeStatus.Suspended,
    ];

    /// <summary><c>lepton-{model}-{version}-{sha256[:16]}</c>; <c>+</c> (build metadata) is not URL-path safe, and <c>_</c> never occurs in SemVer.</summary>
    public static string InstanceIdFor(string model, string version, string sha256)
    {
        ModelName.Validate(model);
        SemVer.Parse(version);
        return $"lepton-{model}-{version.Replace('+', '_')}-{sha256[..Math.Min(16, sha256.Length)]}";
    }

    /// <summary>Starts the lifecycle of an upload unless one already runs (or ran) for it.</summary>
    public async Task<StartedLifecycle> StartAsync(DurableTaskClient client, LifecycleInput input, CancellationToken cancellationToken = default)
    {
        var instanceId = InstanceIdFor(input.Model, input.Version, input.Sha256);
        var existing = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: false, cancellationToken);
        if (existing is not null && existing.RuntimeStatus is not (OrchestrationRuntimeStatus.Failed or OrchestrationRuntimeStatus.Terminated))
        {
            return new StartedLifecycle(instanceId, false);
        }
        try
        {
            await client.ScheduleNewOrchestrationInstanceAsync(
                LifecycleNames.Orchestrator, input, new StartOrchestrationOptions(instanceId).WithDedupeStatuses(Kept), cancellationToken);
        }
        catch (DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException)
        {
            return new StartedLifecycle(instanceId, false); // a concurrent start won
        }
        Log.Started(logger, instanceId, input.Actor);
        return new StartedLifecycle(instanceId, true);
    }

    /// <summary>
    /// Starts like <see cref="StartAsync"/> for an upload already in the store, registering it first
    /// (a different file under a registered version is refused here, before anything runs) and
    /// keeping the run's policy overrides on the version row, where a resumed run finds them. The
    /// overrides are written only when this call started the run: a start that found a lifecycle
    /// leaves that run's overrides alone.
    /// </summary>
    public async Task<StartedLifecycle> StartUploadAsync(
        DurableTaskClient client, string model, string version, JsonObject overrides, string actor, CancellationToken cancellationToken = default)
    {
        var stored = await store.FetchModelAsync(model, version, cancellationToken);
        await registry.RegisterVersionAsync(model, version, stored.Sha256, stored.Size, stored.BlobPath, actor, cancellationToken: cancellationToken);
        var started = await StartAsync(client, new LifecycleInput(model, version, stored.Sha256, overrides, actor), cancellationToken);
        if (started.Started)
        {
            // The instance id too, so an operator command sent right after the start finds the run.
            await registry.AnnotateAsync(model, version, instanceId: started.InstanceId, policyOverrides: overrides, cancellationToken: cancellationToken);
        }
        return started;
    }

    /// <summary>The restart reconciler's resumptions (after its repairs): see <see cref="ReconcileAsync"/>.</summary>
    public async Task<IReadOnlyList<string>> ResumeActiveAsync(DurableTaskClient client, CancellationToken cancellationToken = default) =>
        (await ReconcileAsync(client, cancellationToken: cancellationToken)).Resumed;

    /// <summary>The resumptions for <paramref name="models"/> only (a test's own models on a shared storage account).</summary>
    public async Task<IReadOnlyList<string>> ResumeActiveAsync(DurableTaskClient client, IReadOnlyCollection<string> models, CancellationToken cancellationToken = default) =>
        (await ReconcileAsync(client, models, cancellationToken)).Resumed;

    /// <summary>
    /// The restart reconciler. First, for every model none of whose lifecycles is running, it
    /// repairs what a crash left half-written (<see cref="RolloutRepair"/>: a promotion between
    /// its stage and route writes, a rollback between its stage and route writes, a lost audit
    /// event; each repair recorded in the audit log). Then every version in a non-terminal stage
    /// whose orchestration is missing or failed (an in-memory backend forgets everything on
    /// restart) gets its lifecycle started again with the overrides its run was started with, and
    /// the orchestrator picks up from the version's stored stage.
    /// </summary>
    /// <param name="client">The durable client of the task hub the lifecycles run in.</param>
    /// <param name="models">Only these models; <c>null</c>: every model in the registry.</param>
    /// <param name="cancellationToken">Stops the pass.</param>
    public async Task<Reconciliation> ReconcileAsync(DurableTaskClient client, IReadOnlyCollection<string>? models = null, CancellationToken cancellationToken = default)
    {
        var repairs = new Dictionary<string, IReadOnlyList<Repair>>(StringComparer.Ordinal);
        var resumed = new List<string>();
        foreach (var model in models ?? await registry.ListModelsAsync(cancellationToken))
        {
            var versions = await registry.ListVersionsAsync(model, cancellationToken);
            if (!await AnyRunningAsync(client, versions, cancellationToken))
            {
                var repaired = await RepairAsync(model, cancellationToken);
                if (repaired.Count > 0)
                {
                    repairs[model] = repaired;
                    foreach (var r in repaired)
                    {
                        Log.Repaired(logger, model, r.Version, r.ToString());
                    }
                    versions = await registry.ListVersionsAsync(model, cancellationToken);
                }
            }
            foreach (var record in versions)
            {
                if (!StageMachine.ActiveStages.Contains(record.Stage))
                {
                    continue;
                }
                var started = await StartAsync(client, new LifecycleInput(model, record.Version, record.Sha256, record.PolicyOverrides, "reconciler"), cancellationToken);
                if (started.Started)
                {
                    resumed.Add(started.InstanceId);
                }
            }
        }
        return new Reconciliation(repairs, resumed);
    }

    /// <summary>
    /// The model's repairs, planned again from a fresh read when another writer (an operator's
    /// route change) moved it meanwhile; one that keeps moving is left to the next pass, logged.
    /// </summary>
    private async Task<IReadOnlyList<Repair>> RepairAsync(string model, CancellationToken cancellationToken)
    {
        const int attempts = 3;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await repair.RepairAsync(model, cancellationToken);
            }
            catch (ConcurrencyConflictException) when (attempt < attempts)
            {
                // Read again and plan again.
            }
            catch (ConcurrencyConflictException error)
            {
                Log.RepairSkipped(logger, model, error.Message);
                return [];
            }
        }
    }

    private static async Task<bool> AnyRunningAsync(DurableTaskClient client, IReadOnlyList<ModelVersion> versions, CancellationToken cancellationToken)
    {
        foreach (var version in versions)
        {
            if (version.InstanceId is { } id
                && await client.GetInstanceAsync(id, getInputsAndOutputs: false, cancellationToken) is { } instance
                && instance.RuntimeStatus is OrchestrationRuntimeStatus.Running or OrchestrationRuntimeStatus.Pending or OrchestrationRuntimeStatus.Suspended)
            {
                return true; // its own writes (retried, idempotent) finish the job; repairing now would race them
            }
        }
        return false;
    }

    /// <summary>The lifecycle instance's state, or <c>null</c> when there is none.</summary>
    public static async Task<LifecycleInstance?> DescribeAsync(DurableTaskClient client, string instanceId, CancellationToken cancellationToken = default)
    {
        var metadata = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: true, cancellationToken);
        if (metadata is null)
        {
            return null;
        }
        return new LifecycleInstance(
            metadata.Name,
            metadata.InstanceId,
            metadata.RuntimeStatus.ToString(),
            Parse(metadata.SerializedInput),
            Parse(metadata.SerializedCustomStatus),
            Parse(metadata.SerializedOutput),
            metadata.CreatedAt,
            metadata.LastUpdatedAt);
    }

    private static JsonNode? Parse(string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }
        try
        {
            return JsonNode.Parse(json);
        }
        catch (System.Text.Json.JsonException)
        {
            return JsonValue.Create(json);
        }
    }
}

internal static partial class Log
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Started lifecycle {InstanceId} ({Actor})")]
    public static partial void Started(ILogger logger, string instanceId, string actor);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reconciler repaired {Model} {Version}: {Repair}")]
    public static partial void Repaired(ILogger logger, string model, string version, string repair);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reconciler left {Model} alone: it changed while being repaired ({Error}); the next pass looks again")]
    public static partial void RepairSkipped(ILogger logger, string model, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ignoring blob {Blob}: {Reason}")]
    public static partial void IgnoredBlob(ILogger logger, string blob, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Metric rollups older than {Hours}h deleted: {Deleted}")]
    public static partial void RollupsExpired(ILogger logger, int hours, string deleted);
}
