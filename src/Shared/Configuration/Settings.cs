using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace Lepton.Shared.Configuration;

/// <summary>
/// Every setting name Lepton's control plane and tools read, named as Azure Functions names them,
/// so one set of app settings serves the Functions host and Lepton's code. The infrastructure test
/// checks the Bicep templates set exactly these (plus the worker's own, listed beside its options).
/// </summary>
public static class AppSettingNames
{
    public const string Storage = "AzureWebJobsStorage";
    public const string StorageAccountName = Storage + "__accountName";
    public const string StorageBlobServiceUri = Storage + "__blobServiceUri";
    public const string StorageTableServiceUri = Storage + "__tableServiceUri";
    public const string StorageQueueServiceUri = Storage + "__queueServiceUri";
    public const string StorageCredential = Storage + "__credential";
    public const string StorageClientId = Storage + "__clientId";
    public const string AppInsightsConnectionString = "APPLICATIONINSIGHTS_CONNECTION_STRING";
    public const string MaxModelBytes = "LEPTON_MAX_MODEL_BYTES";
    public const string CacheDir = "LEPTON_CACHE_DIR";
    public const string MetricsRetentionHours = "LEPTON_METRICS_RETENTION_HOURS";
    public const string MetricsRetentionSchedule = "LEPTON_METRICS_RETENTION_SCHEDULE";
    public const string StorageTimeoutSeconds = "LEPTON_STORAGE_TIMEOUT_S";
    public const string StorageRetries = "LEPTON_STORAGE_RETRIES";

    /// <summary>The settings of <c>Lepton.Shared</c> (storage, model store, retention, telemetry).</summary>
    public static readonly IReadOnlyList<string> All =
    [
        Storage, StorageAccountName, StorageBlobServiceUri, StorageTableServiceUri, StorageQueueServiceUri,
        StorageCredential, StorageClientId, AppInsightsConnectionString, MaxModelBytes, CacheDir,
        MetricsRetentionHours, MetricsRetentionSchedule, StorageTimeoutSeconds, StorageRetries,
    ];

    /// <summary>The configuration key of a setting (<c>A__b</c> in the environment is <c>A:b</c>).</summary>
    public static string Key(string setting) => setting.Replace("__", ":", StringComparison.Ordinal);
}

/// <summary>
/// Where the storage account is and how to authenticate to it: a connection string
/// (<c>AzureWebJobsStorage</c>; Azurite locally), or identity-based
/// (<c>AzureWebJobsStorage__accountName</c>, or both <c>__blobServiceUri</c> and
/// <c>__tableServiceUri</c>, with <c>__credential=managedidentity</c> and <c>__clientId</c> for a
/// user-assigned identity) — exactly what the Functions host reads.
/// </summary>
public sealed record StorageOptions
{
    public string? ConnectionString { get; init; }

    public Uri? BlobServiceUri { get; init; }

    public Uri? TableServiceUri { get; init; }

    /// <summary><c>managedidentity</c> selects <c>ManagedIdentityCredential</c>; otherwise <c>DefaultAzureCredential</c>.</summary>
    public string? Credential { get; init; }

    public string? ClientId { get; init; }

    /// <summary>Per-try network timeout of every storage call (the SDK retries after it).</summary>
    public TimeSpan NetworkTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Retries of a failed storage call (exponential backoff with jitter, by the SDK).</summary>
    public int MaxRetries { get; init; } = 3;

    public bool UsesIdentity => ConnectionString is null;

    /// <summary>Reads and validates the settings; throws <see cref="ConfigurationException"/> naming what is missing.</summary>
    public static StorageOptions FromConfiguration(IConfiguration configuration)
    {
        var timeout = Settings.PositiveNumber(configuration, AppSettingNames.StorageTimeoutSeconds, 10);
        var retries = Settings.WholeNumber(configuration, AppSettingNames.StorageRetries, 3, min: 0);
        var common = new StorageOptions { NetworkTimeout = TimeSpan.FromSeconds(timeout), MaxRetries = retries };
        var connection = Settings.Text(configuration, AppSettingNames.Storage);
        if (connection is not null)
        {
            return common with { ConnectionString = connection };
        }
        var account = Settings.Text(configuration, AppSettingNames.StorageAccountName);
        var blob = Settings.Uri(configuration, AppSettingNames.StorageBlobServiceUri);
        var table = Settings.Uri(configuration, AppSettingNames.StorageTableServiceUri);
        if (account is not null)
        {
            blob ??= new Uri($"https://{account}.blob.core.windows.net");
            table ??= new Uri($"https://{account}.table.core.windows.net");
        }
        if (blob is null || table is null)
        {
            throw new ConfigurationException(
                $"storage is not configured: set {AppSettingNames.Storage} to a connection string (for Azurite: "
                + "'UseDevelopmentStorage=true' or the one `make run` prints), or set "
                + $"{AppSettingNames.StorageAccountName} (or both {AppSettingNames.StorageBlobServiceUri} and "
                + $"{AppSettingNames.StorageTableServiceUri}) for identity-based access");
        }
        return common with
        {
            BlobServiceUri = blob,
            TableServiceUri = table,
            Credential = Settings.Text(configuration, AppSettingNames.StorageCredential),
            ClientId = Settings.Text(configuration, AppSettingNames.StorageClientId),
        };
    }

