using System.Text.Json.Nodes;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;

namespace Lepton.Shared.Rollout;

/// <summary>One inconsistency the reconciler found and what it did about it.</summary>
public sealed record Repair(string Version, string Found, string Done)
{
    public override string ToString() => $"{Found}: {Done}";
}

/// <summary>A stage change the repair makes.</summary>
public sealed record PlannedTransition(string Version, Stage From, Stage To, string Reason);

/// <summary>
/// What it takes to bring a model's stages and routes back into agreement after a crash (pure):
/// the routes to write (<c>null</c> when they are right), the stage changes, and a sentence per
/// repair. It relies on the write orders of <see cref="RolloutOperations"/>: the decision is the
/// first write, so the newest production-stage version (by its last transition) is the one a
/// promotion or reinstatement was making production, and its audit details say what becomes of
/// the others.
/// </summary>
public sealed record RepairPlan(Routes? Routes, IReadOnlyList<PlannedTransition> Transitions, IReadOnlyList<Repair> Repairs)
{
    public bool IsEmpty => Routes is null && Transitions.Count == 0 && Repairs.Count == 0;

    /// <summary>The repairs <paramref name="versions"/> and <paramref name="routes"/> of one model need.</summary>
    public static RepairPlan For(IReadOnlyList<ModelVersion> versions, Routes routes)
    {
        var byVersion = versions.ToDictionary(v => v.Version, StringComparer.Ordinal);
        var transitions = new List<PlannedTransition>();
        var repairs = new List<Repair>();
        var wanted = routes;
        var production = versions
            .Where(v => v.Stage == Stage.Production)
            .OrderByDescending(v => v.LastEvent?.At ?? v.Updated)
            .ThenByDescending(v => v.SemVer)
            .ToList();
        if (production.Count > 0)
        {
            var winner = production[0];
            var details = winner.LastEvent?.Details ?? [];
            var op = Text(details, RolloutOps.Key);
            foreach (var other in production.Skip(1))
            {
                if (op == RolloutOps.Reinstate && Text(details, "rolls_back") == other.Version)
                {
                    var reason = Text(details, "reason") ?? $"rolled back after promotion; {winner.Version} reinstated";
                    transitions.Add(new PlannedTransition(other.Version, Stage.Production, Stage.RolledBack, reason));
                    repairs.Add(new Repair(
                        other.Version,
                        $"{winner.Version} had been reinstated but {other.Version} was still production (its rollback after promotion was interrupted)",
                        $"{other.Version} marked rolled_back"));
                }
                else
                {
                    transitions.Add(new PlannedTransition(other.Version, Stage.Production, Stage.Superseded, $"superseded by {winner.Version}"));
                    repairs.Add(new Repair(
                        other.Version,
                        $"{other.Version} was still production after {winner.Version} was made production (the promotion was interrupted)",
                        $"{other.Version} marked superseded by {winner.Version}"));
                }
            }
            if (routes.Production != winner.Version)
            {
                wanted = wanted with { Production = winner.Version };
                if (wanted.Candidate == winner.Version)
                {
                    wanted = wanted with { Candidate = null, CandidateWeightBp = 0 };
                }
                if (wanted.Shadow == winner.Version)
                {
                    wanted = wanted with { Shadow = null, ShadowFractionBp = 0 };
                }
                repairs.Add(new Repair(
                    winner.Version,
                    $"{winner.Version} is production but the routes sent production traffic to {routes.Production ?? "no version"} (a crash between the stage write and the route write)",
                    $"routes now send production traffic to {winner.Version}"));
            }
        }
        else if (routes.Production is { } named)
        {
            repairs.Add(new Repair(
                named,
                $"the routes send production traffic to {named}, which is {StageOf(byVersion, named)}, and no version is in stage production",
                "left as is: nothing else can serve; promote a version to replace it"));
        }
        Stage? After(string version) =>
            transitions.LastOrDefault(t => t.Version == version)?.To ?? (byVersion.TryGetValue(version, out var v) ? v.Stage : null);
        if (wanted.Candidate is { } candidate
            && (After(candidate) is not { } stage || !StageMachine.CandidateSlotStages.Contains(stage) || candidate == wanted.Production))
        {
            repairs.Add(new Repair(
                candidate,
                $"the routes still sent {StepLabels.Percent(wanted.CandidateWeightBp)}% of traffic to {candidate}, which is {StageOf(byVersion, candidate, After(candidate))}",
                $"{candidate} taken out of the candidate slot"));
            wanted = wanted with { Candidate = null, CandidateWeightBp = 0 };
        }
        if (wanted.Shadow is { } shadow && (After(shadow) is not { } shadowStage || !StageMachine.ShadowSlotStages.Contains(shadowStage)))
        {
            repairs.Add(new Repair(
                shadow,
                $"the routes still mirrored traffic to {shadow}, which is {StageOf(byVersion, shadow, After(shadow))}",
                $"{shadow} taken out of the shadow slot"));
            wanted = wanted with { Shadow = null, ShadowFractionBp = 0 };
        }
        return new RepairPlan(wanted.SameTrafficAs(routes) ? null : wanted, transitions, repairs);
    }

