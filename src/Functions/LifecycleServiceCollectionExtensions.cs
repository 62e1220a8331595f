using Azure.Monitor.OpenTelemetry.Exporter;
using Lepton.Functions.Http;
using Lepton.Functions.Lifecycle;
using Lepton.Functions.Lifecycle.Activities;
using Lepton.Functions.Triggers;
using Lepton.Shared;
using Lepton.Shared.Configuration;
using Lepton.Shared.Rollout;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Converters;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Resources;

namespace Lepton.Functions;

/// <summary>
/// The control plane's registrations, one call per composition root (STYLE §1): the Functions
/// app's <c>Program.cs</c> and a standalone host (the local stack, the tests) both call
/// <see cref="AddLeptonLifecycle"/>; a standalone host then adds a DurableTask worker with
/// <see cref="LifecycleRegistry.AddLeptonLifecycle"/> and maps the HTTP API with
/// <see cref="ControlApiEndpoints.MapLeptonControlApi"/>.
/// </summary>
public static class LifecycleServiceCollectionExtensions
{
    /// <summary>The setting App Service sets when its authentication is on (its principal headers can then be trusted).</summary>
    public const string EasyAuthEnabledSetting = "WEBSITE_AUTH_ENABLED";

    /// <param name="services">The host's services.</param>
    /// <param name="unidentifiedActor">The audit actor of a request whose identity the host does not pass on (see <see cref="ControlApiOptions"/>).</param>
    public static IServiceCollection AddLeptonLifecycle(this IServiceCollection services, string unidentifiedActor = "anonymous")
    {
        services.AddLeptonStorage();
        services.TryAddSingleton(sp => new RolloutOperations(sp.GetRequiredService<Shared.Registry.ModelRegistry>()));
        services.TryAddSingleton(sp => new RolloutRepair(sp.GetRequiredService<Shared.Registry.ModelRegistry>(), sp.GetRequiredService<RolloutOperations>()));
        services.TryAddSingleton<LifecycleStarter>();
        services.TryAddSingleton<ModelUploads>();
        services.TryAddSingleton<MetricsRetention>();
        services.TryAddSingleton<ControlApi>();
        services.AddSettings(configuration => new ControlApiOptions
        {
            TrustEasyAuthHeaders = Settings.Flag(configuration, EasyAuthEnabledSetting, fallback: false),
            UnidentifiedActor = unidentifiedActor,
        });
        services.TryAddSingleton(sp => sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<ControlApiOptions>>().Value);
        // Payloads carry NaN (an idle version's p95): the standalone worker and client serialize
        // with Lepton's conventions. (The Functions app sets its worker serializer to the same.)
        services.TryAddSingleton<DataConverter>(new JsonDataConverter(LeptonJson.Options));
        services.TryAddTransient<RegisterActivity>();
        services.TryAddTransient<ValidateActivity>();
        services.TryAddTransient<TransitionActivity>();
        services.TryAddTransient<EvaluateShardActivity>();
        services.TryAddTransient<CompareActivity>();
        services.TryAddTransient<CheckSlotActivity>();
        services.TryAddTransient<WarmStatusActivity>();
        services.TryAddTransient<SetTrafficActivity>();
        services.TryAddTransient<RoutesAppliedActivity>();
        services.TryAddTransient<DecideWindowActivity>();
        services.TryAddTransient<PromoteActivity>();
        services.TryAddTransient<RollbackActivity>();
        services.TryAddTransient<ReinstateActivity>();
        services.TryAddTransient<ReportActivity>();
        services.TryAddTransient<RetireActivity>();
        return services;
    }

    /// <summary>
    /// OpenTelemetry tracing of the lifecycle (a span per stage transition, plus DurableTask's own):
    /// exported to Azure Monitor when <c>APPLICATIONINSIGHTS_CONNECTION_STRING</c> is set; without
    /// it nothing is exported and nothing fails.
    /// </summary>
    public static IServiceCollection AddLeptonTelemetry(this IServiceCollection services, IConfiguration configuration, string serviceName)
    {
        var connectionString = Settings.Text(configuration, AppSettingNames.AppInsightsConnectionString);
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName))
            .WithTracing(tracing =>
            {
                tracing.AddSource(LifecycleTelemetry.SourceName, "Microsoft.DurableTask");
                if (connectionString is not null)
                {
                    tracing.AddAzureMonitorTraceExporter(options =>
                    {
                        options.ConnectionString = connectionString;
                        // Transitions are few and each one matters: export every span rather than
                        // the exporter's default rate-limited sample.
                        options.TracesPerSecond = null;
                        options.SamplingRatio = 1.0F;
                    });
                }
            });
        return services;
    }
}
