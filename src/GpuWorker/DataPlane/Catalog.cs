using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Routing;
using Lepton.GpuWorker.Serving;
using Lepton.Shared;

namespace Lepton.GpuWorker.DataPlane;

/// <summary>What <c>GET /v2</c> (and gRPC ServerMetadata) answers.</summary>
public sealed record ServerInfo(string Name, string Version, IReadOnlyList<string> Extensions, string Replica, string Provider, string ProviderReason);

/// <summary>A ready version's metadata and serving parameters.</summary>
public sealed record ModelInfo(
    string Name,
    string Version,
    IReadOnlyList<string> ReadyVersions,
    IReadOnlyList<TensorSpec> Inputs,
    IReadOnlyList<TensorSpec> Outputs,
    bool Batchable,
    int MaxBatchSize,
    double MaxDelayMs,
    long FootprintBytes,
    string Provider,
    RouteTable? Routes)
{
    public const string Platform = "onnxruntime_onnx";
}

/// <summary>One entry of Triton's repository index.</summary>
public sealed record RepositoryEntry(string Name, string Version, string State, string Reason);

/// <summary>One version's statistics (Triton's statistics extension).</summary>
public sealed record VersionStatisticsEntry(string Name, string Version, VersionStatistics Statistics);

public sealed partial class InferenceDataPlane
{
    public const string ServerName = "lepton-gpuworker";
    public const string ServerVersion = "1.0.0";

    /// <summary>The protocol extensions this worker serves (Triton's names).</summary>
    public static readonly IReadOnlyList<string> Extensions =
        ["binary_tensor_data", "model_configuration", "model_repository", "statistics"];

    public ServerInfo Server() => new(ServerName, ServerVersion, Extensions, server.Replica, provider.Name, provider.Reason);

    /// <summary>The version a metadata request means: the one named, or the model's production version.</summary>
    private string VersionOrDefault(string model, string? version)
    {
        if (version is not null)
        {
            return version;
        }
        var table = state.Table(model) ?? throw NotServed(model);
        return table.Production ?? table.Candidate
            ?? throw new NotReadyException($"model '{model}' has no ready version yet; retry shortly", TimeSpan.FromSeconds(1));
    }

    /// <summary>The ready version behind a metadata or readiness request, or the error saying why it is not ready.</summary>
    public async ValueTask<ServedVersion> ReadyVersionAsync(string model, string? version)
    {
        var chosen = VersionOrDefault(model, version);
        if (version is not null && !SemVer.TryParse(chosen, out _))
        {
            throw new InvalidVersionException($"'{Protocol.OipJsonDecoder.Clip(chosen)}' is not a SemVer version (e.g. 1.2.0)");
        }
        if (state.Versions.TryGetValue((model, chosen), out var known) && !Shared.Lifecycle.StageMachine.ServableStages.Contains(known.Stage))
        {
            throw NotServable(model, chosen, known.Stage, known.Reason);
        }
        return pool.GetReady(model, chosen) ?? throw await NotReadyErrorAsync(model, chosen);
    }

    public async ValueTask<ModelInfo> ModelAsync(string model, string? version)
    {
        var served = await ReadyVersionAsync(model, version);
        var ready = pool.Versions(SlotState.Ready).GetValueOrDefault(model) ?? [];
        var onnx = served.Onnx;
        return new ModelInfo(
            model, served.Version, ready, onnx.Inputs, onnx.Outputs, onnx.Batchable, onnx.MaxBatchSize,
            served.Batcher.Options.MaxDelay.TotalMilliseconds, served.Footprint, provider.Name, state.Table(model));
    }

    /// <summary>Every version this replica knows of: loaded, loading, failed, or routed and not loaded.</summary>
    public IReadOnlyList<RepositoryEntry> RepositoryIndex(bool readyOnly)
    {
        var entries = new Dictionary<(string, string), RepositoryEntry>();
        foreach (var slot in pool.Slots)
        {
            entries[(slot.Model, slot.Version)] = slot.State switch
            {
                SlotState.Ready => new RepositoryEntry(slot.Model, slot.Version, "READY", ""),
                SlotState.Loading => new RepositoryEntry(slot.Model, slot.Version, "LOADING", ""),
                _ => new RepositoryEntry(slot.Model, slot.Version, "UNAVAILABLE", slot.Error),
            };
        }
        foreach (var (model, routes) in state.Stored)
        {
            foreach (var version in routes.NamedVersions())
            {
                entries.TryAdd((model, version), new RepositoryEntry(model, version, "UNAVAILABLE", "not loaded on this replica"));
            }
        }
        return entries.Values
            .Where(e => !readyOnly || e.State == "READY")
            .OrderBy(e => e.Name, StringComparer.Ordinal)
            .ThenBy(e => SemVer.TryParse(e.Version, out var v) ? v : null)
            .ToList();
    }

    /// <summary>Statistics of the loaded versions, all or one model's (or one version's).</summary>
    public IReadOnlyList<VersionStatisticsEntry> Statistics(string? model, string? version)
    {
        if (model is not null && version is null && !state.Tables.ContainsKey(model) && !pool.Slots.Any(s => s.Model == model))
        {
            throw NotServed(model);
        }
        var entries = pool.Slots
            .Where(s => s.State == SlotState.Ready && s.Served is not null)
            .Where(s => (model is null || s.Model == model) && (version is null || s.Version == version))
            .OrderBy(s => s.Model, StringComparer.Ordinal).ThenBy(s => s.Version, StringComparer.Ordinal)
            .Select(s => new VersionStatisticsEntry(s.Model, s.Version, s.Served!.Statistics))
            .ToList();
        if (model is not null && version is not null && entries.Count == 0)
        {
            throw new VersionNotFoundException($"{model} {version} is not loaded on this worker");
        }
        return entries;
    }
}
