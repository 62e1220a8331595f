using System.Diagnostics;
using System.Text.Json.Nodes;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;

namespace Lepton.Shared.Rollout;

/// <summary>
/// The operations of a rollout that combine several registry writes: stage moves with traffic
/// changes. Each is idempotent, so a retried activity converges: transitions pass the stage they
/// expect to leave (a repeat of a move already made returns the stored record), routes are
/// rewritten from the current state and written only when they change, and "the previous
/// production" is found from stages rather than from routes, which a first attempt may already
/// have changed. Every stage change is a trace span (<see cref="LifecycleTelemetry"/>).
/// </summary>
/// <remarks>
/// <para>Write orders. The decision is always written first, as a stage change whose audit
/// details name the operation (<see cref="RolloutOps"/>); the routes follow the stages; the
/// versions that lose their place are moved last. A crash between any two writes therefore leaves
/// a state <see cref="RolloutRepair"/> can finish from storage alone:</para>
/// <list type="bullet">
/// <item><b>promote V</b>: V → <c>production</c> (details: <c>op=promote</c>, the versions it
/// supersedes) → routes: production V, no candidate, no shadow → each previous production →
/// <c>superseded</c>.</item>
/// <item><b>rollback V</b> (shadow, canary): V → <c>rolled_back</c> (before any traffic:
/// <c>rejected</c>) → routes: V out of the candidate and shadow slots. Workers stop routing to a
/// rolled-back version as soon as they see either write.</item>
/// <item><b>reinstate P after promoting V</b> (a rollback during the bake): P → <c>production</c>
/// (details: <c>op=reinstate</c>, V) → routes: production P → V → <c>rolled_back</c>.</item>
/// <item><b>set traffic</b>: one routes write (the candidate's stage was written before it).</item>
/// </list>
/// </remarks>
public sealed class RolloutOperations(ModelRegistry registry)
{
    /// <summary>The actor of the lifecycle's own moves.</summary>
    public const string LifecycleActor = "lifecycle";

    /// <summary>One stage change, traced.</summary>
    public async Task<ModelVersion> TransitionAsync(
        string model,
        string version,
        Stage to,
        Stage? expectedFrom,
        string reason,
        string actor,
        JsonObject? details = null,
        CancellationToken cancellationToken = default)
    {
        using var span = LifecycleTelemetry.Source.StartActivity(LifecycleTelemetry.TransitionSpan, ActivityKind.Internal);
        span?.SetTag(LifecycleTelemetry.ModelTag, model);
        span?.SetTag(LifecycleTelemetry.VersionTag, version);
        span?.SetTag(LifecycleTelemetry.FromStageTag, expectedFrom is { } from ? StageNames.ToWire(from) : "");
        span?.SetTag(LifecycleTelemetry.ToStageTag, StageNames.ToWire(to));
        span?.SetTag(LifecycleTelemetry.ReasonTag, reason);
        try
        {
            return await registry.TransitionAsync(model, version, to, reason, actor, expectedFrom, details, cancellationToken);
        }
        catch (Exception error)
        {
            span?.SetStatus(ActivityStatusCode.Error, error.Message);
            throw;
        }
    }

    /// <summary>
    /// Points the candidate and shadow slots on behalf of version <paramref name="owner"/>.
    /// Production is changed only by promote and reinstate. A slot held by another version is
    /// never taken over: two lifecycles that passed the slot check at the same moment would
    /// otherwise silently steal each other's traffic; the loser gets a <see cref="ConflictException"/>
    /// (and rolls back), and the ETag-conditional write makes the check-and-claim atomic.
    /// </summary>
    public Task<Routes> SetTrafficAsync(
        string model,
        string owner,
        string? candidate,
        int candidateWeightBp,
        string? shadow,
        int shadowFractionBp,
        string reason,
        string actor,
        CancellationToken cancellationToken = default) =>
        SetTrafficAsync(model, owner, candidate, candidateWeightBp, shadow, shadowFractionBp, reason, actor, newGeneration: false, cancellationToken);

