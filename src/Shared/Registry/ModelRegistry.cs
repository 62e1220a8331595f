using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Azure;
using Azure.Data.Tables;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Policies;
using Lepton.Shared.Storage;

namespace Lepton.Shared.Registry;

/// <summary>
/// The model registry over Azure Tables: versions, routes and the audit log (DESIGN.md §2).
/// </summary>
/// <remarks>
/// Tables are partitioned by model name, so one model never contends with another and listing a
/// model is a single-partition query. Every write that changes state is conditional on the ETag it
/// read, so of two concurrent writers exactly one wins and the other gets
/// <see cref="ConcurrencyConflictException"/> with nothing written. A transition stores its audit
/// event on the version row in the same write, then appends it to <c>events</c> under a
/// deterministic key; if the process dies in between, the next write or history read of that
/// version re-appends it, so no event is ever lost or duplicated.
/// </remarks>
public sealed partial class ModelRegistry(StorageClients storage, TimeProvider time)
{
    private const string RoutesRow = "routes";

    // Metadata updates (not transitions) retry a lost ETag race this many times before giving up.
    private const int AnnotateAttempts = 5;

    private readonly TableClient _versions = storage.Table(StorageLayout.VersionsTable);
    private readonly TableClient _routes = storage.Table(StorageLayout.RoutesTable);
    private readonly TableClient _events = storage.Table(StorageLayout.EventsTable);

    [GeneratedRegex(@"\A[A-Za-z0-9][A-Za-z0-9-]{0,63}\z", RegexOptions.CultureInvariant)]
    private static partial Regex HeaderRegex();

    // -- versions ---------------------------------------------------------------------------------

