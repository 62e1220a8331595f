using Lepton.Shared.Configuration;
using Lepton.Shared.Metrics;
using Lepton.Shared.Registry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lepton.Functions.Triggers;

/// <summary>
/// The metric-rollup retention job (DESIGN §8): deletes every model's rollup windows older than
/// <c>LEPTON_METRICS_RETENTION_HOURS</c>, so the <c>metrics</c> table does not grow without bound.
/// Idempotent, so an overlapping or repeated run is harmless.
/// </summary>
public sealed class MetricsRetention(ModelRegistry registry, MetricsStore metrics, IOptions<MetricsRetentionOptions> options, TimeProvider time, ILogger<MetricsRetention> logger)
{
    public async Task<IReadOnlyDictionary<string, int>> ExpireAsync(CancellationToken cancellationToken = default)
    {
        var retention = options.Value;
        var models = await registry.ListModelsAsync(cancellationToken);
        var deleted = await metrics.ExpireAsync(models, time.GetUtcNow(), retention.Retention, cancellationToken);
        Lifecycle.Log.RollupsExpired(logger, retention.RetentionHours, deleted.Count == 0 ? "none" : string.Join(", ", deleted.Select(p => $"{p.Key}={p.Value}")));
        return deleted;
    }
}
