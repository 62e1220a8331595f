using System.Globalization;
using System.Text.Json;
using Lepton.Functions.Lifecycle.Activities;
using Lepton.Shared;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Metrics;
using Lepton.Shared.Models;
using Lepton.Shared.Policies;
using Microsoft.DurableTask;

namespace Lepton.Functions.Lifecycle;

/// <summary>
/// One run of the lifecycle: validate → evaluate (fan-out over shards, fan-in) → [approval] →
/// wait for the rollout slot → [shadow → approval] → warm-up → canary, blue-green or A/B split →
/// promote → bake → retire. Each phase is a short method that returns the run's outcome when it
/// ends the run and <c>null</c> when the run goes on. Every wait goes through
/// <see cref="WaitUntilAsync"/>: a durable timer to a deadline taken from the orchestration clock,
/// raced against the one operator event, whose effect in each phase is the table
/// <see cref="OperatorCommands"/>. The body is deterministic: time comes from the context, all
/// I/O happens in activities.
/// </summary>
/// <remarks>
/// A version stopped before it took any traffic (waiting in <c>evaluating</c> for approval or for
/// the slot) ends <c>rejected</c>; from shadow or canary it ends <c>rolled_back</c> (DESIGN §3).
/// Two versions of one model never hold the shadow/canary slots together: a second one waits in
/// <c>evaluating</c> for at most <c>slot_wait_timeout_s</c>, so an upload burst drains in order
/// and a stuck rollout cannot hold the next one forever. A command sent while the run works (an
/// activity, not a wait) is buffered and read at the next wait.
/// <para>Evidence: each traffic step writes its routes under a new generation, starts its clock
/// once every live replica reports that generation (at most <c>heartbeat_max_age_s</c> later), and
/// is judged only on the rollups recorded under it, with a look that finds a live replica's
/// rollups missing or late never passing (<see cref="EvidenceCompleteness"/>).</para>
/// <para>Faults: storage that stays unreachable after an activity's retries ends the run in a
/// defined stage, never half-written: before traffic <c>rejected</c>, with traffic
/// <c>rolled_back</c> (candidate at 0 %), each with the reason "storage unavailable …"; after a
/// promotion the promotion stands. Those ending writes (promote, rollback, reinstate, reject) are
/// retried with backoff on the orchestration clock until storage answers (up to
/// <see cref="EndingRetryTimeout"/>).</para>
/// </remarks>
internal sealed class LifecycleRun
{
    private static readonly Policy DefaultPolicy = new();

    /// <summary>How long an ending write (promote, rollback, reinstate, reject) is retried while storage is unreachable.</summary>
    public static readonly TimeSpan EndingRetryTimeout = TimeSpan.FromHours(1);

    private readonly TaskOrchestrationContext _context;
    private readonly LifecycleInput _input;
    private readonly List<StepRecord> _steps = [];
    private TaskOptions _retry;
    private Policy _policy = DefaultPolicy;
    private RolloutPlan _plan = RolloutPlan.For(DefaultPolicy, Bump.Patch);
    private string? _production;
    private Stage _stage = Stage.Registered;
    private LifecyclePhase _phase = LifecyclePhase.Registering;
    private WindowKind? _trafficPhase;
    private LifecycleStatus _status;
    private Task<JsonElement>? _operator;
    private OperatorCommand? _promoteWhenSlotFree;
    private (string? Name, ModelTask Task) _dataset;
    private bool _registered;
    private string? _promotion;

    // The generation of the routes this run last wrote, and those of its canary steps so far.
    private long _generation;
    private readonly List<long> _stepGenerations = [];
    private TrafficOff? _trafficOff;

    public LifecycleRun(TaskOrchestrationContext context, LifecycleInput input)
    {
        _context = context;
        _input = input;
        _retry = RetryFor(BootPolicy(input));
        _status = new LifecycleStatus { Model = input.Model, Version = input.Version };
    }

    public async Task<LifecycleOutcome> RunAsync()
    {
        Publish(_status);
        LifecycleOutcome outcome;
        try
        {
            outcome = await RegisterAsync()
                ?? await ValidateAsync()
                ?? await PreTrafficAsync()
                ?? await ShadowAsync()
                ?? await TrafficAsync();
        }
        catch (TaskFailedException error) when (ActivityFaults.IsStorageFault(error.FailureDetails))
        {
            outcome = await EndOnStorageFaultAsync(error);
        }
        _phase = LifecyclePhase.Ended;
        Publish(_status with { WaitingFor = null, Outcome = outcome.Outcome, Reason = outcome.Reason });
        return outcome;
    }

    // -- phases -----------------------------------------------------------------------------------

