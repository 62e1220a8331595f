using System.Globalization;
using Lepton.Shared;
using Lepton.Shared.Configuration;
using Lepton.Shared.Storage;

namespace Lepton.GpuWorker.Configuration;

/// <summary>
/// Every setting the worker reads: its own <c>LEPTON_WORKER_*</c> ones (the reference's names and
/// defaults, plus auth, input bounds and gRPC) and the shared storage ones. The infrastructure test
/// checks the Bicep sets what the container app needs from <see cref="All"/>.
/// </summary>
public static class WorkerSettingNames
{
    public const string Prefix = "LEPTON_WORKER_";

    // Each name is written out whole (not Prefix + "…"): the infrastructure test finds the settings
    // the code reads by their literal names.
    public const string Host = "LEPTON_WORKER_HOST";
    public const string Port = "LEPTON_WORKER_PORT";
    public const string GrpcPort = "LEPTON_WORKER_GRPC_PORT";
    public const string Url = "LEPTON_WORKER_URL";
    public const string ReplicaId = "LEPTON_WORKER_REPLICA_ID";
    public const string Models = "LEPTON_WORKER_MODELS";
    public const string PollIntervalS = "LEPTON_WORKER_POLL_INTERVAL_S";
    public const string HeartbeatS = "LEPTON_WORKER_HEARTBEAT_S";
    public const string WindowS = "LEPTON_WORKER_WINDOW_S";
    public const string FlushS = "LEPTON_WORKER_FLUSH_S";
    public const string MemoryBudgetMb = "LEPTON_WORKER_MEMORY_BUDGET_MB";
    public const string UnloadGraceS = "LEPTON_WORKER_UNLOAD_GRACE_S";
    public const string MaxBodyBytes = "LEPTON_WORKER_MAX_BODY_BYTES";
    public const string MaxElements = "LEPTON_WORKER_MAX_ELEMENTS";
    public const string Provider = "LEPTON_WORKER_PROVIDER";
    public const string CudaDeviceId = "LEPTON_WORKER_CUDA_DEVICE_ID";
    public const string CudaMemLimitMb = "LEPTON_WORKER_CUDA_MEM_LIMIT_MB";
    public const string CudaArenaExtendStrategy = "LEPTON_WORKER_CUDA_ARENA_EXTEND_STRATEGY";
    public const string IntraOpThreads = "LEPTON_WORKER_INTRA_OP_THREADS";
    public const string InterOpThreads = "LEPTON_WORKER_INTER_OP_THREADS";
    public const string BatchConcurrency = "LEPTON_WORKER_BATCH_CONCURRENCY";
    public const string InlineBelowMs = "LEPTON_WORKER_INLINE_BELOW_MS";
    public const string NonfiniteIsError = "LEPTON_WORKER_NONFINITE_IS_ERROR";
    public const string NonfiniteInputs = "LEPTON_WORKER_NONFINITE_INPUTS";
    public const string DrainS = "LEPTON_WORKER_DRAIN_S";
    public const string MaxShadowInFlight = "LEPTON_WORKER_MAX_SHADOW_IN_FLIGHT";
    public const string Auth = "LEPTON_WORKER_AUTH";
    public const string ApiKeys = "LEPTON_WORKER_API_KEYS";
    public const string EntraTenantId = "LEPTON_WORKER_ENTRA_TENANT_ID";
    public const string EntraAudience = "LEPTON_WORKER_ENTRA_AUDIENCE";
    public const string EntraIssuer = "LEPTON_WORKER_ENTRA_ISSUER";
    public const string EntraMetadataUrl = "LEPTON_WORKER_ENTRA_METADATA_URL";
    public const string MetricsAuth = "LEPTON_WORKER_METRICS_AUTH";
    public const string StorageDeadlineS = "LEPTON_WORKER_STORAGE_DEADLINE_S";
    public const string StorageMaxBackoffS = "LEPTON_WORKER_STORAGE_MAX_BACKOFF_S";
    public const string RollupBuffer = "LEPTON_WORKER_ROLLUP_BUFFER";

