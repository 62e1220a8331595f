using Lepton.Infra.Tests.Bicep;
using Lepton.Infra.Tests.Docker;
using Lepton.Shared.Configuration;

namespace Lepton.Infra.Tests.Settings;

/// <summary>
/// Every setting the code reads is set by the templates where it must be, and no template sets a
/// setting nothing reads. A setting the code reads but the template forgets fails here, not at
/// deployment with a ConfigurationException; a setting the template sets that nothing reads (a
/// typo, a renamed setting, a feature that was dropped: an operator would believe it does
/// something) fails here too.
/// <para>
/// What the code reads is found, not listed: <see cref="CodeSettings"/> parses every .cs file with
/// Roslyn and takes the string literals that are whole setting names (<c>AzureWebJobsStorage…</c>,
/// <c>AzureFunctionsJobHost__…</c>, <c>APPLICATIONINSIGHTS_…</c>, <c>FUNCTIONS_…</c>,
/// <c>LEPTON_…</c>, <c>AZURE_…</c>; <c>%NAME%</c> binding expressions count as NAME) and the
/// <c>AppSettingNames.X</c> accesses, so it keeps working as code lands, without edits here. The
/// code is split by app:
/// <list type="bullet">
/// <item>the Function App (modules/functionApp.bicep) reads what src/Functions and src/Shared
/// name, and every <see cref="AppSettingNames"/> constant (the names the Functions host and
/// Lepton's code share);</item>
/// <item>the worker Container App (modules/workerApp.bicep plus the ENV of
/// docker/worker.gpu.Dockerfile) reads what src/GpuWorker names, and the Lepton.Shared settings
/// its code reaches (<see cref="SharedCode"/>: through the Shared types it names and the extension
/// methods it calls, such as AddLeptonStorage). Until src/GpuWorker exists (it is written in
/// parallel), the worker is held to <see cref="WorkerContract"/>, the settings its issue and
/// DESIGN.md name.</item>
/// </list>
/// src/Cli is neither app (its LEPTON_DEV_* settings are local). Settings a platform component
/// reads rather than Lepton's code (the Functions host, Azure.Identity, the Azure Monitor
/// exporter) are listed below with who reads them; so are the settings deliberately left unset
/// because the code's default is right in Azure (the rule: a setting with a safe default need not
/// be set unless the cloud needs a different value), and the settings that must never be set.
/// A setting needs a decision once, here or in a template; the message says which.
/// </para>
/// </summary>
public sealed class SettingsTests(Deployments deployments)
{
    private static readonly string FunctionsCode = Repository.At("src", "Functions");
    private static readonly string WorkerCode = Repository.At("src", "GpuWorker");
    private static readonly string SharedSource = Repository.At("src", "Shared");

    /// <summary>The worker's settings as issue 10 and DESIGN.md name them, used until src/GpuWorker lands.</summary>
    private static readonly string[] WorkerContract =
    [
        "LEPTON_WORKER_HOST", "LEPTON_WORKER_PORT", "LEPTON_WORKER_GRPC_PORT",
        "LEPTON_WORKER_AUTH", "LEPTON_WORKER_API_KEYS", "LEPTON_WORKER_ENTRA_TENANT_ID", "LEPTON_WORKER_ENTRA_AUDIENCE",
    ];

    /// <summary>Until src/GpuWorker lands: the worker runs Lepton.Shared's storage core.</summary>
    private static readonly string[] WorkerContractIdentifiers = ["AddLeptonStorage"];