    private async Task<LifecycleOutcome?> RegisterAsync()
    {
        var registered = await CallAsync<RegisterResult>(
            LifecycleNames.Register, new RegisterInput(_input.Model, _input.Version, _input.Sha256, _context.InstanceId, _input.Actor));
        if (registered.Stage is not { } stage)
        {
            return new LifecycleOutcome("refused", _stage, registered.Refusal ?? "the upload could not be registered");
        }
        _stage = stage;
        _registered = true;
        if (!StageMachine.ActiveStages.Contains(_stage))
        {
            return new LifecycleOutcome(StageNames.ToWire(_stage), _stage, $"nothing to do: already {StageNames.ToWire(_stage)}");
        }
        return _stage == Stage.Registered ? await MoveAsync(Stage.Validating, "validation started") : null;
    }

    private async Task<LifecycleOutcome?> ValidateAsync()
    {
        _phase = LifecyclePhase.Validating;
        string? rejection;
        try
        {
            var validated = await CallAsync<ValidateResult>(
                LifecycleNames.Validate, new ValidateInput(_input.Model, _input.Version, _input.Overrides, _input.Actor));
            rejection = validated.Rejection;
            if (rejection is null)
            {
                _policy = validated.Policy!;
                _plan = validated.Plan!;
                _production = validated.Production;
                _retry = RetryFor(_policy);
                _dataset = (validated.Dataset, validated.Task);
                Publish(_status with { Plan = _plan });
            }
        }
        catch (TaskFailedException error) when (!ActivityFaults.IsStorageFault(error.FailureDetails))
        {
            rejection = FailureMessage(error);
        }
        if (rejection is not null)
        {
            var reason = $"validation failed: {rejection}";
            // A resumed run found the version past validation: it ends, but nothing is undone.
            return _stage == Stage.Validating ? await RejectAsync(reason) : new LifecycleOutcome("failed", _stage, reason);
        }
        return _stage == Stage.Validating ? await MoveAsync(Stage.Evaluating, "validation passed") : null;
    }

    /// <summary>Evaluation, the promotion of a first version, an approval awaited before the slot, the slot.</summary>
    private async Task<LifecycleOutcome?> PreTrafficAsync()
    {
        if (_stage != Stage.Evaluating)
        {
            return null;
        }
        _phase = LifecyclePhase.Evaluating;
        if (await EvaluateAsync() is { } rejected)
        {
            return rejected;
        }
        if (_plan.DirectPromotion)
        {
            return await PromoteAsync("first version of the model: promoted after evaluation", _input.Actor);
        }
        if (_plan.Approval && !_plan.Shadow)
        {
            // Without a shadow phase the approval is awaited before the slot is claimed: a wait
            // of hours must not hold the model's only rollout slot.
            if (await AwaitApprovalAsync(LifecyclePhase.AwaitingApproval) is { } ended)
            {
                return ended;
            }
        }
        if (await WaitForSlotAsync() is { } refused)
        {
            return refused;
        }
        // Versions queue for the slot in the order their uploads' events arrived: one that waited
        // while a newer version was promoted is not rolled out over it.
        if (Shared.Rollout.RolloutOperations.Downgrade(_input.Version, _production) is { } downgrade)
        {
            return await RejectAsync($"waited for the rollout slot while {_production} was promoted: {downgrade}");
        }
        if (_promoteWhenSlotFree is { } promote)
        {
            return await PromoteAsync($"promoted by operator {promote.Actor}: {promote.ReasonOrDefault}", promote.Actor);
        }
        return null;
    }

    private async Task<LifecycleOutcome?> EvaluateAsync()
    {
        if (_dataset.Name is not { } dataset)
        {
            Publish(_status with { Reason = "no dataset in lepton.json: offline evaluation skipped" });
            return null;
        }
        var shards = _policy.Evaluation.Shards;
        var versions = new List<string> { _input.Version };
        if (_plan.CompareToProduction && _production is not null)
        {
            versions.Add(_production);
        }
        var tasks = versions
            .SelectMany(version => Enumerable.Range(0, shards).Select(shard => CallAsync<EvaluateShardResult>(
                LifecycleNames.EvaluateShard, new EvaluateShardInput(_input.Model, version, dataset, _dataset.Task, shard, shards))))
            .ToList();
        Publish(_status with { Reason = $"evaluating on {shards} shard(s)" });
        EvaluateShardResult[] results;
        try
        {
            results = await Task.WhenAll(tasks);
        }
        catch (TaskFailedException error) when (!ActivityFaults.IsStorageFault(error.FailureDetails))
        {
            return await RejectAsync($"evaluation failed: {FailureMessage(error)}");
        }
        if (results.FirstOrDefault(r => r.Rejection is not null) is { } refused)
        {
            return await RejectAsync($"evaluation failed: {refused.Rejection}");
        }
        var compared = await CallAsync<CompareResult>(LifecycleNames.Compare, new CompareInput(
            _input.Model,
            _input.Version,
            _policy,
            results[..shards].Select(r => r.Result!).ToList(),
            results[shards..].Select(r => r.Result!).ToList(),
            versions.Count > 1 ? _production : null));
        if (!compared.Passed)
        {
            return await RejectAsync($"evaluation gate failed: {compared.Reason}");
        }
        var quality = compared.Candidate.Accuracy is { } accuracy
            ? $"accuracy {accuracy.ToString("0.####", CultureInfo.InvariantCulture)}"
            : $"mse {(compared.Candidate.Mse ?? 0).ToString("G6", CultureInfo.InvariantCulture)}";
        Publish(_status with { Reason = $"evaluation passed ({quality})" });
        return null;
    }