    /// <summary>Like the overload without <paramref name="newGeneration"/>; with it, the routes are written under a new generation even when the traffic is unchanged.</summary>
    public async Task<Routes> SetTrafficAsync(
        string model,
        string owner,
        string? candidate,
        int candidateWeightBp,
        string? shadow,
        int shadowFractionBp,
        string reason,
        string actor,
        bool newGeneration,
        CancellationToken cancellationToken = default)
    {
        var current = await registry.GetRoutesAsync(model, cancellationToken);
        foreach (var (slot, held) in new[] { ("candidate", current.Candidate), ("shadow", current.Shadow) })
        {
            if (held is not null && held != owner)
            {
                throw new ConflictException(
                    $"the {slot} slot of '{model}' is held by {held}; only one version may be in shadow or canary at a time: wait for {held} to finish");
            }
        }
        var wanted = current with
        {
            Candidate = candidate,
            CandidateWeightBp = candidate is null ? 0 : candidateWeightBp,
            Shadow = shadow,
            ShadowFractionBp = shadow is null ? 0 : shadowFractionBp,
        };
        if (wanted.SameTrafficAs(current) && !newGeneration)
        {
            return current; // a retried activity: nothing to change, no new generation
        }
        // A new generation with the same traffic restarts a step's evidence (its rows so far showed
        // that routing did not do what it was told).
        return await registry.SetRoutesAsync(wanted, actor, reason, cancellationToken);
    }

    /// <summary>
    /// Why <paramref name="version"/> may not be rolled out over <paramref name="production"/>, or
    /// <c>null</c>: a rollout only moves forward, so a version below production (an old upload, or
    /// one whose blob event arrived after a newer version's) is refused rather than canaried as a
    /// downgrade; going back is a rollback or reinstatement.
    /// </summary>
    public static string? Downgrade(string version, string? production) =>
        production is not null && SemVer.Parse(version) < SemVer.Parse(production)
            ? $"{version} is older than the production version {production}: a rollout only moves forward; publish a version above {production}"
            : null;

    /// <summary>The intent a promotion records on its first write (the version's stage change), which the reconciler finishes from.</summary>
    public static JsonObject PromoteIntent(IEnumerable<string> supersedes) => new()
    {
        [RolloutOps.Key] = RolloutOps.Promote,
        ["supersedes"] = new JsonArray([.. supersedes.Select(p => (JsonNode)p)]),
    };

    /// <summary>The intent a reinstatement records on its first write (the previous version back to production).</summary>
    public static JsonObject ReinstateIntent(string rollsBack, string reason) => new()
    {
        [RolloutOps.Key] = RolloutOps.Reinstate,
        ["rolls_back"] = rollsBack,
        ["reason"] = reason,
    };

    /// <summary>Makes <paramref name="version"/> production: its stage, all traffic, the previous production superseded (in that order).</summary>
    /// <returns>The previous production version, if there was one.</returns>
    public async Task<string?> PromoteAsync(
        string model, string version, Stage expectedFrom, string reason, string actor, CancellationToken cancellationToken = default)
    {
        var previous = await ProductionVersionsAsync(model, besides: version, cancellationToken);
        await TransitionAsync(model, version, Stage.Production, expectedFrom, reason, actor, PromoteIntent(previous), cancellationToken);
        Failpoints.Hit(Failpoints.PromoteAfterStageWrite);
        // A retry after the stage write finds the same previous versions: they are still production.
        previous = await ProductionVersionsAsync(model, besides: version, cancellationToken);
        await ServeOnlyAsync(model, version, actor, $"promote {version}: {reason}", cancellationToken);
        Failpoints.Hit(Failpoints.PromoteAfterRouteWrite);
        foreach (var old in previous)
        {
            await TransitionAsync(model, old, Stage.Superseded, Stage.Production, $"superseded by {version}", actor, cancellationToken: cancellationToken);
        }
        return previous.FirstOrDefault();
    }

    /// <summary>
    /// Marks <paramref name="version"/> rolled back (before it took traffic: rejected), then takes
    /// all traffic off it (candidate and shadow slots). Idempotent, and safe in any stage: a
    /// version already stopped only has its traffic checked.
    /// </summary>
    public async Task<ModelVersion> RollbackAsync(
        string model, string version, string reason, string actor, CancellationToken cancellationToken = default)
    {
        var record = await registry.GetVersionAsync(model, version, cancellationToken);
        if (!StageMachine.IsTerminal(record.Stage))
        {
            var to = record.Stage is Stage.Registered or Stage.Validating or Stage.Evaluating ? Stage.Rejected : Stage.RolledBack;
            record = await TransitionAsync(
                model, version, to, record.Stage, reason, actor, new JsonObject { [RolloutOps.Key] = RolloutOps.Rollback }, cancellationToken);
        }
        Failpoints.Hit(Failpoints.RollbackAfterStageWrite);
        await RemoveFromRoutesAsync(model, version, actor, $"rollback {version}: {reason}", cancellationToken);
        return record;
    }