    private static readonly Dictionary<string, string> FunctionAppPlatform = new(StringComparer.Ordinal)
    {
        ["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] = "the Functions host, which sends its own telemetry with this identity's Entra ID token (local auth is off)",
        ["AZURE_CLIENT_ID"] = "Azure.Identity's DefaultAzureCredential, which picks the user-assigned identity by it (the app has no system-assigned one)",
        ["FUNCTIONS_WORKER_RUNTIME"] = "the Functions host, to start the .NET isolated worker; on Flex Consumption it is functionAppConfig.runtime.name",
        ["FUNCTIONS_WORKER_RUNTIME_VERSION"] = "the Functions host; on Flex Consumption it is functionAppConfig.runtime.version",
    };

    private static readonly Dictionary<string, string> WorkerPlatform = new(StringComparer.Ordinal)
    {
        ["APPLICATIONINSIGHTS_CONNECTION_STRING"] = "the Azure Monitor OpenTelemetry exporter, which reads it from the environment",
        ["AZURE_CLIENT_ID"] = "Azure.Identity's DefaultAzureCredential, which picks the user-assigned identity by it (the app has no system-assigned one)",
    };

    // Runtime knobs of the images: the .NET runtime, ASP.NET Core and the NVIDIA container runtime.
    private static readonly string[] ImagePlatformPrefixes = ["DOTNET_", "ASPNETCORE_", "NVIDIA_", "PATH"];

    private static readonly Dictionary<string, string> StorageDefaults = new(StringComparer.Ordinal)
    {
        [AppSettingNames.StorageTimeoutSeconds] = "10 s per try before the SDK retries suits Azure Storage in the same region",
        [AppSettingNames.StorageRetries] = "3 retries with the SDK's exponential backoff ride out throttling and failovers",
        [global::Lepton.Shared.Lifecycle.Failpoints.Variable] = "crash-test failpoints exist in Debug builds only; a Release deployment contains no call that reads it",
    };

    private static readonly Dictionary<string, string> WorkerDefaults = new(StorageDefaults, StringComparer.Ordinal)
    {
        [AppSettingNames.MetricsRetentionHours] = "registered by AddLeptonStorage, but only the Functions app's retention timer acts on it",
        [AppSettingNames.MetricsRetentionSchedule] = "registered by AddLeptonStorage, but only the Functions app's retention timer acts on it",
        [AppSettingNames.StorageQueueServiceUri] = "listed with the storage settings for the Functions host's task hub; the worker uses only blobs and tables",
        [AppSettingNames.CacheDir] = "the default .lepton/cache under the container's working directory is writable by the worker's user",
        ["LEPTON_WORKER_URL"] = "the advertised URL defaults to the replica's hostname and port, which is what Container Apps gives each replica",
        ["LEPTON_WORKER_REPLICA_ID"] = "defaults to hostname-port, unique per Container Apps replica",
        ["LEPTON_WORKER_MODELS"] = "unset serves every model with routes; set it per replica group only beyond a few hundred models",
        ["LEPTON_WORKER_POLL_INTERVAL_S"] = "2 s: a route change reaches every replica within one poll, well inside any canary window",
        ["LEPTON_WORKER_HEARTBEAT_S"] = "3 s, ten times inside the lifecycle's 30 s liveness window",
        ["LEPTON_WORKER_WINDOW_S"] = "10 s rollup windows: small against the 300 s default canary window",
        ["LEPTON_WORKER_FLUSH_S"] = "2 s between rollup writes keeps table traffic small",
        ["LEPTON_WORKER_MEMORY_BUDGET_MB"] = "4096 MB of resident versions fits the GPU profiles' memory; raise it for larger cards",
        ["LEPTON_WORKER_UNLOAD_GRACE_S"] = "60 s before an idle version unloads",
        ["LEPTON_WORKER_MAX_BODY_BYTES"] = "64 MiB bodies, as the reference",
        ["LEPTON_WORKER_MAX_ELEMENTS"] = "the per-request element budget's default bounds memory per request on any profile",
        ["LEPTON_WORKER_PROVIDER"] = "auto picks CUDA on the GPU profile and fails over to CPU only when no device is visible",
        ["LEPTON_WORKER_CUDA_DEVICE_ID"] = "0: serverless GPU replicas see one device",
        ["LEPTON_WORKER_CUDA_MEM_LIMIT_MB"] = "0 = no arena limit: the replica's GPU is its own",
        ["LEPTON_WORKER_CUDA_ARENA_EXTEND_STRATEGY"] = "kNextPowerOfTwo, ONNX Runtime's default",
        ["LEPTON_WORKER_INTRA_OP_THREADS"] = "0 = the cores this process may use",
        ["LEPTON_WORKER_INTER_OP_THREADS"] = "1, ONNX Runtime's sequential executor",
        ["LEPTON_WORKER_BATCH_CONCURRENCY"] = "2 batches of a version at once (capped by cores on CPU)",
        ["LEPTON_WORKER_INLINE_BELOW_MS"] = "0.3 ms: cheaper runs stay on the request thread",
        ["LEPTON_WORKER_NONFINITE_IS_ERROR"] = "NaN/inf outputs are errors counted against the version, as the canary needs",
        ["LEPTON_WORKER_NONFINITE_INPUTS"] = "non-finite inputs are refused with 400 by default",
        ["LEPTON_WORKER_DRAIN_S"] = "1 s of not-ready before shutdown, inside Container Apps' termination grace",
        ["LEPTON_WORKER_MAX_SHADOW_IN_FLIGHT"] = "64 concurrent shadow copies",
        ["LEPTON_WORKER_ENTRA_ISSUER"] = "derived from the tenant id (Microsoft Entra's v2.0 issuer)",
        ["LEPTON_WORKER_ENTRA_METADATA_URL"] = "derived from the tenant id (login.microsoftonline.com's OpenID configuration)",
        ["LEPTON_WORKER_METRICS_AUTH"] = "admin: /metrics needs an admin key; ingress is internal anyway",
        ["LEPTON_WORKER_STORAGE_DEADLINE_S"] = "10 s per background storage call: a hung storage never freezes a loop, a slow one still answers",
        ["LEPTON_WORKER_STORAGE_MAX_BACKOFF_S"] = "8 s at most between probes of a storage that is away, so its return is noticed within a few heartbeats",
        ["LEPTON_WORKER_ROLLUP_BUFFER"] = "4096 unwritten rollups (about four hours of three versions at 10 s windows, at most about 12 MiB) ride out a storage outage",
    };

    private static readonly Dictionary<string, string> Forbidden = new(StringComparer.Ordinal)
    {
        [AppSettingNames.Storage] = "a connection string carries the account key, and shared-key access is off: use the identity-based AzureWebJobsStorage__* settings",
        ["APPINSIGHTS_INSTRUMENTATIONKEY"] = "key-based ingestion, and local auth is off: set APPLICATIONINSIGHTS_CONNECTION_STRING",
        ["AzureWebJobsDashboard"] = "a storage connection string for the Functions v1 dashboard",
    };

    // Flex Consumption takes these from functionAppConfig or sets them itself, and rejects or
    // ignores them as app settings.
    private static readonly Dictionary<string, string> FlexForbidden = new(Forbidden, StringComparer.Ordinal)
    {
        ["FUNCTIONS_WORKER_RUNTIME"] = "Flex Consumption takes the worker runtime from functionAppConfig.runtime.name",
        ["FUNCTIONS_WORKER_RUNTIME_VERSION"] = "Flex Consumption takes the .NET version from functionAppConfig.runtime.version",
        ["FUNCTIONS_EXTENSION_VERSION"] = "Flex Consumption sets the host version itself",
        ["WEBSITE_RUN_FROM_PACKAGE"] = "Flex Consumption runs the package from functionAppConfig.deployment",
        ["WEBSITE_CONTENTAZUREFILECONNECTIONSTRING"] = "Flex Consumption has no content share (and this carries a key)",
        ["WEBSITE_CONTENTSHARE"] = "Flex Consumption has no content share",
        ["WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT"] = "Flex Consumption scales by functionAppConfig.scaleAndConcurrency",
        ["SCM_DO_BUILD_DURING_DEPLOYMENT"] = "Flex Consumption does not build on Kudu",
        ["ENABLE_ORYX_BUILD"] = "Flex Consumption does not build with Oryx",
    };

    private static SharedCode Shared { get; } = SharedCode.Load(SharedSource);

    internal static IReadOnlyList<SettingRead> FunctionAppReads()
    {
        var names = AppSettingNames.All.Select(n => new SettingRead(n, "src/Shared/Configuration/Settings.cs (AppSettingNames)"));
        return Merge(CodeSettings.Scan(FunctionsCode).Reads, CodeSettings.Scan(SharedSource).Reads, names);
    }

    internal static IReadOnlyList<SettingRead> WorkerReads()
    {
        if (!Directory.Exists(WorkerCode))
        {
            var contract = WorkerContract.Select(n => new SettingRead(n, "the worker's contract (issue 10, DESIGN.md section 9)"));
            return Merge(contract, Shared.ReachedFrom(WorkerContractIdentifiers));
        }
        var worker = CodeSettings.Scan(WorkerCode);
        return Merge(worker.Reads, Shared.ReachedFrom(worker.Identifiers));
    }

    private async Task<SettingsCheck> FunctionAppCheckAsync()
    {
        var deployment = await deployments.SnapshotAsync(Scenario.Dev);
        var site = deployment.Single("Microsoft.Web/sites");
        var set = deployment.FunctionAppSettings().Keys.ToHashSet(StringComparer.Ordinal);
        // What FUNCTIONS_WORKER_RUNTIME(_VERSION) say elsewhere, Flex Consumption says in functionAppConfig.
        if (site.Find("properties", "functionAppConfig", "runtime", "name") is not null)
        {
            set.Add("FUNCTIONS_WORKER_RUNTIME");
            set.Add("FUNCTIONS_WORKER_RUNTIME_VERSION");
        }
        return new SettingsCheck
        {
            SetBy = "modules/functionApp.bicep",
            ReadBy = "src/Functions and src/Shared",
            Reads = FunctionAppReads(),
            Set = set,
            ReadByPlatform = FunctionAppPlatform,
            SafeDefaults = StorageDefaults,
            Forbidden = Forbidden,
            PlatformPrefixes = ["AzureFunctionsJobHost__"],
            CodeLanded = Directory.Exists(FunctionsCode),
        };
    }

    private static SettingsCheck WorkerCheck(string setBy, IEnumerable<string> set) => new()
    {
        SetBy = setBy,
        ReadBy = Directory.Exists(WorkerCode) ? "src/GpuWorker and the Lepton.Shared code it uses" : "the worker's contract",
        Reads = WorkerReads(),
        Set = set.ToHashSet(StringComparer.Ordinal),
        ReadByPlatform = WorkerPlatform,
        SafeDefaults = WorkerDefaults,
        Forbidden = Forbidden,
        PlatformPrefixes = ImagePlatformPrefixes,
        CodeLanded = Directory.Exists(WorkerCode),
    };

    private static IReadOnlyDictionary<string, string> ImageEnv(string image) =>
        Dockerfile.Parse(File.ReadAllText(Path.Combine(Repository.DockerDir, image))).Stages[^1].Environment();

    [Fact]
    public async Task The_Function_App_sets_every_setting_its_code_reads_and_nothing_else()
    {
        var check = await FunctionAppCheckAsync();
        Assert.Empty(check.Problems());
        // The real app settings never carry what Flex Consumption refuses.
        var appSettings = (await deployments.SnapshotAsync(Scenario.Dev)).FunctionAppSettings().Keys;
        Assert.DoesNotContain(appSettings, FlexForbidden.ContainsKey);
    }

    [Fact]
    public async Task The_worker_sets_every_setting_its_code_reads_and_nothing_else()
    {
        var image = ImageEnv("worker.gpu.Dockerfile").Keys.ToList();
        var modes = new List<IReadOnlyCollection<string>>();
        foreach (var scenario in Scenario.WorkerAuthModes)
        {
            var env = (await deployments.SnapshotAsync(scenario)).WorkerEnv().Keys.ToList();
            modes.Add(env);
            // Everything one deployment sets is read by something.
            var setOnly = WorkerCheck($"modules/workerApp.bicep ({scenario.Name})", env).Problems()
                .Where(p => p.StartsWith("modules/workerApp.bicep", StringComparison.Ordinal));
            Assert.Empty(setOnly);
        }
        // Everything the worker reads is set by the template in some auth mode, or by its image.
        Assert.Empty(WorkerCheck("modules/workerApp.bicep and docker/worker.gpu.Dockerfile", modes.SelectMany(m => m).Concat(image)).Problems());
    }

    [Theory]
    [InlineData("worker.gpu.Dockerfile")]
    [InlineData("worker.cpu.Dockerfile")]
    public void The_worker_images_set_only_settings_something_reads(string image)
    {
        var problems = WorkerCheck($"docker/{image}", ImageEnv(image).Keys).Problems()
            .Where(p => p.StartsWith($"docker/{image} sets", StringComparison.Ordinal));
        Assert.Empty(problems);
    }

    [Fact]
    public async Task A_forgotten_setting_and_a_setting_nothing_reads_are_caught()
    {
        var check = await FunctionAppCheckAsync();
        var set = check.Set.Where(n => n != AppSettingNames.CacheDir).Append("LEPTON_CACHE_DIRECTORY").ToHashSet(StringComparer.Ordinal);
        Assert.Equal(
            [
                $"{AppSettingNames.CacheDir} is read at src/Shared/Configuration/Settings.cs:{Line(AppSettingNames.CacheDir)}, but modules/functionApp.bicep does not set it: set it there if Azure needs a value other than the code's default, or list it in the safe defaults of SettingsTests with the reason the default is right in Azure",
                "modules/functionApp.bicep sets LEPTON_CACHE_DIRECTORY, but nothing in src/Functions and src/Shared reads it: remove it, or, if the code builds the name at run time, spell the name out as a constant so this check can see it",
            ],
            (check with { Set = set }).Problems().Except(check.Problems()));
    }

    [Fact]
    public async Task A_key_based_connection_string_is_caught()
    {
        var check = await FunctionAppCheckAsync();
        var set = check.Set.Where(n => !n.StartsWith(AppSettingNames.Storage + "__", StringComparison.Ordinal)).Append(AppSettingNames.Storage).ToHashSet(StringComparer.Ordinal);
        var problems = (check with { Set = set }).Problems();
        Assert.Equal($"modules/functionApp.bicep sets AzureWebJobsStorage: {Forbidden[AppSettingNames.Storage]}", problems[0]);
        Assert.Contains(problems, p => p.StartsWith($"{AppSettingNames.StorageAccountName} is read at", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_stale_safe_default_is_caught_once_the_code_exists()
    {
        var check = await FunctionAppCheckAsync() with { CodeLanded = true };
        var defaults = new Dictionary<string, string>(StorageDefaults) { ["LEPTON_GONE"] = "no longer read" };
        Assert.Equal(
            ["LEPTON_GONE is listed as a safe default, but nothing in src/Functions and src/Shared reads it any more: remove it from the list"],
            (check with { SafeDefaults = defaults }).Problems().Except(check.Problems()));
    }

    [Fact]
    public void The_worker_reaches_the_shared_storage_settings_through_AddLeptonStorage()
    {
        var reached = Shared.ReachedFrom(["AddLeptonStorage"]).Select(r => r.Name).ToList();
        Assert.Contains(AppSettingNames.StorageAccountName, reached);
        Assert.Contains(AppSettingNames.StorageClientId, reached);
        Assert.Contains(AppSettingNames.MaxModelBytes, reached);
        Assert.Contains(AppSettingNames.CacheDir, reached);
        Assert.Contains(AppSettingNames.StorageTimeoutSeconds, reached);
        // Only the Functions host uses queues (the Durable task hub): the worker never reads this.
        Assert.DoesNotContain(AppSettingNames.StorageQueueServiceUri, reached);
        Assert.Empty(Shared.ReachedFrom(["NothingShared"]));
    }

    [Fact]
    public void Only_real_literals_and_constants_count_as_reads()
    {
        var scan = CodeSettings.Scan([("/virtual/Code.cs", """"
            // "LEPTON_IN_A_COMMENT" is not read
            /// <summary>Reads <c>LEPTON_IN_A_DOC</c>.</summary>
            class C
            {
                const string Prefix = "LEPTON_WORKER_";
                string Port(IConfiguration c) => c[Prefix + "PORT"];
                string Host(IConfiguration c) => c["LEPTON_WORKER_HOST"];
                string Account(IConfiguration c) => c["AzureWebJobsStorage:accountName"];
                string Cache => AppSettingNames.CacheDir;
                string Raw => """LEPTON_RAW""";
                string Interpolated(int i) => $"LEPTON_NOT_{i}";
                [TimerTrigger("%LEPTON_METRICS_RETENTION_SCHEDULE%")] void Timer() { }
            }
            """")]);
        Assert.Equal(
            ["AzureWebJobsStorage__accountName", AppSettingNames.CacheDir, AppSettingNames.MetricsRetentionSchedule, "LEPTON_RAW", "LEPTON_WORKER_HOST"],
            scan.Reads.Select(r => r.Name));
        Assert.EndsWith("virtual/Code.cs:7", scan.Reads.Single(r => r.Name == "LEPTON_WORKER_HOST").Where, StringComparison.Ordinal);
    }

    private static List<SettingRead> Merge(params IEnumerable<SettingRead>[] sources) => sources
        .SelectMany(s => s)
        .GroupBy(r => r.Name, StringComparer.Ordinal)
        .Select(g => g.First())
        .OrderBy(r => r.Name, StringComparer.Ordinal)
        .ToList();

    // Where Settings.cs declares a constant, for the expected message.
    private static int Line(string setting) => CodeSettings.Scan(SharedSource).Reads.Single(r => r.Name == setting).Where is var where
        ? int.Parse(where[(where.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture)
        : 0;
}