    private async Task<LifecycleOutcome?> WaitForSlotAsync()
    {
        _phase = LifecyclePhase.WaitingForSlot;
        var started = _context.CurrentUtcDateTime;
        var timeout = TimeSpan.FromSeconds(_policy.SlotWaitTimeoutS);
        while (true)
        {
            var slot = await CallAsync<SlotResult>(LifecycleNames.CheckSlot, new SlotInput(_input.Model, _input.Version));
            _production = slot.Production;
            if (slot.Other is not { } other)
            {
                Publish(_status with { WaitingFor = null });
                return null;
            }
            if (_context.CurrentUtcDateTime - started >= timeout)
            {
                return await RejectAsync(
                    $"waited {Seconds(_policy.SlotWaitTimeoutS)}s for {other} to finish its rollout; only one version of a model may be in "
                    + "shadow or canary at a time. Start the lifecycle again once it has finished");
            }
            var wake = Earliest(_context.CurrentUtcDateTime.AddSeconds(_policy.SlotPollS), started + timeout);
            if (await WaitUntilAsync(wake, $"waiting for {other} to finish") is { } command
                && await ApplyAsync(command, $"while waiting for {other} to finish") is { Ended: { } ended })
            {
                return ended;
            }
        }
    }

    private async Task<LifecycleOutcome?> ShadowAsync()
    {
        if (_plan.Shadow && _stage == Stage.Evaluating && await MoveAsync(Stage.Shadow, "shadow started") is { } failed)
        {
            return failed;
        }
        if (_stage != Stage.Shadow)
        {
            return null;
        }
        _trafficPhase = WindowKind.Shadow;
        // Named in the routes at 0 % first: replicas load it, and it gets no copies until warm.
        var outcome = await RouteAsync(new StepRoutes("pre-warm", Shadow: _input.Version)) ?? await WarmUpAsync();
        if (outcome is not null)
        {
            return outcome;
        }
        _phase = LifecyclePhase.Shadow;
        Publish(_status with { WeightBp = 0, ShadowFractionBp = _policy.ShadowFractionBp });
        outcome = await StepAsync(
            WindowKind.Shadow, 0, _policy.ShadowDurationS, finalStep: true,
            new StepRoutes("shadow traffic", Shadow: _input.Version, ShadowFractionBp: _policy.ShadowFractionBp), baselineFor: null);
        if (outcome is not null)
        {
            return outcome;
        }
        await ReportAsync("passed", "shadow passed");
        if (_plan.Strategy == Strategy.ShadowOnly)
        {
            return await AwaitDecisionAsync("shadow_only run finished");
        }
        return _plan.Approval ? await AwaitApprovalAsync(LifecyclePhase.AwaitingShadowApproval) : null;
    }

    /// <summary>Canary steps, the blue-green switch or the A/B split; always ends the run.</summary>
    private async Task<LifecycleOutcome> TrafficAsync()
    {
        var strategy = JsonNamingPolicy.SnakeCaseLower.ConvertName(_plan.Strategy.ToString());
        if (_stage != Stage.Canary && await MoveAsync(Stage.Canary, $"{strategy} started") is { } failed)
        {
            return failed;
        }
        _trafficPhase = WindowKind.Canary;
        // From here until the first step production serves all traffic: a baseline for 100 %.
        var warmingFrom = UnixNow();
        // Named in the routes at 0 % first: replicas load it, and it gets traffic only when warm.
        if ((await RouteAsync(new StepRoutes("pre-warm", Candidate: _input.Version)) ?? await WarmUpAsync()) is { } notWarm)
        {
            return notWarm;
        }
        var (weights, window) = _plan.Strategy switch
        {
            Strategy.BlueGreen => ((IReadOnlyList<int>)[Policy.BasisPoints], _policy.BakeS),
            Strategy.AbTest => ([_policy.AbSplitBp], _policy.AbDurationS),
            _ => (_policy.StepsBp, _policy.WindowS),
        };
        _phase = LifecyclePhase.Canary;
        long? firstStart = null;
        for (var index = 0; index < weights.Count; index++)
        {
            var weight = weights[index];
            if (index > 0 && !_context.IsReplaying)
            {
                Failpoints.Hit(Failpoints.BetweenCanarySteps);
            }
            Publish(_status with { Step = index + 1, Steps = weights.Count, WeightBp = weight });
            var earlierBp = weights.Take(index).ToList();
            var earlierGenerations = _stepGenerations.ToList();
            // At 100 % production gets no routed traffic: judged against its traffic of the earlier
            // steps (their generations exactly), or with none, before the switch (older generations).
            BaselineRange? Baseline(long generation, long begins)
            {
                firstStart ??= begins;
                if (weight != Policy.BasisPoints)
                {
                    return null;
                }
                var range = BaselineRange.For(firstStart.Value, begins, earlierBp, window, warmingFrom);
                return range with
                {
                    Generations = earlierGenerations.Count > 0 ? GenerationSelection.Of(earlierGenerations) : GenerationSelection.Before(generation),
                };
            }
            var final = index == weights.Count - 1 && _plan.Strategy != Strategy.AbTest;
            var routes = new StepRoutes($"{strategy} step {index + 1}/{weights.Count}", Candidate: _input.Version, CandidateWeightBp: weight);
            if (await StepAsync(WindowKind.Canary, weight, window, final, routes, Baseline) is { } ended)
            {
                return ended;
            }
        }
        if (_plan.Strategy == Strategy.AbTest)
        {
            await ReportAsync("passed", "A/B split finished");
            return await AwaitDecisionAsync("A/B test finished");
        }
        return await PromoteAsync($"{strategy} passed all {weights.Count} step(s)", _input.Actor);
    }