    // Never print the connection string: it holds the account key.
    public override string ToString() => UsesIdentity
        ? $"StorageOptions {{ Blob = {BlobServiceUri}, Table = {TableServiceUri}, Credential = {Credential ?? "default"} }}"
        : "StorageOptions { ConnectionString = *** }";
}

/// <summary>Limits and local cache of the model store.</summary>
public sealed record ModelStoreOptions
{
    public const long DefaultMaxModelBytes = 512L * 1024 * 1024;

    public long MaxModelBytes { get; init; } = DefaultMaxModelBytes;

    /// <summary>Local model cache, keyed by sha256.</summary>
    public string CacheDir { get; init; } = Path.Combine(".lepton", "cache");

    public static ModelStoreOptions FromConfiguration(IConfiguration configuration) => new()
    {
        MaxModelBytes = Settings.WholeNumber(configuration, AppSettingNames.MaxModelBytes, DefaultMaxModelBytes, min: 1),
        CacheDir = Settings.Text(configuration, AppSettingNames.CacheDir) ?? Path.Combine(".lepton", "cache"),
    };
}

/// <summary>
/// How long metric rollups are kept, and when the timer deletes older windows. The retention must
/// outlast the longest evidence a lifecycle reads back (a canary step sums the windows since its
/// weight changed); a week is far beyond any default policy.
/// </summary>
public sealed record MetricsRetentionOptions
{
    /// <summary>NCRONTAB with a seconds field, the only form a Flex Consumption timer accepts: hourly.</summary>
    public const string DefaultSchedule = "0 0 * * * *";

    public int RetentionHours { get; init; } = 7 * 24;

    public string Schedule { get; init; } = DefaultSchedule;

    public TimeSpan Retention => TimeSpan.FromHours(RetentionHours);

    public static MetricsRetentionOptions FromConfiguration(IConfiguration configuration)
    {
        var hours = (int)Settings.WholeNumber(configuration, AppSettingNames.MetricsRetentionHours, 7 * 24, min: 1);
        var raw = Settings.Text(configuration, AppSettingNames.MetricsRetentionSchedule);
        var schedule = raw is null ? DefaultSchedule : string.Join(' ', raw.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        if (schedule.Split(' ').Length != 6)
        {
            throw new ConfigurationException(
                $"{AppSettingNames.MetricsRetentionSchedule} must be an NCRONTAB expression with six fields "
                + $"(second minute hour day month day-of-week, e.g. '{DefaultSchedule}' for hourly), got '{schedule}'");
        }
        return new MetricsRetentionOptions { RetentionHours = hours, Schedule = schedule };
    }
}

/// <summary>Reading typed settings from configuration with errors that name the setting.</summary>
public static class Settings
{
    public static string? Text(IConfiguration configuration, string setting)
    {
        var value = configuration[AppSettingNames.Key(setting)]?.Trim();
        return string.IsNullOrEmpty(value) ? null : value;
    }

    public static long WholeNumber(IConfiguration configuration, string setting, long fallback, long min)
    {
        var raw = Text(configuration, setting);
        if (raw is null)
        {
            return fallback;
        }
        if (!long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            throw new ConfigurationException($"{setting} must be a whole number, got '{raw}'");
        }
        if (value < min)
        {
            throw new ConfigurationException($"{setting} must be at least {min}, got {value}");
        }
        return value;
    }

    public static int WholeNumber(IConfiguration configuration, string setting, int fallback, int min) =>
        checked((int)WholeNumber(configuration, setting, (long)fallback, min));

    public static double PositiveNumber(IConfiguration configuration, string setting, double fallback)
    {
        var raw = Text(configuration, setting);
        if (raw is null)
        {
            return fallback;
        }
        if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value))
        {
            throw new ConfigurationException($"{setting} must be a number, got '{raw}'");
        }
        if (value <= 0)
        {
            throw new ConfigurationException($"{setting} must be positive, got {value}");
        }
        return value;
    }

    public static double NonNegativeNumber(IConfiguration configuration, string setting, double fallback)
    {
        var raw = Text(configuration, setting);
        if (raw is null)
        {
            return fallback;
        }
        if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value) || value < 0)
        {
            throw new ConfigurationException($"{setting} must be a number ≥ 0, got '{raw}'");
        }
        return value;
    }

    public static bool Flag(IConfiguration configuration, string setting, bool fallback)
    {
        var raw = Text(configuration, setting);
        return raw?.ToLowerInvariant() switch
        {
            null => fallback,
            "1" or "true" or "yes" or "on" => true,
            "0" or "false" or "no" or "off" => false,
            _ => throw new ConfigurationException($"{setting} must be true or false, got '{raw}'"),
        };
    }

    public static Uri? Uri(IConfiguration configuration, string setting)
    {
        var raw = Text(configuration, setting);
        if (raw is null)
        {
            return null;
        }
        if (!System.Uri.TryCreate(raw, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
        {
            throw new ConfigurationException($"{setting} must be an absolute http(s) URL, got '{raw}'");
        }
        return uri;
    }
}