    /// <summary>Records a new version in stage <c>registered</c>; idempotent for the same content.</summary>
    public async Task<ModelVersion> RegisterVersionAsync(
        string model,
        string version,
        string sha256,
        long size,
        string blobPath,
        string actor = "lepton",
        Signature? signature = null,
        CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model);
        var semver = SemVer.Parse(version);
        var now = time.GetUtcNow();
        var registered = new AuditEvent
        {
            Model = model,
            Version = version,
            Kind = AuditKinds.Registered,
            Actor = actor,
            To = StageNames.ToWire(Stage.Registered),
            Reason = $"registered sha256 {sha256[..Math.Min(12, sha256.Length)]}",
            At = now,
            Details = new JsonObject { ["sha256"] = sha256, ["size"] = size },
        };
        var entity = new TableEntity(model, semver.SortKey)
        {
            ["Version"] = version,
            ["Stage"] = StageNames.ToWire(Stage.Registered),
            ["Sha256"] = sha256,
            ["Size"] = size,
            ["BlobPath"] = blobPath,
            ["Created"] = now.ToString("O", CultureInfo.InvariantCulture),
            ["Updated"] = now.ToString("O", CultureInfo.InvariantCulture),
            ["Signature"] = signature is null ? "" : LeptonJson.Serialize(signature),
            ["Reason"] = "",
            ["Sequence"] = 0,
            ["LastEvent"] = LeptonJson.Serialize(registered),
        };
        try
        {
            await _versions.AddEntityAsync(entity, cancellationToken);
        }
        catch (RequestFailedException error) when (error.Status == 409)
        {
            var existing = await GetByKeyAsync(model, semver, cancellationToken);
            if (existing.Version != version)
            {
                throw new VersionConflictException(
                    $"{model} {version} has the same SemVer precedence as the registered {existing.Version} "
                    + "(build metadata does not distinguish versions); bump the version instead");
            }
            if (existing.Sha256 != sha256)
            {
                throw new VersionConflictException(
                    $"{model} {version} is already registered with different content (sha256 {Short(existing.Sha256)}…, "
                    + $"this upload {Short(sha256)}…); versions are immutable: publish the change as a new version");
            }
            return existing;
        }
        await AppendEventAsync(model, EventKey(semver.SortKey, 0), registered, cancellationToken);
        return await GetVersionAsync(model, version, cancellationToken);
    }

    public async Task<ModelVersion> GetVersionAsync(string model, string version, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model);
        var semver = SemVer.Parse(version);
        var record = await GetByKeyAsync(model, semver, cancellationToken);
        if (record.Version != version && semver.Build.Count > 0)
        {
            throw new VersionNotFoundException($"model '{model}' has {record.Version}, not {version}");
        }
        return record;
    }

    /// <summary>The version, or <c>null</c> when it is not registered.</summary>
    public async Task<ModelVersion?> FindVersionAsync(string model, string version, CancellationToken cancellationToken = default)
    {
        try
        {
            return await GetVersionAsync(model, version, cancellationToken);
        }
        catch (VersionNotFoundException)
        {
            return null;
        }
    }

    private async Task<ModelVersion> GetByKeyAsync(string model, SemVer semver, CancellationToken cancellationToken)
    {
        var response = await _versions.GetEntityIfExistsAsync<TableEntity>(model, semver.SortKey, cancellationToken: cancellationToken);
        if (!response.HasValue)
        {
            throw new VersionNotFoundException(
                $"model '{model}' has no version {semver}; list versions with `lepton status {model}`");
        }
        return ToVersion(response.Value!);
    }

    /// <summary>Every version of <paramref name="model"/>, lowest SemVer first (RowKeys sort by precedence).</summary>
    public async Task<IReadOnlyList<ModelVersion>> ListVersionsAsync(string model, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model);
        var versions = new List<ModelVersion>();
        await foreach (var entity in _versions.QueryAsync<TableEntity>(e => e.PartitionKey == model, cancellationToken: cancellationToken))
        {
            versions.Add(ToVersion(entity));
        }
        return versions.OrderBy(v => v.SemVer).ToList();
    }

    /// <summary>Every model with a registered version, sorted (scans every partition).</summary>
    public async Task<IReadOnlyList<string>> ListModelsAsync(CancellationToken cancellationToken = default)
    {
        var models = new SortedSet<string>(StringComparer.Ordinal);
        await foreach (var entity in _versions.QueryAsync<TableEntity>(select: ["PartitionKey"], cancellationToken: cancellationToken))
        {
            models.Add(entity.PartitionKey);
        }
        return models.ToList();
    }

    /// <summary>
    /// Moves a version to <paramref name="to"/> and audits it; exactly one of concurrent movers wins.
    /// </summary>
    /// <remarks>
    /// <paramref name="expectedFrom"/> makes the call idempotent for retried activities: if the
    /// version is already in <paramref name="to"/> and its last transition came from
    /// <paramref name="expectedFrom"/>, the stored record is returned unchanged; if it is in any other
    /// stage than <paramref name="expectedFrom"/> the move is a conflict (someone else moved it first).
    /// </remarks>
    public async Task<ModelVersion> TransitionAsync(
        string model,
        string version,
        Stage to,
        string reason,
        string actor,
        Stage? expectedFrom = null,
        JsonObject? details = null,
        CancellationToken cancellationToken = default)
    {
        var (current, entity) = await GetWithEntityAsync(model, version, cancellationToken);
        await RepairLastEventAsync(current, entity, cancellationToken);
        if (expectedFrom is { } expected && current.Stage != expected)
        {
            if (current.Stage == to && LastTransitionFrom(entity) == expected)
            {
                return current;
            }
            throw new ConcurrencyConflictException(
                $"{model} {version} is in stage '{StageNames.ToWire(current.Stage)}', not '{StageNames.ToWire(expected)}': "
                + "another actor moved it first; reload and retry");
        }
        StageMachine.CheckTransition(current.Stage, to);
        var now = time.GetUtcNow();
        var sequence = current.Sequence + 1;
        var transition = new AuditEvent
        {
            Model = model,
            Version = version,
            Kind = AuditKinds.Transition,
            Actor = actor,
            From = StageNames.ToWire(current.Stage),
            To = StageNames.ToWire(to),
            Reason = reason,
            At = now,
            Details = details ?? [],
        };
        var patch = new TableEntity(model, current.SemVer.SortKey)
        {
            ["Stage"] = StageNames.ToWire(to),
            ["Reason"] = reason,
            ["Updated"] = now.ToString("O", CultureInfo.InvariantCulture),
            ["Sequence"] = sequence,
            ["LastEvent"] = LeptonJson.Serialize(transition),
        };
        await ConditionalMergeAsync(current, patch, cancellationToken);
        Failpoints.Hit(Failpoints.TransitionAfterRowWrite);
        await AppendEventAsync(model, EventKey(current.SemVer.SortKey, sequence), transition, cancellationToken);
        return await GetVersionAsync(model, version, cancellationToken);
    }

    /// <summary>
    /// Attaches metadata (signature, evaluation summary, orchestration id, the policy overrides of
    /// its run) to a version; an empty overrides object clears those of an earlier run.
    /// </summary>
    public async Task<ModelVersion> AnnotateAsync(
        string model,
        string version,
        Signature? signature = null,
        JsonObject? evaluation = null,
        string? instanceId = null,
        JsonObject? policyOverrides = null,
        CancellationToken cancellationToken = default)
    {
        for (var attempt = 0; attempt < AnnotateAttempts; attempt++)
        {
            var current = await GetVersionAsync(model, version, cancellationToken);
            var patch = new TableEntity(model, current.SemVer.SortKey);
            if (signature is not null)
            {
                patch["Signature"] = LeptonJson.Serialize(signature);
            }
            if (evaluation is not null)
            {
                patch["Evaluation"] = evaluation.ToJsonString();
            }
            if (instanceId is not null)
            {
                patch["InstanceId"] = instanceId;
            }
            if (policyOverrides is not null)
            {
                patch["PolicyOverrides"] = policyOverrides.ToJsonString();
            }
            if (patch.Count <= 2)
            {
                return current;
            }
            try
            {
                await ConditionalMergeAsync(current, patch, cancellationToken);
            }
            catch (ConcurrencyConflictException)
            {
                continue; // a transition landed in between; metadata merges are order-free
            }
            return await GetVersionAsync(model, version, cancellationToken);
        }
        throw new ConcurrencyConflictException($"{model} {version} kept changing while annotating it; retry later");
    }

    private async Task ConditionalMergeAsync(ModelVersion current, TableEntity patch, CancellationToken cancellationToken)
    {
        try
        {
            await _versions.UpdateEntityAsync(patch, new ETag(current.ETag), TableUpdateMode.Merge, cancellationToken);
        }
        catch (RequestFailedException error) when (error.Status == 412)
        {
            throw new ConcurrencyConflictException(
                $"{current.Model} {current.Version} was changed by another actor while this change was being made; "
                + "nothing was written: reload and retry");
        }
    }

    private async Task<(ModelVersion Record, TableEntity Entity)> GetWithEntityAsync(
        string model, string version, CancellationToken cancellationToken)
    {
        ModelName.Validate(model);
        var semver = SemVer.Parse(version);
        var response = await _versions.GetEntityIfExistsAsync<TableEntity>(model, semver.SortKey, cancellationToken: cancellationToken);
        if (!response.HasValue)
        {
            throw new VersionNotFoundException($"model '{model}' has no version {semver}; list versions with `lepton status {model}`");
        }
        var record = ToVersion(response.Value!);
        if (record.Version != version && semver.Build.Count > 0)
        {
            throw new VersionNotFoundException($"model '{model}' has {record.Version}, not {version}");
        }
        return (record, response.Value!);
    }

    private static Stage? LastTransitionFrom(TableEntity entity)
    {
        var raw = entity.GetString("LastEvent");
        if (string.IsNullOrEmpty(raw))
        {
            return null;
        }
        var last = LeptonJson.Deserialize<AuditEvent>(raw);
        return last.From is null ? null : StageNames.Parse(last.From);
    }

    /// <summary>Re-appends the version's last audit event if a crash lost it (idempotent insert).</summary>
    private async Task<bool> RepairLastEventAsync(ModelVersion record, TableEntity entity, CancellationToken cancellationToken)
    {
        var raw = entity.GetString("LastEvent");
        if (!string.IsNullOrEmpty(raw))
        {
            var last = LeptonJson.Deserialize<AuditEvent>(raw);
            return await AppendEventAsync(record.Model, EventKey(record.SemVer.SortKey, record.Sequence), last, cancellationToken);
        }
        return false;
    }

    /// <summary>Re-appends the version's last audit event if a crash lost it; true when the log lacked it.</summary>
    public async Task<bool> RepairVersionEventAsync(string model, string version, CancellationToken cancellationToken = default)
    {
        var (record, entity) = await GetWithEntityAsync(model, version, cancellationToken);
        return await RepairLastEventAsync(record, entity, cancellationToken);
    }

    // -- routes -----------------------------------------------------------------------------------

    /// <summary>A model's routes; a model without a routes row has empty routes (generation 0).</summary>
    public async Task<Routes> GetRoutesAsync(string model, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model);
        var response = await _routes.GetEntityIfExistsAsync<TableEntity>(model, RoutesRow, cancellationToken: cancellationToken);
        return response.HasValue ? ToRoutes(response.Value!) : new Routes { Model = model };
    }

    /// <summary>
    /// Routes rows written at or after <paramref name="since"/> (server time; <c>null</c> = all), with
    /// the server's timestamp of each: a replica polling with the latest timestamp it saw reads only
    /// what changed (an unchanged table costs an empty answer), across every model or only
    /// <paramref name="models"/> (a few models per request).
    /// </summary>
    public async Task<IReadOnlyList<(Routes Routes, DateTimeOffset Changed)>> RoutesChangedSinceAsync(
        DateTimeOffset? since, IReadOnlyCollection<string>? models = null, CancellationToken cancellationToken = default)
    {
        var changed = new List<(Routes, DateTimeOffset)>();
        foreach (var filter in ChangedFilters(since, models))
        {
            await foreach (var entity in _routes.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
            {
                changed.Add((ToRoutes(entity), entity.Timestamp ?? DateTimeOffset.MinValue));
            }
        }
        return changed;
    }

    /// <summary>Versions of <paramref name="models"/> written at or after <paramref name="since"/> (<c>null</c> = all), with the server's timestamps.</summary>
    public async Task<IReadOnlyList<(ModelVersion Version, DateTimeOffset Changed)>> VersionsChangedSinceAsync(
        IReadOnlyCollection<string> models, DateTimeOffset? since, CancellationToken cancellationToken = default)
    {
        var changed = new List<(ModelVersion, DateTimeOffset)>();
        if (models.Count == 0)
        {
            return changed;
        }
        foreach (var filter in ChangedFilters(since, models))
        {
            await foreach (var entity in _versions.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
            {
                changed.Add((ToVersion(entity), entity.Timestamp ?? DateTimeOffset.MinValue));
            }
        }
        return changed;
    }

    // Partition keys per query: keeps the filter (a URL query string) short.
    private const int ModelsPerQuery = 16;

    private static IEnumerable<string?> ChangedFilters(DateTimeOffset? since, IReadOnlyCollection<string>? models)
    {
        var time = since is { } t ? TableClient.CreateQueryFilter($"Timestamp ge {t}") : null;
        if (models is not { Count: > 0 })
        {
            yield return time;
            yield break;
        }
        foreach (var chunk in models.Chunk(ModelsPerQuery))
        {
            foreach (var model in chunk)
            {
                ModelName.Validate(model);
            }
            var partitions = "(" + string.Join(" or ", chunk.Select(m => TableClient.CreateQueryFilter($"PartitionKey eq {m}"))) + ")";
            yield return time is null ? partitions : $"{partitions} and {time}";
        }
    }

    /// <summary>
    /// Replaces a model's routes after validation. Pass the <see cref="Routes"/> you read (with its
    /// ETag) to make the write conditional: routes written by someone else in between raise
    /// <see cref="ConcurrencyConflictException"/> and nothing is written.
    /// </summary>
    public Task<Routes> SetRoutesAsync(Routes routes, string actor, string reason, CancellationToken cancellationToken = default) =>
        SetRoutesAsync(routes, actor, reason, null, cancellationToken);

    /// <summary>Like <see cref="SetRoutesAsync(Routes, string, string, CancellationToken)"/>, with <paramref name="details"/> in the audit event.</summary>
    public async Task<Routes> SetRoutesAsync(Routes routes, string actor, string reason, JsonObject? details, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(routes.Model);
        await ValidateRoutesAsync(routes, cancellationToken);
        var previous = await GetRoutesAsync(routes.Model, cancellationToken);
        await RepairRoutesEventAsync(previous, cancellationToken);
        var generation = previous.Generation + 1;
        var stored = routes with { Generation = generation, ETag = "", LastEvent = null };
        // The audit event goes on the row in the same write, then into the log under a key of the
        // generation: a crash in between loses nothing (the next write or a repair re-appends it).
        var change = new AuditEvent
        {
            Model = routes.Model,
            Version = routes.Candidate,
            Kind = AuditKinds.Routes,
            Actor = actor,
            From = LeptonJson.Serialize(previous with { LastEvent = null }),
            To = LeptonJson.Serialize(stored),
            Reason = reason,
            At = time.GetUtcNow(),
            Details = details ?? [],
        };
        var entity = new TableEntity(routes.Model, RoutesRow)
        {
            ["Production"] = routes.Production ?? "",
            ["Candidate"] = routes.Candidate ?? "",
            ["CandidateWeightBp"] = routes.CandidateWeightBp,
            ["Shadow"] = routes.Shadow ?? "",
            ["ShadowFractionBp"] = routes.ShadowFractionBp,
            ["StickyHeader"] = routes.StickyHeader ?? "",
            ["Generation"] = generation,
            ["LastEvent"] = LeptonJson.Serialize(change),
        };
        var expected = string.IsNullOrEmpty(routes.ETag) ? previous.ETag : routes.ETag;
        try
        {
            if (string.IsNullOrEmpty(expected))
            {
                await _routes.AddEntityAsync(entity, cancellationToken);
            }
            else
            {
                await _routes.UpdateEntityAsync(entity, new ETag(expected), TableUpdateMode.Replace, cancellationToken);
            }
        }
        catch (RequestFailedException error) when (error.Status is 409 or 412)
        {
            throw new ConcurrencyConflictException(
                $"routes of '{routes.Model}' were changed by another actor; nothing was written: reload the routes and retry");
        }
        Failpoints.Hit(Failpoints.RoutesAfterRowWrite);
        await AppendEventAsync(routes.Model, RoutesEventKey(generation), change, cancellationToken);
        return await GetRoutesAsync(routes.Model, cancellationToken);
    }

    /// <summary>Re-appends the routes' last audit event if a crash lost it (idempotent insert); true when the log lacked it.</summary>
    public async Task<bool> RepairRoutesEventAsync(Routes routes, CancellationToken cancellationToken = default)
    {
        if (routes.LastEvent is not { } last)
        {
            return false;
        }
        return await AppendEventAsync(routes.Model, RoutesEventKey(routes.Generation), last, cancellationToken);
    }

    /// <summary>Records what the reconciler repaired, under the version it concerns (shown in its history).</summary>
    public async Task AppendRepairAsync(string model, string version, string actor, string reason, JsonObject? details = null, CancellationToken cancellationToken = default)
    {
        var semver = SemVer.Parse(version);
        var now = time.GetUtcNow();
        var repair = new AuditEvent
        {
            Model = model,
            Version = version,
            Kind = AuditKinds.Repair,
            Actor = actor,
            Reason = reason,
            At = now,
            Details = details ?? [],
        };
        // After the version's transition keys (digits) and before "~": a repair sorts into the version's history.
        await AppendEventAsync(model, $"v!{semver.SortKey}!r{now.UtcTicks:D19}{Guid.NewGuid():N}", repair, cancellationToken);
    }

    /// <summary>
    /// Claims the one decisive operator command (promote, rollback, abort) of a version's current
    /// stage: of two racing commands exactly one wins (an ETag-conditional write); the other gets
    /// the winner back. A claim made in an earlier stage (a promote before the bake) does not block
    /// one in the current stage (a rollback during the bake).
    /// </summary>
    /// <returns><c>null</c> when this claim won; otherwise the claim that holds the stage.</returns>
    public async Task<CommandClaim?> ClaimCommandAsync(
        string model, string version, OperatorCommand command, CancellationToken cancellationToken = default)
    {
        for (var attempt = 0; attempt < AnnotateAttempts; attempt++)
        {
            var (current, entity) = await GetWithEntityAsync(model, version, cancellationToken);
            var raw = entity.GetString("Command");
            if (!string.IsNullOrEmpty(raw) && LeptonJson.Deserialize<CommandClaim>(raw) is { } held && (held.Stage == current.Stage || CarriedOut(held, current.Stage)))
            {
                return held;
            }
            var claim = new CommandClaim(command, current.Stage, time.GetUtcNow());
            var patch = new TableEntity(model, current.SemVer.SortKey) { ["Command"] = LeptonJson.Serialize(claim) };
            try
            {
                await ConditionalMergeAsync(current, patch, cancellationToken);
                return null;
            }
            catch (ConcurrencyConflictException)
            {
                // Another command (or a transition) landed in between: read again and decide on that.
            }
        }
        throw new ConcurrencyConflictException($"{model} {version} kept changing while a command was being accepted; retry");
    }

    /// <summary>
    /// Whether the held decision has already been carried out: the version is in the final stage it
    /// leads to while its run finishes the last writes. A command then meets that decision, not a
    /// fresh claim; a promotion's outcome is not final (the bake still takes a rollback).
    /// </summary>
    private static bool CarriedOut(CommandClaim held, Stage current) =>
        OperatorCommands.Outcome(held.Command.Action, held.Stage) is var outcome
        && outcome == current
        && outcome is (Stage.RolledBack or Stage.Rejected);

    /// <summary>Forgets the command claim of a version (a new run of its lifecycle starts with none).</summary>
    public async Task ClearCommandAsync(string model, string version, CancellationToken cancellationToken = default)
    {
        for (var attempt = 0; attempt < AnnotateAttempts; attempt++)
        {
            var (current, entity) = await GetWithEntityAsync(model, version, cancellationToken);
            if (string.IsNullOrEmpty(entity.GetString("Command")))
            {
                return;
            }
            try
            {
                await ConditionalMergeAsync(current, new TableEntity(model, current.SemVer.SortKey) { ["Command"] = "" }, cancellationToken);
                return;
            }
            catch (ConcurrencyConflictException)
            {
            }
        }
        throw new ConcurrencyConflictException($"{model} {version} kept changing while clearing its command claim; retry");
    }

    private async Task ValidateRoutesAsync(Routes routes, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        foreach (var (name, value) in new[] { ("candidate_weight_bp", routes.CandidateWeightBp), ("shadow_fraction_bp", routes.ShadowFractionBp) })
        {
            if (value is < 0 or > Policy.BasisPoints)
            {
                problems.Add($"{name} must be within 0..{Policy.BasisPoints} basis points, got {value}");
            }
        }
        if (routes.CandidateWeightBp > 0 && routes.Candidate is null)
        {
            problems.Add("candidate_weight_bp > 0 needs a candidate version");
        }
        if (routes.ShadowFractionBp > 0 && routes.Shadow is null)
        {
            problems.Add("shadow_fraction_bp > 0 needs a shadow version");
        }
        if (routes.Candidate is not null && routes.Candidate == routes.Production)
        {
            problems.Add("candidate and production must be different versions");
        }
        if (routes.Candidate is not null && routes.Production is null && routes.CandidateWeightBp < Policy.BasisPoints)
        {
            problems.Add("without a production version the candidate must take all traffic");
        }
        if (routes.StickyHeader is not null && !HeaderRegex().IsMatch(routes.StickyHeader))
        {
            problems.Add($"sticky_header {ModelName.Quote(routes.StickyHeader)} is not a valid header name");
        }
        if (problems.Count > 0)
        {
            throw new InvalidRoutesException($"invalid routes for '{routes.Model}': {string.Join("; ", problems)}");
        }
        var slots = new (string Slot, string? Version, IReadOnlySet<Stage> Stages)[]
        {
            ("production", routes.Production, StageMachine.ProductionSlotStages),
            ("candidate", routes.Candidate, StageMachine.CandidateSlotStages),
            ("shadow", routes.Shadow, StageMachine.ShadowSlotStages),
        };
        foreach (var (slot, version, stages) in slots)
        {
            if (version is null)
            {
                continue;
            }
            if (!SemVer.TryParse(version, out _))
            {
                throw new InvalidRoutesException($"invalid routes for '{routes.Model}': {slot} version {ModelName.Quote(version)} is not a SemVer version");
            }
            var record = await FindVersionAsync(routes.Model, version, cancellationToken)
                ?? throw new InvalidRoutesException($"invalid routes for '{routes.Model}': {slot} version {version} is not registered");
            if (!stages.Contains(record.Stage))
            {
                var allowed = string.Join(", ", stages.Select(StageNames.ToWire).Order(StringComparer.Ordinal));
                throw new InvalidRoutesException(
                    $"invalid routes for '{routes.Model}': {slot} version {version} is in stage '{StageNames.ToWire(record.Stage)}'; "
                    + $"the {slot} slot takes versions in: {allowed}");
            }
        }
    }

    // -- audit log --------------------------------------------------------------------------------

    /// <summary>Appends an event under a deterministic key; already appended (a retry or a repair) is fine.</summary>
    /// <returns>Whether the event was new to the log.</returns>
    public async Task<bool> AppendEventAsync(string model, string rowKey, AuditEvent auditEvent, CancellationToken cancellationToken = default)
    {
        var entity = new TableEntity(model, rowKey)
        {
            ["Version"] = auditEvent.Version ?? "",
            ["Kind"] = auditEvent.Kind,
            ["Actor"] = auditEvent.Actor,
            ["From"] = auditEvent.From ?? "",
            ["To"] = auditEvent.To ?? "",
            ["Reason"] = auditEvent.Reason,
            ["At"] = auditEvent.At.ToString("O", CultureInfo.InvariantCulture),
            ["Details"] = auditEvent.Details.ToJsonString(),
        };
        try
        {
            await _events.AddEntityAsync(entity, cancellationToken);
            return true;
        }
        catch (RequestFailedException error) when (error.Status == 409)
        {
            // Already there: the log stays duplicate-free.
            return false;
        }
    }

    /// <summary>The audit log of a model (or one version), oldest first.</summary>
    public async Task<IReadOnlyList<AuditEvent>> HistoryAsync(string model, string? version = null, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model);
        string filter;
        if (version is null)
        {
            foreach (var record in await ListVersionsAsync(model, cancellationToken))
            {
                var (_, entity) = await GetWithEntityAsync(model, record.Version, cancellationToken);
                await RepairLastEventAsync(record, entity, cancellationToken);
            }
            filter = TableClient.CreateQueryFilter($"PartitionKey eq {model}");
        }
        else
        {
            var (record, entity) = await GetWithEntityAsync(model, version, cancellationToken);
            await RepairLastEventAsync(record, entity, cancellationToken);
            var low = $"v!{record.SemVer.SortKey}!";
            filter = TableClient.CreateQueryFilter($"PartitionKey eq {model} and RowKey gt {low} and RowKey lt {low + "~"}");
        }
        var events = new List<AuditEvent>();
        await foreach (var entity in _events.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            events.Add(ToEvent(model, entity));
        }
        // Stable: events with the same timestamp keep their key order.
        return events.OrderBy(e => e.At).ToList();
    }

    /// <summary>The RowKey of a version's n-th audit event.</summary>
    public static string EventKey(string versionSortKey, int sequence) => $"v!{versionSortKey}!{sequence:D8}";

    private static string RoutesEventKey(long generation) => $"r!{generation:D10}";

    // -- mapping ----------------------------------------------------------------------------------

    private static ModelVersion ToVersion(TableEntity entity)
    {
        var signature = entity.GetString("Signature");
        var evaluation = entity.GetString("Evaluation");
        var overrides = entity.GetString("PolicyOverrides");
        var last = entity.GetString("LastEvent");
        return new ModelVersion
        {
            Model = entity.PartitionKey,
            Version = entity.GetString("Version"),
            Stage = StageNames.Parse(entity.GetString("Stage")),
            Sha256 = entity.GetString("Sha256"),
            Size = entity.GetInt64("Size") ?? entity.GetInt32("Size") ?? 0,
            BlobPath = entity.GetString("BlobPath"),
            Created = DateTimeOffset.Parse(entity.GetString("Created"), CultureInfo.InvariantCulture),
            Updated = DateTimeOffset.Parse(entity.GetString("Updated"), CultureInfo.InvariantCulture),
            Signature = string.IsNullOrEmpty(signature) ? null : LeptonJson.Deserialize<Signature>(signature),
            Evaluation = string.IsNullOrEmpty(evaluation) ? null : JsonNode.Parse(evaluation) as JsonObject,
            InstanceId = NullIfEmpty(entity.GetString("InstanceId")),
            Reason = entity.GetString("Reason") ?? "",
            Sequence = entity.GetInt32("Sequence") ?? 0,
            PolicyOverrides = string.IsNullOrEmpty(overrides) ? [] : JsonNode.Parse(overrides) as JsonObject ?? [],
            LastEvent = string.IsNullOrEmpty(last) ? null : LeptonJson.Deserialize<AuditEvent>(last),
            ETag = entity.ETag.ToString(),
        };
    }

    private static Routes ToRoutes(TableEntity entity) => new()
    {
        Model = entity.PartitionKey,
        Production = NullIfEmpty(entity.GetString("Production")),
        Candidate = NullIfEmpty(entity.GetString("Candidate")),
        CandidateWeightBp = entity.GetInt32("CandidateWeightBp") ?? 0,
        Shadow = NullIfEmpty(entity.GetString("Shadow")),
        ShadowFractionBp = entity.GetInt32("ShadowFractionBp") ?? 0,
        StickyHeader = NullIfEmpty(entity.GetString("StickyHeader")),
        Generation = entity.GetInt64("Generation") ?? entity.GetInt32("Generation") ?? 0,
        LastEvent = entity.GetString("LastEvent") is { Length: > 0 } last ? LeptonJson.Deserialize<AuditEvent>(last) : null,
        ETag = entity.ETag.ToString(),
    };

    private static AuditEvent ToEvent(string model, TableEntity entity)
    {
        var details = entity.GetString("Details");
        return new AuditEvent
        {
            Model = model,
            Version = NullIfEmpty(entity.GetString("Version")),
            Kind = entity.GetString("Kind"),
            Actor = entity.GetString("Actor") ?? "",
            From = NullIfEmpty(entity.GetString("From")),
            To = NullIfEmpty(entity.GetString("To")),
            Reason = entity.GetString("Reason") ?? "",
            At = DateTimeOffset.Parse(entity.GetString("At"), CultureInfo.InvariantCulture),
            Details = string.IsNullOrEmpty(details) ? [] : JsonNode.Parse(details) as JsonObject ?? [],
        };
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static string Short(string sha256) => sha256[..Math.Min(12, sha256.Length)];
}