    /// <summary>The routes a step writes for this version.</summary>
    private sealed record StepRoutes(string Why, string? Candidate = null, int CandidateWeightBp = 0, string? Shadow = null, int ShadowFractionBp = 0);

    /// <summary>
    /// One weight: its routes under a new generation, its clock from when every live replica
    /// applies them, then windows of evidence (the rows of that generation) until a verdict,
    /// extended when evidence is short. Evidence accumulates over the whole step (the sequential
    /// test stays valid on growing totals), so an extension adds samples; only a window judged
    /// invalid restarts the counting, under a fresh generation of the same routes.
    /// </summary>
    private async Task<LifecycleOutcome?> StepAsync(
        WindowKind kind, int weightBp, double windowS, bool finalStep, StepRoutes routes, Func<long, long, BaselineRange?>? baselineFor)
    {
        if (await RouteAsync(routes) is { } unrouted)
        {
            return unrouted;
        }
        if (kind == WindowKind.Canary)
        {
            _stepGenerations.Add(_generation);
        }
        var (notApplied, start) = await AwaitRoutesAppliedAsync();
        if (notApplied is not null)
        {
            return notApplied;
        }
        var baseline = baselineFor?.Invoke(_generation, start);
        var extensions = 0;
        while (true)
        {
            var endAt = _context.CurrentUtcDateTime.AddSeconds(windowS);
            var action = StepAction.KeepLooking;
            while (action == StepAction.KeepLooking)
            {
                var look = Earliest(_context.CurrentUtcDateTime.AddSeconds(_policy.CheckIntervalS), endAt);
                if (await WaitUntilAsync(look) is { } command)
                {
                    if (await ApplyAsync(command) is { Ended: { } ended })
                    {
                        return ended;
                    }
                    continue;
                }
                var closing = _context.CurrentUtcDateTime >= endAt;
                var judgement = await JudgeAsync(kind, start, weightBp, finalStep && closing, baseline);
                var next = StepPolicy.Next(kind, weightBp, judgement, closing, extensions, _policy.MaxExtensions);
                action = next.Action;
                switch (action)
                {
                    case StepAction.RollBack:
                        return await RollBackAsync(next.Reason, _input.Actor);
                    case StepAction.Passed:
                        return null;
                    case StepAction.Extend or StepAction.ExtendAndRestart:
                        extensions++;
                        Publish(_status with { Reason = next.Reason });
                        if (action == StepAction.ExtendAndRestart)
                        {
                            // Routing did not do what it was told: count again, on a fresh generation.
                            if (await RouteAsync(routes with { Why = $"{routes.Why}: evidence restarted" }, newGeneration: true) is { } rerouted)
                            {
                                return rerouted;
                            }
                            if (kind == WindowKind.Canary)
                            {
                                _stepGenerations.Add(_generation);
                            }
                            (notApplied, start) = await AwaitRoutesAppliedAsync();
                            if (notApplied is not null)
                            {
                                return notApplied;
                            }
                        }
                        break;
                    default:
                        break;
                }
            }
        }
    }

    /// <summary>
    /// Waits until every live replica reports the routes this run last wrote (bounded by
    /// <c>heartbeat_max_age_s</c>: a replica that has not applied them by then is missing
    /// evidence, which every look reports); returns the step's clock start (unix seconds).
    /// </summary>
    private async Task<(LifecycleOutcome? Ended, long Start)> AwaitRoutesAppliedAsync()
    {
        var started = _context.CurrentUtcDateTime;
        var timeout = started.AddSeconds(_policy.HeartbeatMaxAgeS);
        // Replicas apply a change at their next poll (seconds): look more often than the warm-up does.
        var poll = Math.Min(_policy.WarmupPollS, 1.0);
        while (true)
        {
            var applied = await CallAsync<RoutesAppliedResult>(
                LifecycleNames.RoutesApplied, new RoutesAppliedInput(_input.Model, _generation, _policy.HeartbeatMaxAgeS));
            if (applied.Applied || _context.CurrentUtcDateTime >= timeout)
            {
                if (!applied.Applied)
                {
                    Publish(_status with
                    {
                        WaitingFor = null,
                        Reason = $"route generation {_generation} not applied within {Seconds(_policy.HeartbeatMaxAgeS)}s by "
                            + $"{(applied.Lagging.Count > 0 ? string.Join(", ", applied.Lagging) : "any live replica")}: the step starts without their evidence",
                    });
                }
                else if (_status.WaitingFor is not null)
                {
                    // The step's clock runs now: the status says canary, not the wait that is over.
                    Publish(_status with { WaitingFor = null });
                }
                return (null, UnixNow());
            }
            var lagging = applied.Lagging.Count > 0 ? string.Join(", ", applied.Lagging) : "any live replica";
            if (await WaitUntilAsync(Earliest(_context.CurrentUtcDateTime.AddSeconds(poll), timeout), $"route generation {_generation} on {lagging}") is { } command
                && await ApplyAsync(command) is { Ended: { } ended })
            {
                return (ended, 0);
            }
        }
    }