    /// <summary>The worker's own settings.</summary>
    public static readonly IReadOnlyList<string> Own =
    [
        Host, Port, GrpcPort, Url, ReplicaId, Models, PollIntervalS, HeartbeatS, WindowS, FlushS, MemoryBudgetMb,
        UnloadGraceS, MaxBodyBytes, MaxElements, Provider, CudaDeviceId, CudaMemLimitMb, CudaArenaExtendStrategy,
        IntraOpThreads, InterOpThreads, BatchConcurrency, InlineBelowMs, NonfiniteIsError, NonfiniteInputs, DrainS,
        MaxShadowInFlight, Auth, ApiKeys, EntraTenantId, EntraAudience, EntraIssuer, EntraMetadataUrl, MetricsAuth,
        StorageDeadlineS, StorageMaxBackoffS, RollupBuffer,
    ];

    /// <summary>Every setting the worker reads: its own, then the shared storage, cache and telemetry ones.</summary>
    public static readonly IReadOnlyList<string> All = [.. Own, .. AppSettingNames.All];
}

/// <summary>Where the worker listens and what it advertises.</summary>
public sealed record ServerOptions
{
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>HTTP/1.1 port of the Open Inference Protocol (0 = any free port).</summary>
    public int Port { get; init; } = 8000;

    /// <summary>HTTP/2 port of the gRPC service, as Triton's (0 = any free port).</summary>
    public int GrpcPort { get; init; } = 8001;

    /// <summary>URL advertised in heartbeats; empty = <c>http://{host or hostname}:{port}</c>.</summary>
    public string Url { get; init; } = "";

    public string ReplicaId { get; init; } = "";

    public long MaxBodyBytes { get; init; } = 64L * 1024 * 1024;

    public TimeSpan Drain { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The replica name in <c>workers</c> and <c>metrics</c>: the setting, or <c>{hostname}-{port}</c>.</summary>
    public string Replica => ReplicaId.Length > 0 ? ReplicaId : $"{Environment.MachineName}-{Port}";

    /// <summary>The URL others reach this replica at, given the port actually bound.</summary>
    public string AdvertisedUrl(int boundPort) => Url.Length > 0 ? Url : $"http://{AdvertisedHost}:{boundPort}";

    /// <summary>A wildcard bind address is nowhere anyone can connect to: the machine's name instead.</summary>
    public string AdvertisedHost => Host is "0.0.0.0" or "::" or "" or "*" ? Environment.MachineName : Host;

    public static ServerOptions FromConfiguration(IConfiguration c) => new()
    {
        Host = Settings.Text(c, WorkerSettingNames.Host) ?? "127.0.0.1",
        Port = ReadPort(c, WorkerSettingNames.Port, 8000),
        GrpcPort = ReadPort(c, WorkerSettingNames.GrpcPort, 8001),
        Url = Settings.Text(c, WorkerSettingNames.Url) ?? "",
        ReplicaId = Settings.Text(c, WorkerSettingNames.ReplicaId) ?? "",
        MaxBodyBytes = Settings.WholeNumber(c, WorkerSettingNames.MaxBodyBytes, 64L * 1024 * 1024, min: 1024),
        Drain = OptionReaders.Seconds(c, WorkerSettingNames.DrainS, 1.0, min: 0),
    };

    private static int ReadPort(IConfiguration c, string setting, int fallback)
    {
        var port = Settings.WholeNumber(c, setting, fallback, min: 0);
        return port <= 65535 ? port : throw new ConfigurationException($"{setting} must be a port number 0..65535, got {port}");
    }
}

/// <summary>Which models this replica follows, how often, and how much it may hold.</summary>
public sealed record LoaderOptions
{
    /// <summary>Models this replica serves; empty = every model that has routes.</summary>
    public IReadOnlyList<string> Models { get; init; } = [];

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(2);

    public long MemoryBudgetBytes { get; init; } = 4096L * 1024 * 1024;

    public TimeSpan UnloadGrace { get; init; } = TimeSpan.FromSeconds(60);

