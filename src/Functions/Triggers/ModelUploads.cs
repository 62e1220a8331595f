using System.Text.Json.Nodes;
using Lepton.Functions.Lifecycle;
using Lepton.Shared;
using Lepton.Shared.Models;
using Lepton.Shared.Storage;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging;

namespace Lepton.Functions.Triggers;

/// <summary>
/// What a new blob in the <c>models</c> container does: only <c>models/{model}/{version}/model.onnx</c>
/// starts a lifecycle (manifests and other files are ignored, a badly named upload is logged and
/// dropped); the start is idempotent per content, so Event Grid's at-least-once delivery never
/// runs a second lifecycle for the same upload.
/// </summary>
public sealed class ModelUploads(ModelStore store, LifecycleStarter starter, ILogger<ModelUploads> logger)
{
    public const string Actor = "blob-trigger";

    /// <summary>Starts the lifecycle of an upload; returns its instance id, or <c>null</c> for a blob that is not a model upload.</summary>
    public async Task<string?> HandleAsync(DurableTaskClient client, string blobName, CancellationToken cancellationToken = default)
    {
        var path = blobName.Trim('/');
        if (path.StartsWith(StorageLayout.ModelsContainer + "/", StringComparison.Ordinal))
        {
            path = path[(StorageLayout.ModelsContainer.Length + 1)..];
        }
        if (!path.EndsWith("/" + ModelStore.ModelFile, StringComparison.Ordinal))
        {
            return null;
        }
        string model, version;
        try
        {
            (model, version) = ModelStore.ParseModelBlobPath(path);
        }
        catch (InvalidInputException error)
        {
            Lifecycle.Log.IgnoredBlob(logger, blobName.Length > 200 ? blobName[..200] : blobName, error.Message);
            return null;
        }
        var stored = await store.FetchModelAsync(model, version, cancellationToken);
        var started = await starter.StartAsync(client, new LifecycleInput(model, version, stored.Sha256, new JsonObject(), Actor), cancellationToken);
        return started.InstanceId;
    }
}