    private async Task<WindowJudgement> JudgeAsync(WindowKind kind, long start, int weightBp, bool finalStep, BaselineRange? baseline)
    {
        var request = new WindowRequest(_input.Model, _input.Version, _production, start, UnixNow() + 1, weightBp, finalStep, kind, _policy, baseline)
        {
            Generation = _generation,
        };
        var judgement = await CallAsync<WindowJudgement>(LifecycleNames.DecideWindow, request);
        _steps.Add(StepRecord.Of(_status.Step, weightBp, kind, judgement, _generation));
        Publish(_status with { Decision = StepLabels.Wire(judgement.Verdict), Reason = judgement.Reason });
        return judgement;
    }

    /// <summary>Polls the workers table until every live replica has the candidate ready; rolls back at the timeout.</summary>
    private async Task<LifecycleOutcome?> WarmUpAsync()
    {
        _phase = LifecyclePhase.WarmingUp;
        var started = _context.CurrentUtcDateTime;
        var timeout = TimeSpan.FromSeconds(_policy.WarmupTimeoutS);
        while (true)
        {
            var warm = await CallAsync<WarmStatusResult>(
                LifecycleNames.WarmStatus, new WarmStatusInput(_input.Model, _input.Version, _policy.HeartbeatMaxAgeS));
            if (warm.Ready)
            {
                Publish(_status with { WaitingFor = null, Replicas = warm.Live });
                return null;
            }
            if (_context.CurrentUtcDateTime - started >= timeout)
            {
                var missing = warm.Missing.Count > 0 ? string.Join(", ", warm.Missing) : "none live";
                return await RollBackAsync($"candidate not warm after {Seconds(_policy.WarmupTimeoutS)}s on replica(s): {missing}", _input.Actor);
            }
            var waitingFor = $"warm-up on {(warm.Missing.Count > 0 ? string.Join(", ", warm.Missing) : "any live replica")}";
            var wake = Earliest(_context.CurrentUtcDateTime.AddSeconds(_policy.WarmupPollS), started + timeout);
            if (await WaitUntilAsync(wake, waitingFor) is { } command && await ApplyAsync(command) is { Ended: { } ended })
            {
                return ended;
            }
        }
    }

    /// <summary>Waits for <c>approve</c>; one deadline for the whole wait, so a stray command does not restart the clock.</summary>
    private async Task<LifecycleOutcome?> AwaitApprovalAsync(LifecyclePhase phase)
    {
        _phase = phase;
        var why = _plan.Bump == Bump.Major && _policy.ApprovalRequired is null ? "major version" : "policy approval_required";
        var deadline = _context.CurrentUtcDateTime.AddSeconds(_policy.ApprovalTimeoutS);
        var waitingFor = "approval (send approve, promote, rollback or abort)";
        while (true)
        {
            if (await WaitUntilAsync(deadline, waitingFor) is not { } command)
            {
                return await RollBackAsync($"no approval within {Seconds(_policy.ApprovalTimeoutS)}s ({why})", _input.Actor);
            }
            var applied = await ApplyAsync(command);
            if (applied.Ended is { } ended)
            {
                return ended;
            }
            if (applied.Effect is CommandEffect.Proceed or CommandEffect.PromoteWhenSlotFree)
            {
                Publish(_status with { WaitingFor = null, Reason = $"approved by {command.Actor}" });
                return null;
            }
        }
    }

    /// <summary>No automatic promotion (A/B test, shadow-only): an operator promotes or rolls back; the timeout rolls back.</summary>
    private async Task<LifecycleOutcome> AwaitDecisionAsync(string why)
    {
        _phase = LifecyclePhase.AwaitingDecision;
        var deadline = _context.CurrentUtcDateTime.AddSeconds(_policy.ApprovalTimeoutS);
        while (true)
        {
            if (await WaitUntilAsync(deadline, $"{why}: send promote or rollback") is not { } command)
            {
                return await RollBackAsync($"{why}; no operator decision within {Seconds(_policy.ApprovalTimeoutS)}s", _input.Actor);
            }
            if (await ApplyAsync(command) is { Ended: { } ended })
            {
                return ended;
            }
        }
    }

