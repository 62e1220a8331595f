using System.Text.Json.Nodes;
using Lepton.Shared.Lifecycle;

namespace Lepton.Functions.Lifecycle;

/// <summary>What starts one lifecycle: the upload (model, version, content hash), the run's policy overrides and who started it.</summary>
public sealed record LifecycleInput(string Model, string Version, string Sha256, JsonObject Overrides, string Actor = LifecycleInput.DefaultActor)
{
    public const string DefaultActor = "lifecycle";
}

/// <summary>How a lifecycle ended: <c>production</c>, <c>rejected</c>, <c>rolled_back</c>, <c>failed</c>, or the stage it found the version in.</summary>
public sealed record LifecycleOutcome(string Outcome, Stage Stage, string Reason);