    /// <summary>
    /// Undoes a promotion: <paramref name="previous"/> back to production, the routes to it, then
    /// <paramref name="version"/> rolled back. In that order: the production slot only takes a
    /// version in stage production, and traffic must never point at nothing.
    /// </summary>
    public async Task ReinstateAsync(
        string model, string version, string previous, string reason, string actor, CancellationToken cancellationToken = default)
    {
        await TransitionAsync(
            model, previous, Stage.Production, Stage.Superseded, $"reinstated: rollback of {version}: {reason}", actor, ReinstateIntent(version, reason), cancellationToken);
        Failpoints.Hit(Failpoints.ReinstateAfterStageWrite);
        await ServeOnlyAsync(model, previous, actor, $"rollback {version}: {reason}", cancellationToken);
        Failpoints.Hit(Failpoints.ReinstateAfterRouteWrite);
        var record = await registry.GetVersionAsync(model, version, cancellationToken);
        if (record.Stage != Stage.RolledBack)
        {
            await TransitionAsync(model, version, Stage.RolledBack, Stage.Production, reason, actor, cancellationToken: cancellationToken);
        }
    }

    /// <summary>Another version of <paramref name="model"/> now in shadow or canary (only one may hold those slots).</summary>
    public async Task<string?> VersionInRolloutAsync(string model, string version, CancellationToken cancellationToken = default) =>
        (await registry.ListVersionsAsync(model, cancellationToken))
            .FirstOrDefault(v => v.Version != version && v.Stage is Stage.Shadow or Stage.Canary)?.Version;

    /// <summary>The version of <paramref name="model"/> in production other than <paramref name="besides"/>, if any.</summary>
    public async Task<string?> ProductionVersionAsync(string model, string besides, CancellationToken cancellationToken = default) =>
        (await ProductionVersionsAsync(model, besides, cancellationToken)).FirstOrDefault();

    /// <summary>Superseded versions no route references any more (the workers may unload them).</summary>
    public async Task<IReadOnlyList<string>> RetireSupersededAsync(string model, CancellationToken cancellationToken = default)
    {
        var referenced = (await registry.GetRoutesAsync(model, cancellationToken)).VersionsWithTraffic().ToHashSet(StringComparer.Ordinal);
        return (await registry.ListVersionsAsync(model, cancellationToken))
            .Where(v => v.Stage == Stage.Superseded && !referenced.Contains(v.Version))
            .Select(v => v.Version)
            .ToList();
    }

    private async Task<List<string>> ProductionVersionsAsync(string model, string besides, CancellationToken cancellationToken) =>
        (await registry.ListVersionsAsync(model, cancellationToken))
            .Where(v => v.Stage == Stage.Production && v.Version != besides)
            .Select(v => v.Version)
            .ToList();

    /// <summary><paramref name="version"/> out of the candidate and shadow slots; written only if it changes.</summary>
    private async Task RemoveFromRoutesAsync(string model, string version, string actor, string reason, CancellationToken cancellationToken)
    {
        var current = await registry.GetRoutesAsync(model, cancellationToken);
        var wanted = current;
        if (current.Candidate == version)
        {
            wanted = wanted with { Candidate = null, CandidateWeightBp = 0 };
        }
        if (current.Shadow == version)
        {
            wanted = wanted with { Shadow = null, ShadowFractionBp = 0 };
        }
        if (!wanted.SameTrafficAs(current))
        {
            await registry.SetRoutesAsync(wanted, actor, reason, cancellationToken);
        }
    }

    /// <summary>All traffic to <paramref name="version"/>: no candidate, no shadow; written only if it changes.</summary>
    private async Task ServeOnlyAsync(string model, string version, string actor, string reason, CancellationToken cancellationToken)
    {
        var current = await registry.GetRoutesAsync(model, cancellationToken);
        var wanted = current with { Production = version, Candidate = null, CandidateWeightBp = 0, Shadow = null, ShadowFractionBp = 0 };
        if (!wanted.SameTrafficAs(current))
        {
            await registry.SetRoutesAsync(wanted, actor, reason, cancellationToken);
        }
    }
}