    // -- outcomes ---------------------------------------------------------------------------------

    private async Task<LifecycleOutcome> RejectAsync(string reason, string? actor = null)
    {
        await CallEndingAsync<TransitionResult>(
            LifecycleNames.Transition, new TransitionInput(_input.Model, _input.Version, Stage.Rejected, _stage, reason, actor ?? _input.Actor));
        _stage = Stage.Rejected;
        Publish(_status with { Stage = _stage, Reason = reason });
        return new LifecycleOutcome("rejected", _stage, reason);
    }

    /// <summary>
    /// Takes the candidate off traffic and ends <c>rolled_back</c>; before any traffic,
    /// <c>rejected</c> (the activity decides by the stored stage, so a stage this run could not
    /// confirm is stopped correctly too). Then confirms the change reached every live replica.
    /// </summary>
    private async Task<LifecycleOutcome> RollBackAsync(string reason, string actor)
    {
        var stopped = await CallEndingAsync<RollbackResult>(LifecycleNames.Rollback, new RollbackInput(_input.Model, _input.Version, reason, actor));
        _stage = stopped.Stage;
        Publish(_status with { Stage = _stage, Reason = reason, WeightBp = 0, ShadowFractionBp = 0 });
        if (_stage == Stage.Rejected)
        {
            return new LifecycleOutcome("rejected", _stage, reason);
        }
        await ConfirmTrafficOffAsync(stopped.Generation);
        await ReportAsync("rolled_back", reason);
        return new LifecycleOutcome("rolled_back", _stage, reason);
    }

    /// <summary>
    /// Fast rollback, confirmed: how long after the rollback's route write every live replica
    /// reported its generation (each applies it at its next poll), bounded by
    /// <c>heartbeat_max_age_s</c>; recorded in the report. Best effort: the rollback stands either way.
    /// </summary>
    private async Task ConfirmTrafficOffAsync(long generation)
    {
        var written = _context.CurrentUtcDateTime;
        var timeout = written.AddSeconds(_policy.HeartbeatMaxAgeS);
        var poll = Math.Min(_policy.WarmupPollS, 0.25);
        try
        {
            RoutesAppliedResult applied;
            do
            {
                applied = await CallAsync<RoutesAppliedResult>(
                    LifecycleNames.RoutesApplied, new RoutesAppliedInput(_input.Model, generation, _policy.HeartbeatMaxAgeS));
                if (!applied.Applied && _context.CurrentUtcDateTime < timeout)
                {
                    await _context.CreateTimer(Earliest(_context.CurrentUtcDateTime.AddSeconds(poll), timeout), CancellationToken.None);
                }
            }
            while (!applied.Applied && _context.CurrentUtcDateTime < timeout);
            _trafficOff = new TrafficOff(generation, (_context.CurrentUtcDateTime - written).TotalSeconds, applied.Live, applied.Lagging);
        }
        catch (TaskFailedException)
        {
            // Storage went away again: the routes are written; replicas apply them when they can read them.
        }
    }

    /// <summary>Promotes, then bakes: the previous version stays loaded and a rollback reinstates it; then retires what nothing routes to.</summary>
    private async Task<LifecycleOutcome> PromoteAsync(string reason, string actor)
    {
        var promoted = await CallEndingAsync<PromoteResult>(LifecycleNames.Promote, new PromoteInput(_input.Model, _input.Version, _stage, reason, actor));
        _stage = Stage.Production;
        _promotion = reason;
        Publish(_status with { Stage = _stage, WeightBp = Policy.BasisPoints, ShadowFractionBp = 0, Reason = reason, WaitingFor = null });
        await ReportAsync("promoted", reason);
        if (promoted.Previous is { } previous)
        {
            _phase = LifecyclePhase.Baking;
            if (!_context.IsReplaying)
            {
                Failpoints.Hit(Failpoints.DuringBake);
            }
            var deadline = _context.CurrentUtcDateTime.AddSeconds(_policy.BakeS);
            while (await WaitUntilAsync(deadline, $"bake: rollback reinstates {previous}") is { } command)
            {
                // Only a rollback or abort acts here; anything else (a duplicate approve) changes nothing.
                if (OperatorCommands.EffectOf(_phase, command.Action) == CommandEffect.Reinstate)
                {
                    return await ReinstateAsync(previous, command);
                }
                Publish(_status with { LastCommand = command });
            }
            Publish(_status with { WaitingFor = null });
            try
            {
                await CallAsync<RetireResult>(LifecycleNames.Retire, new RetireInput(_input.Model));
            }
            catch (TaskFailedException error)
            {
                // Retiring only reports what may be unloaded: the promotion stands.
                Publish(_status with { Reason = $"{reason}; retiring superseded versions failed: {FailureMessage(error)}" });
            }
        }
        return new LifecycleOutcome("production", _stage, reason);
    }

