using System.Diagnostics;

namespace Lepton.Shared.Lifecycle;

/// <summary>
/// Named crash points for the crash-consistency tests: start the control plane with
/// <c>LEPTON_FAILPOINTS=promote.after-stage-write</c> (a comma-separated list of the names below)
/// and the process kills itself with SIGKILL the moment it reaches that point, leaving storage
/// exactly as a hard crash there would. Restart it and the reconciler
/// (<c>LifecycleStarter.ReconcileAsync</c>) must bring stage, routes and audit trail back into
/// agreement.
/// </summary>
/// <remarks>
/// Compiled into Debug (test) builds only: the Functions and Shared projects define
/// <c>LEPTON_FAILPOINTS</c> for <c>Configuration=Debug</c>, and <see cref="Hit"/> is
/// <see cref="ConditionalAttribute"/>, so a Release build contains no call to it at all. Points in
/// the orchestrator fire only on its first execution, never while it replays its history.
/// </remarks>
public static class Failpoints
{
    /// <summary>The environment variable that arms failpoints (comma-separated names).</summary>
    public const string Variable = "LEPTON_FAILPOINTS";

    /// <summary>During validation: the version is in <c>validating</c>, the model checked, the result not yet recorded.</summary>
    public const string DuringValidation = "validate.during";

    /// <summary>During evaluation: the version is in <c>evaluating</c>, a shard evaluation under way.</summary>
    public const string DuringEvaluation = "evaluate.during";

    /// <summary>Mid-canary between two steps: one step passed, the next weight not yet written.</summary>
    public const string BetweenCanarySteps = "canary.between-steps";

    /// <summary>Inside a promotion, between the stage write (the version is <c>production</c>) and the route write.</summary>
    public const string PromoteAfterStageWrite = "promote.after-stage-write";

    /// <summary>During the bake: promoted, the previous version superseded and kept loaded, the bake's wait under way.</summary>
    public const string DuringBake = "bake.during";

    /// <summary>Inside a promotion, after the route write, before the previous production is marked superseded.</summary>
    public const string PromoteAfterRouteWrite = "promote.after-route-write";

    /// <summary>Inside a rollback, after the stage write (<c>rolled_back</c>), before the candidate leaves the routes.</summary>
    public const string RollbackAfterStageWrite = "rollback.after-stage-write";

    /// <summary>Inside a reinstatement (a rollback during the bake), after the previous version is <c>production</c> again, before the route write.</summary>
    public const string ReinstateAfterStageWrite = "reinstate.after-stage-write";

    /// <summary>Inside a reinstatement, after the route write, before the promoted version is marked <c>rolled_back</c>.</summary>
    public const string ReinstateAfterRouteWrite = "reinstate.after-route-write";

    /// <summary>After a routes row is written, before its audit event is appended.</summary>
    public const string RoutesAfterRowWrite = "routes.after-row-write";

    /// <summary>After a version row's stage is written, before its audit event is appended.</summary>
    public const string TransitionAfterRowWrite = "transition.after-row-write";

    /// <summary>Every failpoint, in the order a rollout meets them.</summary>
    public static IReadOnlyList<string> All { get; } =
    [
        DuringValidation, DuringEvaluation, BetweenCanarySteps, PromoteAfterStageWrite, PromoteAfterRouteWrite, DuringBake,
        RollbackAfterStageWrite, ReinstateAfterStageWrite, ReinstateAfterRouteWrite, RoutesAfterRowWrite, TransitionAfterRowWrite,
    ];

#if LEPTON_FAILPOINTS
    private static readonly Lazy<IReadOnlySet<string>> Armed = new(() => Parse(Environment.GetEnvironmentVariable(Variable)));
#endif

    // Per async flow, so tests running in parallel in one process interrupt only their own calls.
    private static readonly AsyncLocal<string?> Interrupting = new();

    /// <summary>Whether this build has failpoints compiled in (Debug).</summary>
    public static bool CompiledIn =>
#if LEPTON_FAILPOINTS
        true;
#else
        false;
#endif

    /// <summary>Kills the process (SIGKILL, no cleanup) when <paramref name="name"/> is armed; removed from Release builds.</summary>
    [Conditional("LEPTON_FAILPOINTS")]
    public static void Hit(string name)
    {
#if LEPTON_FAILPOINTS
        if (Interrupting.Value == name)
        {
            throw new FailpointReachedException(name);
        }
        if (Armed.Value.Contains(name))
        {
            Console.Error.WriteLine($"lepton: failpoint {name} reached: killing the process");
            Console.Error.Flush();
            using var self = Process.GetCurrentProcess();
            self.Kill();
        }
#endif
    }

    /// <summary>
    /// The in-process mode, for tests: within the returned scope (this async flow only), reaching
    /// <paramref name="name"/> throws <see cref="FailpointReachedException"/> instead of killing the
    /// process, so the writes before the point are made and the ones after it are not, exactly as
    /// a crash there leaves storage. Has no effect in a build without failpoints.
    /// </summary>
    public static IDisposable InterruptAt(string name)
    {
        if (!All.Contains(name))
        {
            throw new ArgumentException($"unknown failpoint {name}; known: {string.Join(", ", All)}", nameof(name));
        }
        var previous = Interrupting.Value;
        Interrupting.Value = name;
        return new Scope(previous);
    }

    private sealed class Scope(string? previous) : IDisposable
    {
        public void Dispose() => Interrupting.Value = previous;
    }

    /// <summary>The armed names in a setting's value; an unknown name is an error naming the known ones, so a typo never silently tests nothing.</summary>
    public static IReadOnlySet<string> Parse(string? setting)
    {
        var names = (setting ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
        var unknown = names.Where(n => !All.Contains(n)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
        {
            throw new ConfigurationException($"{Variable}: unknown failpoint(s) {string.Join(", ", unknown)}; known: {string.Join(", ", All)}");
        }
        return names;
    }
}

/// <summary>A failpoint armed with <see cref="Failpoints.InterruptAt"/> was reached: the operation stopped there, as a crash would stop it.</summary>
public sealed class FailpointReachedException(string name) : Exception($"failpoint {name} reached")
{
    public string Name { get; } = name;
}
