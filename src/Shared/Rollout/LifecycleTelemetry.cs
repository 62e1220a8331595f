using System.Diagnostics;

namespace Lepton.Shared.Rollout;

/// <summary>
/// The trace source of the lifecycle: every stage transition is a span named
/// <see cref="TransitionSpan"/> with the model, version and stages as attributes. An app exports
/// it by adding <see cref="SourceName"/> to its OpenTelemetry tracer provider.
/// </summary>
public static class LifecycleTelemetry
{
    public const string SourceName = "Lepton.Lifecycle";

    public const string TransitionSpan = "lepton.stage_transition";

    public const string ModelTag = "lepton.model";

    public const string VersionTag = "lepton.version";

    public const string FromStageTag = "lepton.from_stage";

    public const string ToStageTag = "lepton.to_stage";

    public const string ReasonTag = "lepton.reason";

    public static readonly ActivitySource Source = new(SourceName);
}
