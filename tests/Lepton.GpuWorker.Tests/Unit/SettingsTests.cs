using Lepton.GpuWorker.Auth;
using Lepton.GpuWorker.Configuration;
using Lepton.Shared;
using Microsoft.Extensions.Configuration;

namespace Lepton.GpuWorker.Tests.Unit;

/// <summary>Worker settings: the reference's names and defaults, parsing, clear failures, the name list.</summary>
public sealed class SettingsTests
{
    private static IConfiguration Config(params (string Key, string Value)[] values)
    {
        var settings = new Dictionary<string, string?>();
        foreach (var (key, value) in values)
        {
            settings.TryAdd(key, value);
        }
        return new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
    }

    [Fact]
    public void Defaults_from_an_empty_configuration_are_the_references()
    {
        var c = Config();
        var server = ServerOptions.FromConfiguration(c);
        Assert.Equal(("127.0.0.1", 8000, 8001), (server.Host, server.Port, server.GrpcPort));
        Assert.Equal(64L * 1024 * 1024, server.MaxBodyBytes);
        Assert.Equal(TimeSpan.FromSeconds(1), server.Drain);
        Assert.EndsWith("-8000", server.Replica, StringComparison.Ordinal);
        Assert.Equal("http://127.0.0.1:8000", server.AdvertisedUrl(8000));
        var loader = LoaderOptions.FromConfiguration(c);
        Assert.Empty(loader.Models);
        Assert.Equal((TimeSpan.FromSeconds(2), 4096L * 1024 * 1024, TimeSpan.FromSeconds(60)), (loader.PollInterval, loader.MemoryBudgetBytes, loader.UnloadGrace));
        var execution = ExecutionOptions.FromConfiguration(c);
        Assert.Equal(("auto", 0, 0L, "kNextPowerOfTwo", 0, 1, 2, 0.3), (execution.Provider, execution.CudaDeviceId, execution.CudaMemLimitMb, execution.CudaArenaExtendStrategy, execution.IntraOpThreads, execution.InterOpThreads, execution.BatchConcurrency, execution.InlineBelowMs));
        var inference = InferenceOptions.FromConfiguration(c);
        Assert.Equal((16L * 1024 * 1024, true, true, 64), (inference.MaxElements, inference.NonfiniteIsError, inference.RejectNonfiniteInputs, inference.MaxShadowInFlight));
        var reporting = ReportingOptions.FromConfiguration(c);
        Assert.Equal((TimeSpan.FromSeconds(3), 10, TimeSpan.FromSeconds(2)), (reporting.Heartbeat, reporting.WindowSeconds, reporting.Flush));
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    public void A_wildcard_bind_address_advertises_the_hostname(string wildcard)
    {
        var server = ServerOptions.FromConfiguration(Config(("LEPTON_WORKER_HOST", wildcard)));
        Assert.Equal($"http://{Environment.MachineName}:8000", server.AdvertisedUrl(8000));
    }

    [Fact]
    public void Values_are_parsed()
    {
        var c = Config(
            ("LEPTON_WORKER_HOST", "0.0.0.0"), ("LEPTON_WORKER_PORT", "9000"), ("LEPTON_WORKER_REPLICA_ID", "r1"),
            ("LEPTON_WORKER_MODELS", "digits, fraud-v2"), ("LEPTON_WORKER_POLL_INTERVAL_S", "0.5"), ("LEPTON_WORKER_WINDOW_S", "30"),
            ("LEPTON_WORKER_MEMORY_BUDGET_MB", "512"), ("LEPTON_WORKER_PROVIDER", "cpu"), ("LEPTON_WORKER_CUDA_MEM_LIMIT_MB", "1024"),
            ("LEPTON_WORKER_INTRA_OP_THREADS", "2"), ("LEPTON_WORKER_NONFINITE_IS_ERROR", "false"), ("LEPTON_WORKER_URL", "http://worker-1:9000"),
            ("LEPTON_WORKER_NONFINITE_INPUTS", "allow"), ("LEPTON_WORKER_MAX_ELEMENTS", "1000"), ("LEPTON_WORKER_GRPC_PORT", "9001"));
        var server = ServerOptions.FromConfiguration(c);
        Assert.Equal(("0.0.0.0", 9000, 9001, "r1"), (server.Host, server.Port, server.GrpcPort, server.Replica));
        Assert.Equal("http://worker-1:9000", server.AdvertisedUrl(9000));
        Assert.Equal(["digits", "fraud-v2"], LoaderOptions.FromConfiguration(c).Models);
        Assert.Equal(TimeSpan.FromSeconds(0.5), LoaderOptions.FromConfiguration(c).PollInterval);
        Assert.Equal(30, ReportingOptions.FromConfiguration(c).WindowSeconds);
        Assert.Equal(512L * 1024 * 1024, LoaderOptions.FromConfiguration(c).MemoryBudgetBytes);
        var execution = ExecutionOptions.FromConfiguration(c);
        Assert.Equal(("cpu", 1024L, 2), (execution.Provider, execution.CudaMemLimitMb, execution.EffectiveIntraOpThreads));
        var inference = InferenceOptions.FromConfiguration(c);
        Assert.Equal((false, false, 1000L), (inference.NonfiniteIsError, inference.RejectNonfiniteInputs, inference.MaxElements));
    }

    [Theory]
    [InlineData("LEPTON_WORKER_PORT", "eighty", "LEPTON_WORKER_PORT must be a whole number")]
    [InlineData("LEPTON_WORKER_PORT", "70000", "LEPTON_WORKER_PORT must be a port number")]
    [InlineData("LEPTON_WORKER_WINDOW_S", "0", "LEPTON_WORKER_WINDOW_S must be at least 1")]
    [InlineData("LEPTON_WORKER_POLL_INTERVAL_S", "0.001", "LEPTON_WORKER_POLL_INTERVAL_S must be at least 0.05")]
    [InlineData("LEPTON_WORKER_PROVIDER", "tpu", "LEPTON_WORKER_PROVIDER must be one of auto, cpu, cuda")]
    [InlineData("LEPTON_WORKER_MODELS", "Bad_Name", "LEPTON_WORKER_MODELS")]
    [InlineData("LEPTON_WORKER_NONFINITE_IS_ERROR", "maybe", "true or false")]
    [InlineData("LEPTON_WORKER_NONFINITE_INPUTS", "drop", "LEPTON_WORKER_NONFINITE_INPUTS must be one of reject, allow")]
    [InlineData("LEPTON_WORKER_CUDA_ARENA_EXTEND_STRATEGY", "big", "kNextPowerOfTwo")]
    [InlineData("LEPTON_WORKER_AUTH", "oauth", "LEPTON_WORKER_AUTH must be one of none, key, entra")]
    [InlineData("LEPTON_WORKER_METRICS_AUTH", "public", "LEPTON_WORKER_METRICS_AUTH")]
    public void Bad_values_fail_fast_naming_the_setting(string name, string value, string fragment)
    {
        var c = Config((name, value), ("LEPTON_WORKER_AUTH", name == "LEPTON_WORKER_AUTH" ? value : "none"));
        var error = Assert.ThrowsAny<ConfigurationException>(() =>
        {
            ServerOptions.FromConfiguration(c);
            LoaderOptions.FromConfiguration(c);
            ExecutionOptions.FromConfiguration(c);
            InferenceOptions.FromConfiguration(c);
            ReportingOptions.FromConfiguration(c);
            AuthOptions.FromConfiguration(c);
        });
        Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Api_keys_are_hashes_with_permissions_and_never_printed()
    {
        var keys = AuthOptions.ParseKeys($"{new string('a', 64)}, sha256={new string('B', 64)}:admin");
        Assert.Equal(Permissions.Infer, keys[0].Permissions);
        Assert.Equal(Permissions.Infer | Permissions.Admin, keys[1].Permissions);
        Assert.DoesNotContain("aaaa", keys[0].ToString(), StringComparison.OrdinalIgnoreCase);
        var options = AuthOptions.FromConfiguration(Config(("LEPTON_WORKER_API_KEYS", new string('c', 64))));
        Assert.Equal(AuthMode.Key, options.Mode);
        Assert.DoesNotContain("cccc", options.ToString(), StringComparison.Ordinal);
        Assert.Contains("permission", Assert.Throws<ConfigurationException>(() => AuthOptions.ParseKeys($"{new string('a', 64)}:root")).Message, StringComparison.Ordinal);
        Assert.Contains("LEPTON_WORKER_ENTRA_AUDIENCE", Assert.Throws<ConfigurationException>(() => AuthOptions.FromConfiguration(Config(("LEPTON_WORKER_AUTH", "entra")))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_setting_name_is_listed_once_with_the_shared_ones()
    {
        Assert.Equal(WorkerSettingNames.All.Count, WorkerSettingNames.All.Distinct().Count());
        Assert.All(WorkerSettingNames.Own, n => Assert.StartsWith("LEPTON_WORKER_", n, StringComparison.Ordinal));
        Assert.Contains("AzureWebJobsStorage", WorkerSettingNames.All);
        Assert.Contains("LEPTON_CACHE_DIR", WorkerSettingNames.All);
        Assert.Contains("APPLICATIONINSIGHTS_CONNECTION_STRING", WorkerSettingNames.All);
        // Every constant of the class is in the list (nothing read that Bicep could miss).
        var constants = typeof(WorkerSettingNames).GetFields().Where(f => f.IsLiteral && f.Name != nameof(WorkerSettingNames.Prefix)).Select(f => (string)f.GetValue(null)!);
        Assert.Equal(constants.Order(), WorkerSettingNames.Own.Order());
        foreach (var reference in new[]
        {
            "HOST", "PORT", "URL", "REPLICA_ID", "MODELS", "POLL_INTERVAL_S", "HEARTBEAT_S", "WINDOW_S", "FLUSH_S", "MEMORY_BUDGET_MB",
            "UNLOAD_GRACE_S", "MAX_BODY_BYTES", "PROVIDER", "CUDA_DEVICE_ID", "CUDA_MEM_LIMIT_MB", "CUDA_ARENA_EXTEND_STRATEGY",
            "INTRA_OP_THREADS", "INTER_OP_THREADS", "BATCH_CONCURRENCY", "INLINE_BELOW_MS", "NONFINITE_IS_ERROR", "DRAIN_S", "MAX_SHADOW_IN_FLIGHT",
        })
        {
            Assert.Contains("LEPTON_WORKER_" + reference, WorkerSettingNames.Own);
        }
    }
}