    private async Task<LifecycleOutcome> ReinstateAsync(string previous, OperatorCommand command)
    {
        var why = $"rolled back after promotion by operator {command.Actor}: {command.ReasonOrDefault}";
        await CallEndingAsync<ReinstateResult>(LifecycleNames.Reinstate, new ReinstateInput(_input.Model, _input.Version, previous, why, command.Actor));
        _stage = Stage.RolledBack;
        Publish(_status with { Stage = _stage, Reason = why, WeightBp = 0, WaitingFor = null, LastCommand = command });
        await ReportAsync("rolled_back", why); // the report said "promoted"
        return new LifecycleOutcome("rolled_back", _stage, why);
    }

    /// <summary>
    /// Storage stayed unreachable after an activity's retries: the run ends in a defined stage.
    /// With traffic the candidate goes to 0 % and ends <c>rolled_back</c>, before any traffic it
    /// ends <c>rejected</c>, each with the reason "storage unavailable …" (those writes wait for
    /// storage to answer); after the promotion it stands; before the version was registered
    /// nothing was written, and the run fails with the reason (the reconciler starts it again).
    /// </summary>
    private async Task<LifecycleOutcome> EndOnStorageFaultAsync(TaskFailedException error)
    {
        var during = JsonNamingPolicy.SnakeCaseLower.ConvertName(_phase.ToString());
        var reason = $"storage unavailable during {during} ({error.TaskName}, {_policy.RetryAttempts} attempt(s)): {FailureMessage(error)}";
        if (!_registered)
        {
            return new LifecycleOutcome("failed", _stage, reason);
        }
        if (_stage is Stage.Production or Stage.Superseded || StageMachine.IsTerminal(_stage))
        {
            return new LifecycleOutcome(StageNames.ToWire(_stage), _stage, _promotion is null ? reason : $"{_promotion}; then {reason}");
        }
        return await RollBackAsync(reason, _input.Actor);
    }

    /// <summary>Writes the running traffic phase's report with its own looks; nothing before traffic (the evaluation report and the audit trail say it all).</summary>
    private async Task ReportAsync(string outcome, string reason)
    {
        if (_trafficPhase is not { } kind)
        {
            return;
        }
        var stage = kind == WindowKind.Shadow ? "shadow" : "canary";
        var steps = _steps.Where(s => s.Kind == kind).ToList();
        try
        {
            await CallAsync<ReportResult>(
                LifecycleNames.Report, new ReportInput(_input.Model, _input.Version, stage, outcome, reason, steps, _policy, _production) { TrafficOff = _trafficOff });
        }
        catch (TaskFailedException error)
        {
            // A report is a record of what happened, not part of the state: the outcome stands without it.
            Publish(_status with { Reason = $"{reason}; the {stage} report could not be written: {FailureMessage(error)}" });
        }
    }

    // -- commands, waits, plumbing -----------------------------------------------------------------

    /// <summary>What a command did: its effect in the phase, and the run's outcome when it ended the run.</summary>
    private readonly record struct Applied(CommandEffect Effect, LifecycleOutcome? Ended);

    /// <summary>Acts on an operator command as <see cref="OperatorCommands"/> says for the current phase.</summary>
    private async Task<Applied> ApplyAsync(OperatorCommand command, string? during = null)
    {
        var effect = OperatorCommands.EffectOf(_phase, command.Action);
        Publish(_status with { LastCommand = command });
        var label = command.Action == OperatorAction.Abort ? "aborted" : "rolled back";
        var stopped = $"{label} by operator {command.Actor}{(during is null ? "" : " " + during)}: {command.ReasonOrDefault}";
        switch (effect)
        {
            case CommandEffect.PromoteNow:
                return new(effect, await PromoteAsync($"promoted by operator {command.Actor}: {command.ReasonOrDefault}", command.Actor));
            case CommandEffect.PromoteWhenSlotFree:
                _promoteWhenSlotFree = command;
                Publish(_status with { Reason = $"promote requested by {command.Actor}: it happens once no other version holds the rollout slot" });
                return new(effect, null);
            case CommandEffect.Reject:
                return new(effect, await RejectAsync(stopped, command.Actor));
            case CommandEffect.RollBack:
                return new(effect, await RollBackAsync(stopped, command.Actor));
            default:
                return new(effect, null);
        }
    }

    /// <summary>
    /// Sleeps durably until <paramref name="deadline"/> (from the orchestration clock), or less when
    /// an operator command arrives first, which is returned. One waiter for the operator event is
    /// created and reused until it fires, so a command can never land on a stale waiter.
    /// </summary>
    private async Task<OperatorCommand?> WaitUntilAsync(DateTime deadline, string? waitingFor = null)
    {
        if (waitingFor is not null && _status.WaitingFor != waitingFor)
        {
            Publish(_status with { WaitingFor = waitingFor });
        }
        _operator ??= _context.WaitForExternalEvent<JsonElement>(LifecycleNames.OperatorEvent);
        if (!_operator.IsCompleted && deadline > _context.CurrentUtcDateTime)
        {
            using var cancel = new CancellationTokenSource();
            var timer = _context.CreateTimer(deadline, cancel.Token);
            if (await Task.WhenAny(timer, _operator) == timer)
            {
                return null;
            }
            cancel.Cancel(); // the timer is not needed any more
        }
        if (!_operator.IsCompleted)
        {
            return null;
        }
        var command = ReadCommand(await _operator);
        _operator = null;
        return command;
    }

