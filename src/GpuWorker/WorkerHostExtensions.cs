using System.Net;
using Azure.Monitor.OpenTelemetry.Exporter;
using Lepton.GpuWorker.Auth;
using Lepton.GpuWorker.Background;
using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.DataPlane;
using Lepton.GpuWorker.Grpc;
using Lepton.GpuWorker.Http;
using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Serving;
using Lepton.Shared;
using Lepton.Shared.Configuration;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Lepton.GpuWorker;

/// <summary>How the replica discovers execution providers; tests replace it to exercise the CUDA choice without a GPU.</summary>
public sealed record ProviderDiscovery(Func<IReadOnlyList<string>> Offered, Func<int> CudaDevices)
{
    public static ProviderDiscovery System { get; } = new(ExecutionProviders.Offered, () => ExecutionProviders.VisibleCudaDevices());
}

/// <summary>The worker's composition root: everything <c>Program.cs</c> registers and maps, in one place.</summary>
public static class WorkerHostExtensions
{
    public const string ServiceName = "lepton-gpuworker";

    /// <summary>
    /// Call first thing in <c>Main</c>. On a single CPU an idle thread-pool thread spinning for work
    /// steals the only core from the request it waits for: spinning is turned off there.
    /// </summary>
    public static void TuneRuntimeForCpus()
    {
        if (Environment.ProcessorCount == 1)
        {
            AppContext.SetData("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit", 0);
        }
    }

