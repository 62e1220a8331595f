using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.DataPlane;
using Lepton.GpuWorker.Routing;
using Lepton.GpuWorker.Serving;
using Lepton.Shared;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;

namespace Lepton.GpuWorker.Background;

/// <summary>
/// Follows the registry, off the request path: each poll reads only the routes and version rows
/// changed since the last one (by the table's own timestamps), starts loading the versions the
/// routes need (production, candidate even at weight 0, shadow, last known-good), protects them
/// from eviction, and applies only ready versions to the router, so a swap switches once the new
/// version is warm. A version becoming ready or failing re-applies its model's routes at once.
/// Fails static: every read goes through the <see cref="StorageGuard"/> (bounded by its deadline,
/// paused while its circuit is open), and a poll that cannot reach storage changes nothing, so the
/// replica keeps serving the routes and ready versions it last knew until storage answers again.
/// </summary>
public sealed class RegistryFollower(
    ReplicaState state,
    VersionPool pool,
    ModelRegistry registry,
    LoaderOptions options,
    StorageGuard guard,
    TimeProvider time,
    ILogger<RegistryFollower> log) : BackgroundService
{
    // Rows are re-read for this long after the newest timestamp seen: a write that commits late
    // with an earlier timestamp is still picked up; unchanged rows are recognised by their ETag.
    private static readonly TimeSpan Overlap = TimeSpan.FromSeconds(2);

    private readonly HashSet<string> _followed = new(StringComparer.Ordinal);
    private DateTimeOffset? _routesSeen;
    private DateTimeOffset? _versionsSeen;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        pool.Changed += Refresh;
        using var timer = new PeriodicTimer(options.PollInterval, time);
        do
        {
            try
            {
                await SyncAsync(stoppingToken);
            }
            catch (StorageUnavailableException)
            {
                // Serving goes on from the last known state; the guard logs the outage once and
                // paces the next tries.
            }
            catch (Exception error) when (!stoppingToken.IsCancellationRequested)
            {
                // Nothing must kill the loop; the next poll retries.
                log.LogWarning("registry poll failed: {Error}", error.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>One poll: read what changed, load what the routes need, apply ready versions.</summary>
    public async Task SyncAsync(CancellationToken cancellationToken)
    {
        var since = _routesSeen - Overlap;
        var changedRoutes = await guard.RunAsync(token => registry.RoutesChangedSinceAsync(since, options.Models, token), cancellationToken);
        foreach (var (routes, changed) in changedRoutes)
        {
            if (!state.Stored.TryGetValue(routes.Model, out var current) || current.ETag != routes.ETag)
            {
                state.Stored[routes.Model] = routes;
            }
            if (_routesSeen is null || changed > _routesSeen)
            {
                _routesSeen = changed;
            }
        }
        foreach (var model in options.Models)
        {
            // A followed model without a routes row yet: known, with nothing to serve.
            state.Stored.TryAdd(model, new Routes { Model = model });
        }
        await FollowVersionsAsync([.. state.Stored.Keys], cancellationToken);
        foreach (var model in state.Stored.Keys)
        {
            var routes = state.Stored[model];
            var lkg = state.LastKnownGood.GetValueOrDefault(model);
            foreach (var version in new[] { routes.Production, routes.Candidate, routes.Shadow, lkg }.OfType<string>().Distinct(StringComparer.Ordinal))
            {
                pool.RequestLoad(model, version);
            }
        }
        Protect();
        foreach (var model in state.Stored.Keys)
        {
            Refresh(model);
        }
        state.MarkSynced();
        MarkWarmWhenSettled();
    }

    /// <summary>
    /// Marks the replica warm once every production and candidate version its routes name has
    /// settled: ready, or failed (the data plane says why to its callers). Until then readiness
    /// stays off, so a balancer sends a starting replica nothing it would refuse.
    /// </summary>
    private void MarkWarmWhenSettled()
    {
        if (state.Warm || !state.Synced)
        {
            return;
        }
        foreach (var (model, routes) in state.Stored)
        {
            foreach (var version in new[] { routes.Production, routes.Candidate }.OfType<string>())
            {
                if (pool.Find(model, version) is { State: SlotState.Loading })
                {
                    return;
                }
            }
        }
        state.MarkWarm();
    }

    private async Task FollowVersionsAsync(IReadOnlyList<string> models, CancellationToken cancellationToken)
    {
        // Models seen for the first time are read whole; the others only for what changed.
        var fresh = models.Where(m => !_followed.Contains(m)).ToList();
        var changedRows = new List<(ModelVersion Version, DateTimeOffset Changed)>();
        if (fresh.Count > 0)
        {
            changedRows.AddRange(await guard.RunAsync(token => registry.VersionsChangedSinceAsync(fresh, null, token), cancellationToken));
        }
        var known = models.Where(_followed.Contains).ToList();
        if (known.Count > 0)
        {
            var after = _versionsSeen - Overlap;
            changedRows.AddRange(await guard.RunAsync(token => registry.VersionsChangedSinceAsync(known, after, token), cancellationToken));
        }
        _followed.UnionWith(fresh);
        foreach (var (version, changed) in changedRows)
        {
            state.Versions[(version.Model, version.Version)] = new KnownVersion(version.Stage, version.Reason, version.Updated);
            if (_versionsSeen is null || changed > _versionsSeen)
            {
                _versionsSeen = changed;
            }
            if (!StageMachine.ServableStages.Contains(version.Stage) && pool.Find(version.Model, version.Version) is not null)
            {
                // Rejected or rolled back: it no longer answers pinned requests either.
                if (log.IsEnabled(LogLevel.Information))
                {
                    log.LogInformation("{Model} {Version} is {Stage}: unloading it", version.Model, version.Version, StageNames.ToWire(version.Stage));
                }
                await pool.UnloadAsync(version.Model, version.Version);
            }
        }
        foreach (var model in models)
        {
            var lkg = state.Versions
                .Where(p => p.Key.Model == model && p.Value.Stage == Stage.Superseded)
                .OrderByDescending(p => p.Value.Updated)
                .Select(p => p.Key.Version)
                .FirstOrDefault();
            if (lkg is not null)
            {
                state.LastKnownGood[model] = lkg;
            }
            else
            {
                state.LastKnownGood.TryRemove(model, out _);
            }
        }
    }

    private void Protect()
    {
        var protectedVersions = new Dictionary<(string, string), string>();
        foreach (var (model, routes) in state.Stored)
        {
            foreach (var (role, version) in new[]
            {
                ("production", routes.Production),
                ("candidate", routes.Candidate),
                ("shadow", routes.Shadow),
                ("last known-good", state.LastKnownGood.GetValueOrDefault(model)),
            })
            {
                if (version is not null)
                {
                    protectedVersions.TryAdd((model, version), role);
                }
            }
            if (state.Table(model) is { } table)
            {
                foreach (var version in new[] { table.Production, table.Candidate, table.Shadow }.OfType<string>())
                {
                    protectedVersions.TryAdd((model, version), "serving");
                }
            }
        }
        pool.Protect(protectedVersions);
    }

    /// <summary>Re-applies a model's stored routes with what is ready here now.</summary>
    public void Refresh(string model)
    {
        if (!state.Stored.TryGetValue(model, out var stored))
        {
            return;
        }
        bool Servable(string version) =>
            pool.IsReady(model, version)
            && (!state.Versions.TryGetValue((model, version), out var known) || StageMachine.ServableStages.Contains(known.Stage));
        lock (state)
        {
            var table = RouteTable.Effective(stored, Servable, state.Table(model));
            state.Publish([table]);
        }
        Protect();
        MarkWarmWhenSettled();
    }

    public override void Dispose()
    {
        pool.Changed -= Refresh;
        base.Dispose();
    }
}