    /// <summary>A command from the event's payload; anything unreadable is an unknown action, never a failure of the run.</summary>
    private static OperatorCommand ReadCommand(JsonElement payload)
    {
        string Text(string name) =>
            payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
                ? value.GetString()!
                : "";
        var actor = Text("actor");
        return new OperatorCommand(OperatorCommand.ParseAction(Text("action")), actor.Length > 0 ? actor : "operator", Text("reason"));
    }

    /// <summary>
    /// Sets this version's candidate or shadow slot and remembers the routes' generation; a
    /// refused or failed change rolls back (the run never hangs on it), storage unreachable ends
    /// the run (<see cref="EndOnStorageFaultAsync"/>).
    /// </summary>
    private async Task<LifecycleOutcome?> RouteAsync(StepRoutes routes, bool newGeneration = false)
    {
        string? refusal;
        try
        {
            var set = await CallAsync<SetTrafficResult>(LifecycleNames.SetTraffic, new SetTrafficInput(
                _input.Model, _input.Version, routes.Candidate, routes.CandidateWeightBp, routes.Shadow, routes.ShadowFractionBp, routes.Why, _input.Actor)
            {
                NewGeneration = newGeneration,
            });
            refusal = set.Refusal;
            if (refusal is null)
            {
                _generation = set.Generation;
            }
        }
        catch (TaskFailedException error) when (!ActivityFaults.IsStorageFault(error.FailureDetails))
        {
            refusal = FailureMessage(error);
        }
        return refusal is null ? null : await RollBackAsync($"could not route traffic: {refusal}", _input.Actor);
    }

    private async Task<LifecycleOutcome?> MoveAsync(Stage to, string reason, string? actor = null)
    {
        await CallAsync<TransitionResult>(
            LifecycleNames.Transition, new TransitionInput(_input.Model, _input.Version, to, _stage, reason, actor ?? _input.Actor));
        _stage = to;
        Publish(_status with { Stage = _stage, Reason = reason });
        return null;
    }

    private Task<T> CallAsync<T>(string activity, object input) => _context.CallActivityAsync<T>(activity, input, _retry);

    /// <summary>
    /// An ending write: it must land, so while storage is unreachable it is retried with backoff
    /// on the orchestration clock (a durable timer per try, from <c>retry_interval_s</c> doubling
    /// to at most 30 s) for up to <see cref="EndingRetryTimeout"/>; any other fault gets the
    /// policy's usual retries.
    /// </summary>
    private async Task<T> CallEndingAsync<T>(string activity, object input)
    {
        var deadline = _context.CurrentUtcDateTime + EndingRetryTimeout;
        var delay = TimeSpan.FromSeconds(_policy.RetryIntervalS);
        var maxDelay = TimeSpan.FromSeconds(Math.Clamp(_policy.RetryIntervalS * 8, 1, 30));
        while (_context.CurrentUtcDateTime < deadline)
        {
            try
            {
                return await CallAsync<T>(activity, input);
            }
            catch (TaskFailedException error) when (ActivityFaults.IsStorageFault(error.FailureDetails))
            {
                Publish(_status with { WaitingFor = $"storage, to write {activity} ({FailureMessage(error)})" });
                await _context.CreateTimer(delay, CancellationToken.None);
                delay = delay * 2 < maxDelay ? delay * 2 : maxDelay;
            }
        }
        return await CallAsync<T>(activity, input); // the last try: its failure fails the run, and the reconciler finishes the write
    }

    private void Publish(LifecycleStatus status)
    {
        _status = status with { Stage = _stage, Phase = _phase };
        _context.SetCustomStatus(_status);
    }

    private long UnixNow() => new DateTimeOffset(DateTime.SpecifyKind(_context.CurrentUtcDateTime, DateTimeKind.Utc)).ToUnixTimeSeconds();

    private static DateTime Earliest(DateTime a, DateTime b) => a < b ? a : b;

    private static string Seconds(double seconds) => seconds.ToString("0.######", CultureInfo.InvariantCulture);

    private static string FailureMessage(TaskFailedException error) => error.FailureDetails.ErrorMessage;

    /// <summary>Retry settings before the manifest is read: the run's overrides, else the defaults (validation reports a bad policy).</summary>
    private static Policy BootPolicy(LifecycleInput input)
    {
        try
        {
            return PolicyResolver.Resolve(input.Overrides);
        }
        catch (InvalidPolicyException)
        {
            return DefaultPolicy;
        }
    }

    /// <summary>Retries are for faults (storage hiccups): refusals are results and never reach them.</summary>
    private static TaskOptions RetryFor(Policy policy) =>
        TaskOptions.FromRetryPolicy(new RetryPolicy(policy.RetryAttempts, TimeSpan.FromSeconds(policy.RetryIntervalS)));
}
