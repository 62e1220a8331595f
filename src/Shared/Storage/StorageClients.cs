using Azure;
using Azure.Core;
using Azure.Data.Tables;
using Azure.Identity;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Lepton.Shared.Configuration;

namespace Lepton.Shared.Storage;

/// <summary>The blob containers and tables Lepton uses (DESIGN.md §2).</summary>
public static class StorageLayout
{
    public const string ModelsContainer = "models";
    public const string DatasetsContainer = "datasets";
    public const string ReportsContainer = "reports";
    public const string VersionsTable = "versions";
    public const string RoutesTable = "routes";
    public const string EventsTable = "events";
    public const string MetricsTable = "metrics";
    public const string WorkersTable = "workers";

    public static readonly IReadOnlyList<string> Containers = [ModelsContainer, DatasetsContainer, ReportsContainer];

    public static readonly IReadOnlyList<string> Tables = [VersionsTable, RoutesTable, EventsTable, MetricsTable, WorkersTable];

    /// <summary>Creates every container and table; safe to call again.</summary>
    public static async Task EnsureAsync(StorageClients clients, CancellationToken cancellationToken = default)
    {
        foreach (var name in Containers)
        {
            await clients.Blobs.GetBlobContainerClient(name).CreateIfNotExistsAsync(PublicAccessType.None, cancellationToken: cancellationToken);
        }
        foreach (var name in Tables)
        {
            await clients.Tables.CreateTableIfNotExistsAsync(name, cancellationToken);
        }
    }
}

/// <summary>
/// The Azure SDK clients of one storage account, built once from <see cref="StorageOptions"/>.
/// This is the only place that turns settings into clients and the one place retry and timeouts are
/// set (exponential backoff with jitter, a per-try network timeout), so every storage call in Lepton
/// behaves the same way under an outage.
/// </summary>
public sealed class StorageClients
{
    public StorageClients(StorageOptions options)
    {
        Options = options;
        var blobOptions = Configure(new BlobClientOptions(), options);
        var tableOptions = Configure(new TableClientOptions(), options);
        if (options.ConnectionString is { } connection)
        {
            Blobs = new BlobServiceClient(connection, blobOptions);
            Tables = new TableServiceClient(connection, tableOptions);
        }
        else
        {
            var credential = CreateCredential(options);
            Blobs = new BlobServiceClient(options.BlobServiceUri, credential, blobOptions);
            Tables = new TableServiceClient(options.TableServiceUri, credential, tableOptions);
        }
    }

    public StorageOptions Options { get; }

    public BlobServiceClient Blobs { get; }

    public TableServiceClient Tables { get; }

    public BlobContainerClient Container(string name) => Blobs.GetBlobContainerClient(name);

    public TableClient Table(string name) => Tables.GetTableClient(name);

    /// <summary>Whether a failure means storage could not be reached (rather than a refusal to act on).</summary>
    public static bool IsUnavailable(Exception error) => error switch
    {
        RequestFailedException { Status: 0 or 408 or 500 or 502 or 503 or 504 } => true,
        RequestFailedException => false,
        AggregateException aggregate => aggregate.InnerExceptions.All(IsUnavailable),
        HttpRequestException or TaskCanceledException or TimeoutException or IOException => true,
        _ => false,
    };

    private static T Configure<T>(T clientOptions, StorageOptions options)
        where T : ClientOptions
    {
        clientOptions.Retry.Mode = RetryMode.Exponential;
        clientOptions.Retry.MaxRetries = options.MaxRetries;
        clientOptions.Retry.Delay = TimeSpan.FromMilliseconds(200);
        clientOptions.Retry.MaxDelay = TimeSpan.FromSeconds(5);
        clientOptions.Retry.NetworkTimeout = options.NetworkTimeout;
        // Request bodies and URLs may carry SAS tokens in some deployments; never log them.
        clientOptions.Diagnostics.IsLoggingContentEnabled = false;
        return clientOptions;
    }

    private static TokenCredential CreateCredential(StorageOptions options)
    {
        if (string.Equals(options.Credential, "managedidentity", StringComparison.OrdinalIgnoreCase))
        {
            return options.ClientId is { } clientId
                ? new ManagedIdentityCredential(ManagedIdentityId.FromUserAssignedClientId(clientId))
                : new ManagedIdentityCredential(ManagedIdentityId.SystemAssigned);
        }
        return new DefaultAzureCredential(new DefaultAzureCredentialOptions { ManagedIdentityClientId = options.ClientId });
    }
}