    public static LoaderOptions FromConfiguration(IConfiguration c)
    {
        var models = new List<string>();
        foreach (var raw in (Settings.Text(c, WorkerSettingNames.Models) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!ModelName.IsValid(raw))
            {
                throw new ConfigurationException(
                    $"{WorkerSettingNames.Models}: '{raw}' is not a valid model name (lowercase letters, digits and hyphens, 1-63 characters)");
            }
            models.Add(raw);
        }
        return new LoaderOptions
        {
            Models = models,
            PollInterval = OptionReaders.Seconds(c, WorkerSettingNames.PollIntervalS, 2.0, min: 0.05),
            MemoryBudgetBytes = Settings.WholeNumber(c, WorkerSettingNames.MemoryBudgetMb, 4096L, min: 1) * 1024 * 1024,
            UnloadGrace = OptionReaders.Seconds(c, WorkerSettingNames.UnloadGraceS, 60.0, min: 0),
        };
    }
}

/// <summary>How ONNX Runtime runs: provider, CUDA options, CPU threads, batches in flight.</summary>
public sealed record ExecutionOptions
{
    public static readonly IReadOnlyList<string> ProviderChoices = ["auto", "cpu", "cuda"];
    public static readonly IReadOnlyList<string> ArenaStrategies = ["kNextPowerOfTwo", "kSameAsRequested"];

    public string Provider { get; init; } = "auto";

    public int CudaDeviceId { get; init; }

    /// <summary>CUDA arena limit in MiB; 0 = the device's memory.</summary>
    public long CudaMemLimitMb { get; init; }

    public string CudaArenaExtendStrategy { get; init; } = "kNextPowerOfTwo";

    /// <summary>0 = one per CPU this process may run on.</summary>
    public int IntraOpThreads { get; init; }

    public int InterOpThreads { get; init; } = 1;

    /// <summary>Batches of one version running at the same time.</summary>
    public int BatchConcurrency { get; init; } = 2;

    /// <summary>Queued batches measured cheaper than this run on the dispatching thread instead of another pool thread.</summary>
    public double InlineBelowMs { get; init; } = 0.3;

    public int EffectiveIntraOpThreads => IntraOpThreads > 0 ? IntraOpThreads : Math.Max(1, Environment.ProcessorCount);

    public static ExecutionOptions FromConfiguration(IConfiguration c) => new()
    {
        Provider = OptionReaders.Choice(c, WorkerSettingNames.Provider, "auto", ProviderChoices),
        CudaDeviceId = Settings.WholeNumber(c, WorkerSettingNames.CudaDeviceId, 0, min: 0),
        CudaMemLimitMb = Settings.WholeNumber(c, WorkerSettingNames.CudaMemLimitMb, 0L, min: 0),
        CudaArenaExtendStrategy = OptionReaders.Choice(c, WorkerSettingNames.CudaArenaExtendStrategy, "kNextPowerOfTwo", ArenaStrategies),
        IntraOpThreads = Settings.WholeNumber(c, WorkerSettingNames.IntraOpThreads, 0, min: 0),
        InterOpThreads = Settings.WholeNumber(c, WorkerSettingNames.InterOpThreads, 1, min: 1),
        BatchConcurrency = Settings.WholeNumber(c, WorkerSettingNames.BatchConcurrency, 2, min: 1),
        InlineBelowMs = Settings.NonNegativeNumber(c, WorkerSettingNames.InlineBelowMs, 0.3),
    };
}

/// <summary>What a request may hold and how non-finite values are treated.</summary>
public sealed record InferenceOptions
{
    public const long DefaultMaxElements = 16L * 1024 * 1024;

    /// <summary>Elements over all inputs of one request, checked from the shapes before allocating.</summary>
    public long MaxElements { get; init; } = DefaultMaxElements;

    /// <summary>NaN/inf outputs are withheld (500) and counted as the version's errors.</summary>
    public bool NonfiniteIsError { get; init; } = true;

    /// <summary>NaN/inf inputs are refused (400) before inference; <c>false</c> passes them to the model.</summary>
    public bool RejectNonfiniteInputs { get; init; } = true;

