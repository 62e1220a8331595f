using Lepton.Shared;
using Lepton.Shared.Configuration;
using Microsoft.Extensions.Configuration;

namespace Lepton.Cli.Api;

/// <summary>
/// Where the CLI talks to: the local stack by default (API on 127.0.0.1:7071, worker on
/// 127.0.0.1:8000, the stack's key from <c>.lepton/api-key</c>, Azurite's connection string), or
/// Azure with <c>--api-url</c>/<c>--key</c> (<c>LEPTON_API_URL</c>, <c>LEPTON_API_KEY</c>) and the
/// storage settings the Functions app uses (<c>AzureWebJobsStorage</c> or <c>AzureWebJobsStorage__*</c>).
/// </summary>
public sealed record ClientSettings
{
    public const string DefaultApiUrl = "http://127.0.0.1:7071";
    public const string DefaultWorkerUrl = "http://127.0.0.1:8000";
    public const string ApiUrlVariable = "LEPTON_API_URL";
    public const string ApiKeyVariable = "LEPTON_API_KEY";
    public const string WorkerUrlVariable = "LEPTON_WORKER_URL";
    public const string DataDirVariable = "LEPTON_DEV_DATA_DIR";

    public string ApiUrl { get; init; } = DefaultApiUrl;

    public string WorkerUrl { get; init; } = DefaultWorkerUrl;

    /// <summary>The key sent to the API (<c>x-functions-key</c>) and the worker (bearer); never printed.</summary>
    public string? Key { get; init; }

    public bool IsLocal => IsLoopback(ApiUrl);

    /// <summary>Where the local stack writes its generated key.</summary>
    public static string LocalKeyPath =>
        Path.Combine(Environment.GetEnvironmentVariable(DataDirVariable) is { Length: > 0 } dir ? dir : ".lepton", "api-key");

    /// <summary>Options first, then the environment, then the local stack's defaults.</summary>
    public static ClientSettings Resolve(string? apiUrl, string? key, string? workerUrl)
    {
        var settings = new ClientSettings
        {
            ApiUrl = apiUrl ?? Env(ApiUrlVariable) ?? DefaultApiUrl,
            WorkerUrl = workerUrl ?? Env(WorkerUrlVariable) ?? DefaultWorkerUrl,
        };
        foreach (var url in new[] { settings.ApiUrl, settings.WorkerUrl })
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                throw new InvalidInputException($"'{url}' is not an http(s) URL; pass e.g. --api-url https://<app>.azurewebsites.net");
            }
        }
        var resolvedKey = key ?? Env(ApiKeyVariable);
        if (resolvedKey is null && settings.IsLocal && File.Exists(LocalKeyPath))
        {
            resolvedKey = File.ReadAllText(LocalKeyPath).Trim();
        }
        return settings with { Key = resolvedKey };
    }

    /// <summary>
    /// Storage for uploads and metrics: an explicit connection string, else the Functions settings
    /// in the environment, else the local stack's Azurite on its default ports.
    /// </summary>
    public static StorageOptions Storage(string? connectionString)
    {
        if (connectionString is { Length: > 0 })
        {
            return new StorageOptions { ConnectionString = connectionString };
        }
        try
        {
            return StorageOptions.FromConfiguration(new ConfigurationBuilder().AddEnvironmentVariables().Build());
        }
        catch (ConfigurationException)
        {
            return new StorageOptions { ConnectionString = LocalStack.Azurite.ConnectionStringFor(10000, 10001, 10002) };
        }
    }

    private static bool IsLoopback(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.IsLoopback || uri.Host == "localhost");

    private static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

    public override string ToString() => $"ClientSettings {{ ApiUrl = {ApiUrl}, WorkerUrl = {WorkerUrl}, Key = {(Key is null ? "none" : "***")} }}";
}