    private static string? Text(JsonObject details, string key) =>
        details.TryGetPropertyValue(key, out var node) && node is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static string StageOf(Dictionary<string, ModelVersion> versions, string version, Stage? stage = null) =>
        stage is { } known ? $"in stage {StageNames.ToWire(known)}"
        : versions.TryGetValue(version, out var record) ? $"in stage {StageNames.ToWire(record.Stage)}" : "not registered";
}

/// <summary>
/// The reconciler's repair of one model after a crash: re-appends audit events a crash lost
/// between a row write and its log append, then brings stages and routes into agreement
/// (<see cref="RepairPlan"/>) and records every repair in the audit log (kind
/// <see cref="AuditKinds.Repair"/>) under the version it concerns. Run it only while no lifecycle
/// of the model runs (a running one finishes its own writes); running it again finds nothing.
/// </summary>
public sealed class RolloutRepair(ModelRegistry registry, RolloutOperations rollout)
{
    /// <summary>The actor of every repair.</summary>
    public const string Actor = "reconciler";

    public async Task<IReadOnlyList<Repair>> RepairAsync(string model, CancellationToken cancellationToken = default)
    {
        var repairs = new List<Repair>();
        var versions = await registry.ListVersionsAsync(model, cancellationToken);
        foreach (var version in versions)
        {
            if (await registry.RepairVersionEventAsync(model, version.Version, cancellationToken))
            {
                repairs.Add(new Repair(
                    version.Version,
                    $"the audit log lacked {version.Version}'s last event ({version.LastEvent?.From ?? "?"} → {version.LastEvent?.To ?? "?"}: a crash after the row write)",
                    "re-appended it"));
            }
        }
        var routes = await registry.GetRoutesAsync(model, cancellationToken);
        if (await registry.RepairRoutesEventAsync(routes, cancellationToken) && (routes.Candidate ?? routes.Production ?? (versions.Count > 0 ? versions[^1].Version : null)) is { } named)
        {
            repairs.Add(new Repair(named, $"the audit log lacked the route change to generation {routes.Generation} (a crash after the row write)", "re-appended it"));
        }
        var plan = RepairPlan.For(versions, routes);
        if (plan.Routes is { } fixedRoutes)
        {
            var why = string.Join("; ", plan.Repairs.Where(r => r.Done.Contains("routes", StringComparison.Ordinal) || r.Done.Contains("slot", StringComparison.Ordinal)).Select(r => r.Found));
            await registry.SetRoutesAsync(fixedRoutes, Actor, $"repair: {why}", new JsonObject { ["repair"] = true }, cancellationToken);
        }
        foreach (var transition in plan.Transitions)
        {
            await rollout.TransitionAsync(
                model, transition.Version, transition.To, transition.From, $"{transition.Reason} (repaired after an interruption)", Actor,
                new JsonObject { ["repair"] = true }, cancellationToken);
        }
        repairs.AddRange(plan.Repairs);
        foreach (var repair in repairs)
        {
            if (versions.Any(v => v.Version == repair.Version))
            {
                await registry.AppendRepairAsync(
                    model, repair.Version, Actor, repair.ToString(), new JsonObject { ["found"] = repair.Found, ["done"] = repair.Done }, cancellationToken);
            }
        }
        return repairs;
    }
}