    public int MaxShadowInFlight { get; init; } = 64;

    public static InferenceOptions FromConfiguration(IConfiguration c) => new()
    {
        MaxElements = Settings.WholeNumber(c, WorkerSettingNames.MaxElements, DefaultMaxElements, min: 1),
        NonfiniteIsError = Settings.Flag(c, WorkerSettingNames.NonfiniteIsError, true),
        RejectNonfiniteInputs = OptionReaders.Choice(c, WorkerSettingNames.NonfiniteInputs, "reject", ["reject", "allow"]) == "reject",
        MaxShadowInFlight = Settings.WholeNumber(c, WorkerSettingNames.MaxShadowInFlight, 64, min: 0),
    };
}

/// <summary>How often the replica reports, the rollup window, and how many windows it keeps while storage is away.</summary>
public sealed record ReportingOptions
{
    /// <summary>
    /// Windows kept in memory until written: 4096 windows of 10 s hold almost four hours of three
    /// versions' traffic (at most about 3 KiB each, so at most about 12 MiB).
    /// </summary>
    public const int DefaultRollupBuffer = 4096;

    public TimeSpan Heartbeat { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Whole seconds; windows are aligned to multiples of it (unix time).</summary>
    public int WindowSeconds { get; init; } = 10;

    public TimeSpan Flush { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Most (model, version, window) rollups held unwritten; beyond it the oldest are dropped and counted.</summary>
    public int RollupBuffer { get; init; } = DefaultRollupBuffer;

    public static ReportingOptions FromConfiguration(IConfiguration c) => new()
    {
        Heartbeat = OptionReaders.Seconds(c, WorkerSettingNames.HeartbeatS, 3.0, min: 0.05),
        WindowSeconds = Settings.WholeNumber(c, WorkerSettingNames.WindowS, 10, min: 1),
        Flush = OptionReaders.Seconds(c, WorkerSettingNames.FlushS, 2.0, min: 0.05),
        RollupBuffer = Settings.WholeNumber(c, WorkerSettingNames.RollupBuffer, DefaultRollupBuffer, min: 1),
    };
}

/// <summary>
/// How the worker's background loops (registry polls, heartbeats, rollup writes) call storage:
/// each call, the SDK's retries included, is bounded by a deadline, so a storage that accepts
/// connections but never answers never freezes a loop; see <see cref="StorageGuard"/>.
/// </summary>
public static class WorkerStorageGuard
{
    public static StorageGuardOptions FromConfiguration(IConfiguration c)
    {
        // The longest pause between probes of a storage that is away: also how late, at worst, a
        // replica notices it is back (heartbeats and rollups resume at the next probe).
        var longest = OptionReaders.Seconds(c, WorkerSettingNames.StorageMaxBackoffS, 8.0, min: 0.5);
        return new StorageGuardOptions
        {
            Deadline = OptionReaders.Seconds(c, WorkerSettingNames.StorageDeadlineS, 10.0, min: 0.05),
            FirstBreak = TimeSpan.FromSeconds(Math.Min(1.0, longest.TotalSeconds)),
            LongestBreak = longest,
        };
    }
}

internal static class OptionReaders
{
    public static TimeSpan Seconds(IConfiguration c, string setting, double fallback, double min)
    {
        var value = Settings.NonNegativeNumber(c, setting, fallback);
        if (value < min)
        {
            throw new ConfigurationException($"{setting} must be at least {min.ToString(CultureInfo.InvariantCulture)} seconds, got {value.ToString(CultureInfo.InvariantCulture)}");
        }
        return TimeSpan.FromSeconds(value);
    }

    public static string Choice(IConfiguration c, string setting, string fallback, IReadOnlyList<string> allowed)
    {
        var value = Settings.Text(c, setting) ?? fallback;
        return allowed.Contains(value, StringComparer.Ordinal)
            ? value
            : throw new ConfigurationException($"{setting} must be one of {string.Join(", ", allowed)}, got '{value}'");
    }
}
