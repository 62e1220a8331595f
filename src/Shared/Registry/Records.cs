using System.Text.Json.Nodes;
using Lepton.Shared.Lifecycle;

namespace Lepton.Shared.Registry;

/// <summary>One input or output of a model: name, ONNX element type name (e.g. <c>float</c>), shape (<c>null</c> = symbolic).</summary>
public sealed record TensorSpec(string Name, string Dtype, IReadOnlyList<long?> Shape)
{
    public bool Equals(TensorSpec? other) =>
        other is not null && Name == other.Name && Dtype == other.Dtype && Shape.SequenceEqual(other.Shape);

    public override int GetHashCode() => HashCode.Combine(Name, Dtype, Shape.Count);
}

/// <summary>A model's inputs and outputs.</summary>
public sealed record Signature(IReadOnlyList<TensorSpec> Inputs, IReadOnlyList<TensorSpec> Outputs)
{
    public bool Equals(Signature? other) =>
        other is not null && Inputs.SequenceEqual(other.Inputs) && Outputs.SequenceEqual(other.Outputs);

    public override int GetHashCode() => HashCode.Combine(Inputs.Count, Outputs.Count);
}

/// <summary>A registered version of a model and where it stands in its lifecycle.</summary>
public sealed record ModelVersion
{
    public required string Model { get; init; }

    public required string Version { get; init; }

    public required Stage Stage { get; init; }

    public required string Sha256 { get; init; }

    public required long Size { get; init; }

    public required string BlobPath { get; init; }

    public required DateTimeOffset Created { get; init; }

    public required DateTimeOffset Updated { get; init; }

    public Signature? Signature { get; init; }

    /// <summary>The evaluation summary (metrics of candidate and production, the gate's verdict).</summary>
    public JsonObject? Evaluation { get; init; }

    public string? InstanceId { get; init; }

    public string Reason { get; init; } = "";

    /// <summary>Number of transitions so far; keys this version's audit events.</summary>
    public int Sequence { get; init; }

    /// <summary>
    /// The policy overrides its lifecycle was started with (an HTTP start's body), kept so a
    /// resumed run uses the policy it was given.
    /// </summary>
    public JsonObject PolicyOverrides { get; init; } = [];

    /// <summary>
    /// The version's last audit event as stored on its row (what its last transition did and why,
    /// with the operation's intent in <see cref="AuditEvent.Details"/>): the reconciler reads it to
    /// finish an operation a crash interrupted.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public AuditEvent? LastEvent { get; init; }

    /// <summary>The row's ETag, for conditional writes; not part of the version's identity.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string ETag { get; init; } = "";

    [System.Text.Json.Serialization.JsonIgnore]
    public SemVer SemVer => SemVer.Parse(Version);
}

/// <summary>How a model's traffic is split (DESIGN.md §2 <c>routes</c>); weights in basis points.</summary>
public sealed record Routes
{
    public required string Model { get; init; }

    public string? Production { get; init; }

    public string? Candidate { get; init; }

    public int CandidateWeightBp { get; init; }

    public string? Shadow { get; init; }

    public int ShadowFractionBp { get; init; }

    /// <summary>Request header whose value is the sticky key (e.g. <c>x-user-id</c>).</summary>
    public string? StickyHeader { get; init; }

    /// <summary>Incremented by every write; workers compare it to skip unchanged routes.</summary>
    public long Generation { get; init; }

    [System.Text.Json.Serialization.JsonIgnore]
    public string ETag { get; init; } = "";

    /// <summary>The routes' last audit event as stored on the row (re-appended to the log if a crash lost it).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public AuditEvent? LastEvent { get; init; }

    /// <summary>Whether the two route tables send traffic the same way (generation and ETag aside).</summary>
    public bool SameTrafficAs(Routes other) =>
        Model == other.Model && Production == other.Production && Candidate == other.Candidate
        && CandidateWeightBp == other.CandidateWeightBp && Shadow == other.Shadow
        && ShadowFractionBp == other.ShadowFractionBp && StickyHeader == other.StickyHeader;

    /// <summary>Versions that receive (or mirror) requests under these routes, production first.</summary>
    public IReadOnlyList<string> VersionsWithTraffic()
    {
        var versions = new List<string>();
        if (Production is not null)
        {
            versions.Add(Production);
        }
        if (Candidate is not null && CandidateWeightBp > 0 && !versions.Contains(Candidate))
        {
            versions.Add(Candidate);
        }
        if (Shadow is not null && ShadowFractionBp > 0 && !versions.Contains(Shadow))
        {
            versions.Add(Shadow);
        }
        return versions;
    }

    /// <summary>Every version the routes name (weights aside): what a worker keeps loaded.</summary>
    public IReadOnlyList<string> NamedVersions() =>
        new[] { Production, Candidate, Shadow }.OfType<string>().Distinct(StringComparer.Ordinal).ToList();
}

/// <summary>The kinds of audit event.</summary>
public static class AuditKinds
{
    public const string Registered = "registered";
    public const string Transition = "transition";
    public const string Routes = "routes";
    public const string Repair = "repair";
}

/// <summary>
/// The one decisive operator command (promote, rollback, abort) accepted for a version in
/// <paramref name="Stage"/>: racing commands are decided here, before any reaches the lifecycle.
/// </summary>
public sealed record CommandClaim(OperatorCommand Command, Stage Stage, DateTimeOffset At);

/// <summary>The operations whose intent a stage change records in its audit details, so the reconciler can finish them.</summary>
public static class RolloutOps
{
    public const string Key = "op";
    public const string Promote = "promote";
    public const string Reinstate = "reinstate";
    public const string Rollback = "rollback";
}

/// <summary>One row of the append-only audit log: a stage transition or a traffic change.</summary>
public sealed record AuditEvent
{
    public required string Model { get; init; }

    public string? Version { get; init; }

    /// <summary>One of <see cref="AuditKinds"/>.</summary>
    public required string Kind { get; init; }

    /// <summary>Who acted: <c>lifecycle</c>, or the authenticated operator.</summary>
    public required string Actor { get; init; }

    public string? From { get; init; }

    public string? To { get; init; }

    public string Reason { get; init; } = "";

    public required DateTimeOffset At { get; init; }

    public JsonObject Details { get; init; } = [];
}