    /// <summary>
    /// Registers options (read from <c>LEPTON_WORKER_*</c> and the shared settings, validated at
    /// start naming the setting), Kestrel's two listeners (HTTP/1.1 for the OIP routes, HTTP/2 for
    /// gRPC), the data plane, background loops, auth, metrics and telemetry.
    /// </summary>
    public static WebApplicationBuilder AddLeptonWorker(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        // Per-request framework logs (request starting/finished) cost more than a tiny model's inference.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // Auth decides which handlers exist, so it is read (and refused) now, before the host is built.
        var auth = AuthOptions.FromConfiguration(builder.Configuration);
        services.AddSingleton(auth);
        services.AddLeptonStorage();
        services.AddSettings(ServerOptions.FromConfiguration);
        services.AddSettings(LoaderOptions.FromConfiguration);
        services.AddSettings(ExecutionOptions.FromConfiguration);
        services.AddSettings(InferenceOptions.FromConfiguration);
        services.AddSettings(ReportingOptions.FromConfiguration);
        services.AddSettings(WorkerStorageGuard.FromConfiguration);
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<ServerOptions>>().Value);
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<LoaderOptions>>().Value);
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<ExecutionOptions>>().Value);
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<InferenceOptions>>().Value);
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<ReportingOptions>>().Value);
        // One guard for every storage call of the background loops (and the pinned path's lookups):
        // a deadline per call and a circuit breaker, over the SDK's retry.
        services.AddSingleton(sp => new StorageGuard(
            "worker", sp.GetRequiredService<IOptions<StorageGuardOptions>>().Value, sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Lepton.GpuWorker.Storage")));

        services.TryAddSingleton(ProviderDiscovery.System);
        services.AddSingleton(sp =>
        {
            var discovery = sp.GetRequiredService<ProviderDiscovery>();
            return ExecutionProviders.Choose(sp.GetRequiredService<ExecutionOptions>(), discovery.Offered(), discovery.CudaDevices());
        });
        services.AddSingleton(sp => new WorkerMetrics(sp.GetRequiredService<ServerOptions>().Replica, sp.GetRequiredService<ProviderChoice>().Name));
        services.AddSingleton(sp => new RollupRecorder(
            sp.GetRequiredService<ServerOptions>().Replica, sp.GetRequiredService<ReportingOptions>().WindowSeconds, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new VersionPool(
            sp.GetRequiredService<ModelRegistry>(), sp.GetRequiredService<ModelStore>(), sp.GetRequiredService<ProviderChoice>(),
            sp.GetRequiredService<ExecutionOptions>(), sp.GetRequiredService<LoaderOptions>(), sp.GetRequiredService<WorkerMetrics>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<InferenceThreads>(), sp.GetRequiredService<ILogger<VersionPool>>()));
        // As many inference threads as batches may run at once over all versions of this replica.
        services.AddSingleton(sp =>
        {
            var choice = sp.GetRequiredService<ProviderChoice>();
            return new InferenceThreads(choice.BatchConcurrency(sp.GetRequiredService<ExecutionOptions>().BatchConcurrency));
        });
        services.AddSingleton<ReplicaState>();
        services.AddSingleton<InferenceDataPlane>();
        services.AddSingleton<InferEndpoint>();
        services.AddSingleton<WorkerEndpoints>();

        // Background loops, off the request path; each also injectable (tests and the drain call them).
        services.AddSingleton<RegistryFollower>();
        services.AddSingleton<HeartbeatPublisher>();
        services.AddSingleton<RollupFlusher>();
        services.AddSingleton<IdleUnloader>();
        services.AddSingleton<DrainCoordinator>();
        services.AddHostedService(sp => sp.GetRequiredService<RegistryFollower>());
        services.AddHostedService(sp => sp.GetRequiredService<HeartbeatPublisher>());
        services.AddHostedService(sp => sp.GetRequiredService<RollupFlusher>());
        services.AddHostedService(sp => sp.GetRequiredService<IdleUnloader>());
        services.AddHostedService(sp => sp.GetRequiredService<DrainCoordinator>());
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            var server = kestrel.ApplicationServices.GetRequiredService<ServerOptions>();
            var endpoints = kestrel.ApplicationServices.GetRequiredService<WorkerEndpoints>();
            kestrel.AddServerHeader = false;
            // The worker enforces its own limit with an OIP error body (413), chunked bodies included.
            kestrel.Limits.MaxRequestBodySize = null;
            endpoints.Http = Listen(kestrel, server.Host, server.Port, HttpProtocols.Http1);
            endpoints.Grpc = Listen(kestrel, server.Host, server.GrpcPort, HttpProtocols.Http2);
        });
        services.AddGrpc(options =>
        {
            options.MaxSendMessageSize = null;
            options.EnableDetailedErrors = false;
        });
        // The same body limit as HTTP: a larger message is refused (RESOURCE_EXHAUSTED) before it is decoded.
        services.AddOptions<global::Grpc.AspNetCore.Server.GrpcServiceOptions>()
            .Configure<ServerOptions>((options, server) => options.MaxReceiveMessageSize = (int)Math.Min(server.MaxBodyBytes, int.MaxValue));
        services.AddWorkerAuth(auth);

        if (Settings.Text(builder.Configuration, AppSettingNames.AppInsightsConnectionString) is { } connection)
        {
            // Azure Monitor only when configured: OpenTelemetry costs nothing on the request path
            // without a listener, and nothing is exported anywhere by default.
            services.AddOpenTelemetry()
                .ConfigureResource(r => r.AddService(ServiceName))
                .WithMetrics(m => m.AddMeter(WorkerMetrics.MeterName).AddAzureMonitorMetricExporter(o => o.ConnectionString = connection))
                .WithTracing(t => t.AddAspNetCoreInstrumentation().AddAzureMonitorTraceExporter(o => o.ConnectionString = connection));
        }
        return builder;
    }

    private static Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions Listen(KestrelServerOptions kestrel, string host, int port, HttpProtocols protocols)
    {
        Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? captured = null;
        var address = host switch
        {
            "localhost" => IPAddress.Loopback,
            "" or "*" or "0.0.0.0" => IPAddress.Any,
            _ when IPAddress.TryParse(host, out var parsed) => parsed,
            _ => throw new ConfigurationException($"{WorkerSettingNames.Host} must be an IP address (or localhost), got '{host}'"),
        };
        kestrel.Listen(address, port, listen =>
        {
            listen.Protocols = protocols;
            captured = listen;
        });
        return captured!;
    }

    /// <summary>Maps the OIP HTTP routes, <c>/metrics</c> and the gRPC service, with auth when configured.</summary>
    public static WebApplication MapLeptonWorker(this WebApplication app)
    {
        var auth = app.Services.GetRequiredService<AuthOptions>();
        if (auth.Mode != AuthMode.None)
        {
            app.UseAuthentication();
            app.UseAuthorization();
        }
        app.MapOipHttp(auth, app.Services.GetRequiredService<WorkerMetrics>());
        var grpc = app.MapGrpcService<GrpcInferenceService>();
        if (auth.Mode != AuthMode.None)
        {
            grpc.RequireAuthorization(WorkerPolicies.Infer);
        }
        var endpoints = app.Services.GetRequiredService<WorkerEndpoints>();
        app.Lifetime.ApplicationStarted.Register(endpoints.MarkBound);
        return app;
    }
}
