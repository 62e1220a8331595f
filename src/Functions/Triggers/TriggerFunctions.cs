using Azure.Storage.Blobs;
using Lepton.Shared.Configuration;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;

namespace Lepton.Functions.Triggers;

/// <summary>The blob trigger on model uploads and the metric-retention timer.</summary>
public sealed class TriggerFunctions(ModelUploads uploads, MetricsRetention retention)
{
    /// <summary>Event Grid delivers the blob-created event (no container polling); the path filters model files.</summary>
    [Function(Lifecycle.LifecycleNames.ModelBlobTrigger)]
    public Task ModelBlob(
        [BlobTrigger("models/{model}/{version}/model.onnx", Source = BlobTriggerSource.EventGrid, Connection = AppSettingNames.Storage)] BlobClient blob,
        [DurableClient] DurableTaskClient client,
        FunctionContext context) =>
        uploads.HandleAsync(client, $"{blob.BlobContainerName}/{blob.Name}", context.CancellationToken);

    /// <summary>The schedule is the app setting <c>LEPTON_METRICS_RETENTION_SCHEDULE</c> (NCRONTAB with seconds; the Bicep sets it).</summary>
    [Function(Lifecycle.LifecycleNames.MetricsRetentionTimer)]
    public Task ExpireMetricRollups([TimerTrigger("%" + AppSettingNames.MetricsRetentionSchedule + "%")] TimerInfo timer, FunctionContext context) =>
        retention.ExpireAsync(context.CancellationToken);
}
