using System.Text.Json.Nodes;
using Lepton.GpuWorker.Auth;
using Lepton.GpuWorker.DataPlane;
using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Serving;
using Lepton.GpuWorker.Tensors;
using Lepton.Shared;
using Prometheus;

namespace Lepton.GpuWorker.Http;

/// <summary>
/// The Open Inference Protocol over HTTP (KServe v2 / Triton) with Triton's model configuration,
/// repository index and statistics extensions: thin handlers over <see cref="InferenceDataPlane"/>.
/// Health is open; everything else needs the <c>infer</c> permission, pinned inference and
/// statistics the <c>admin</c> one, <c>/metrics</c> as configured.
/// </summary>
public static class OipHttpEndpoints
{
    public static IEndpointRouteBuilder MapOipHttp(this IEndpointRouteBuilder app, AuthOptions auth, WorkerMetrics metrics)
    {
        var infer = app.ServiceProvider.GetRequiredService<InferEndpoint>();
        var secured = auth.Mode != AuthMode.None;

        T Guard<T>(T endpoint, string policy)
            where T : IEndpointConventionBuilder => secured ? endpoint.RequireAuthorization(policy) : endpoint;

        // Inference routes first: they carry nearly all traffic.
        Guard(app.MapPost("/v2/models/{model}/infer", infer.HandleAsync), WorkerPolicies.Infer);
        Guard(app.MapPost("/v2/models/{model}/versions/{version}/infer", infer.HandleAsync), WorkerPolicies.Admin);

        app.MapGet("/v2/health/live", context => HttpResults.WriteJsonAsync(context, new JsonObject { ["live"] = true }, HttpResults.RequestId(context)));
        app.MapGet("/v2/health/ready", Ready);
        Guard(app.MapGet("/v2", ServerMetadata), WorkerPolicies.Infer);
        Guard(app.MapGet("/v2/models/{model}", ModelMetadata), WorkerPolicies.Infer);
        Guard(app.MapGet("/v2/models/{model}/versions/{version}", ModelMetadata), WorkerPolicies.Infer);
        Guard(app.MapGet("/v2/models/{model}/ready", ModelReady), WorkerPolicies.Infer);
        Guard(app.MapGet("/v2/models/{model}/versions/{version}/ready", ModelReady), WorkerPolicies.Infer);
        Guard(app.MapGet("/v2/models/{model}/config", ModelConfig), WorkerPolicies.Infer);
        Guard(app.MapGet("/v2/models/{model}/versions/{version}/config", ModelConfig), WorkerPolicies.Infer);
        Guard(app.MapPost("/v2/repository/index", RepositoryIndex), WorkerPolicies.Infer);
        Guard(app.MapGet("/v2/models/stats", Statistics), WorkerPolicies.Admin);
        Guard(app.MapGet("/v2/models/{model}/stats", Statistics), WorkerPolicies.Admin);
        Guard(app.MapGet("/v2/models/{model}/versions/{version}/stats", Statistics), WorkerPolicies.Admin);
        var scrape = app.MapMetrics("/metrics", metrics.Registry);
        if (secured && auth.MetricsRequireAdmin)
        {
            scrape.RequireAuthorization(WorkerPolicies.Admin);
        }
        return app;
    }

    private static InferenceDataPlane Plane(HttpContext context) => context.RequestServices.GetRequiredService<InferenceDataPlane>();

    private static (string Model, string? Version) Target(HttpContext context)
    {
        var values = context.Request.RouteValues;
        return ((string)values["model"]!, values.TryGetValue("version", out var v) ? (string?)v : null);
    }

    private static async Task Guarded(HttpContext context, string? version, Func<string, Task> handle)
    {
        var requestId = HttpResults.RequestId(context);
        try
        {
            await handle(requestId);
        }
        catch (Exception error)
        {
            var log = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(OipHttpEndpoints));
            await HttpResults.WriteErrorAsync(context, error, requestId, version, log);
        }
    }

    /// <summary>
    /// Ready once the first registry sync is done and the routed versions are warm, until draining starts. A storage outage does not
    /// make the replica unready: it keeps serving the routes and ready versions it last knew (taking
    /// it out of rotation would turn a storage outage into an inference outage); the answer says
    /// whether storage answers now, and since when it has not.
    /// </summary>
    private static Task Ready(HttpContext context)
    {
        var plane = Plane(context);
        var state = plane.State;
        if (state.Ready)
        {
            var body = new JsonObject { ["ready"] = true, ["storage_available"] = plane.Storage.Available };
            if (plane.Storage.UnavailableSince is { } since)
            {
                body["storage_unavailable_since"] = since.ToString("O", System.Globalization.CultureInfo.InvariantCulture);
            }
            return HttpResults.WriteJsonAsync(context, body, HttpResults.RequestId(context));
        }
        context.Response.Headers.RetryAfter = "1";
        var reason = state.Draining ? "draining"
            : state.Synced ? "loading the versions the routes serve"
            : "first sync with the registry pending";
        return HttpResults.WriteJsonAsync(context, new JsonObject { ["ready"] = false, ["reason"] = reason }, HttpResults.RequestId(context), status: 503);
    }

    private static Task ServerMetadata(HttpContext context)
    {
        var info = Plane(context).Server();
        return HttpResults.WriteJsonAsync(context, new JsonObject
        {
            ["name"] = info.Name,
            ["version"] = info.Version,
            ["extensions"] = new JsonArray([.. info.Extensions.Select(e => (JsonNode)e)]),
            ["replica"] = info.Replica,
            ["provider"] = info.Provider,
            ["provider_reason"] = info.ProviderReason,
        }, HttpResults.RequestId(context));
    }

    private static Task ModelMetadata(HttpContext context)
    {
        var (model, version) = Target(context);
        return Guarded(context, version, async requestId =>
        {
            var info = await Plane(context).ModelAsync(model, version);
            await HttpResults.WriteJsonAsync(context, MetadataJson(info), requestId, info.Version);
        });
    }

    /// <summary>KServe/Triton model metadata, with Lepton's serving parameters.</summary>
    public static JsonObject MetadataJson(ModelInfo info)
    {
        var routes = info.Routes is { } r
            ? new JsonObject
            {
                ["production"] = r.Production,
                ["candidate"] = r.Candidate,
                ["candidate_weight_bp"] = r.CandidateWeightBp,
                ["shadow"] = r.Shadow,
                ["shadow_fraction_bp"] = r.ShadowFractionBp,
                ["sticky_header"] = r.StickyHeader,
                ["generation"] = r.Generation,
            }
            : null;
        return new JsonObject
        {
            ["name"] = info.Name,
            ["versions"] = new JsonArray([.. info.ReadyVersions.Select(v => (JsonNode)v)]),
            ["platform"] = ModelInfo.Platform,
            ["inputs"] = Tensors(info.Inputs),
            ["outputs"] = Tensors(info.Outputs),
            ["parameters"] = new JsonObject
            {
                ["version"] = info.Version,
                ["provider"] = info.Provider,
                ["max_batch_size"] = info.MaxBatchSize,
                ["max_delay_ms"] = info.MaxDelayMs,
                ["footprint_bytes"] = info.FootprintBytes,
                ["routes"] = routes,
            },
        };
    }

    private static JsonArray Tensors(IReadOnlyList<TensorSpec> specs) => new([.. specs.Select(s => (JsonNode)new JsonObject
    {
        ["name"] = s.Name,
        ["datatype"] = DataTypes.Name(s.Type),
        ["shape"] = new JsonArray([.. s.WireShape.Select(d => (JsonNode)d)]),
    })]);

    private static Task ModelReady(HttpContext context)
    {
        var (model, version) = Target(context);
        return Guarded(context, version, async requestId =>
        {
            var served = await Plane(context).ReadyVersionAsync(model, version);
            await HttpResults.WriteJsonAsync(context, new JsonObject { ["name"] = model, ["version"] = served.Version, ["ready"] = true }, requestId, served.Version);
        });
    }

    private static Task ModelConfig(HttpContext context)
    {
        var (model, version) = Target(context);
        return Guarded(context, version, async requestId =>
        {
            var info = await Plane(context).ModelAsync(model, version);
            await HttpResults.WriteJsonAsync(context, ConfigJson(info), requestId, info.Version);
        });
    }

    /// <summary>
    /// Triton's model configuration: with <c>max_batch_size</c> &gt; 0 the batch dimension is
    /// implicit and <c>dims</c> leave it out, as Triton's clients expect.
    /// </summary>
    public static JsonObject ConfigJson(ModelInfo info)
    {
        var batching = info.Batchable;
        JsonArray Io(IReadOnlyList<TensorSpec> specs) => new([.. specs.Select(s => (JsonNode)new JsonObject
        {
            ["name"] = s.Name,
            ["data_type"] = DataTypes.ConfigName(s.Type),
            ["dims"] = new JsonArray([.. s.WireShape.Skip(batching ? 1 : 0).Select(d => (JsonNode)d)]),
        })]);
        var config = new JsonObject
        {
            ["name"] = info.Name,
            ["platform"] = ModelInfo.Platform,
            ["backend"] = "onnxruntime",
            ["version_policy"] = new JsonObject { ["specific"] = new JsonObject { ["versions"] = new JsonArray(info.Version) } },
            ["max_batch_size"] = batching ? info.MaxBatchSize : 0,
            ["input"] = Io(info.Inputs),
            ["output"] = Io(info.Outputs),
            ["instance_group"] = new JsonArray(new JsonObject
            {
                ["name"] = info.Name,
                ["kind"] = info.Provider == ExecutionProviders.Cuda ? "KIND_GPU" : "KIND_CPU",
                ["count"] = 1,
            }),
            ["parameters"] = new JsonObject { ["lepton_version"] = new JsonObject { ["string_value"] = info.Version } },
        };
        if (batching)
        {
            config["dynamic_batching"] = new JsonObject { ["max_queue_delay_microseconds"] = (long)(info.MaxDelayMs * 1000) };
        }
        return config;
    }

    private static Task RepositoryIndex(HttpContext context) => Guarded(context, null, async requestId =>
    {
        var readyOnly = false;
        if (context.Request.ContentLength is > 0 and <= 4096)
        {
            try
            {
                var body = await JsonNode.ParseAsync(context.Request.Body);
                readyOnly = body?["ready"]?.GetValue<bool>() ?? false;
            }
            catch (Exception error) when (error is System.Text.Json.JsonException or InvalidOperationException or FormatException)
            {
                throw new InvalidInputException("the repository index request body must be a JSON object such as {\"ready\": true}");
            }
        }
        var entries = Plane(context).RepositoryIndex(readyOnly);
        var list = new JsonArray([.. entries.Select(e => (JsonNode)new JsonObject
        {
            ["name"] = e.Name,
            ["version"] = e.Version,
            ["state"] = e.State,
            ["reason"] = e.Reason,
        })]);
        await HttpResults.WriteJsonAsync(context, list, requestId);
    });

    private static Task Statistics(HttpContext context)
    {
        var values = context.Request.RouteValues;
        var model = values.TryGetValue("model", out var m) ? (string?)m : null;
        var version = values.TryGetValue("version", out var v) ? (string?)v : null;
        return Guarded(context, version, async requestId =>
        {
            var entries = Plane(context).Statistics(model, version);
            await HttpResults.WriteJsonAsync(context, new JsonObject { ["model_stats"] = new JsonArray([.. entries.Select(e => (JsonNode)StatisticsJson(e))]) }, requestId);
        });
    }

    public static JsonObject StatisticsJson(VersionStatisticsEntry entry)
    {
        var s = entry.Statistics;
        static JsonObject Duration(long count, long ns) => new() { ["count"] = count, ["ns"] = ns };
        return new JsonObject
        {
            ["name"] = entry.Name,
            ["version"] = entry.Version,
            ["last_inference"] = s.LastInferenceMs,
            ["inference_count"] = s.Inferences,
            ["execution_count"] = s.Executions,
            ["inference_stats"] = new JsonObject
            {
                ["success"] = Duration(s.SuccessCount, s.SuccessNs),
                ["fail"] = Duration(s.FailCount, s.FailNs),
                ["queue"] = Duration(s.QueueCount, s.QueueNs),
                ["compute_input"] = Duration(0, 0),
                ["compute_infer"] = Duration(s.Executions, s.ComputeNs),
                ["compute_output"] = Duration(0, 0),
                ["cache_hit"] = Duration(0, 0),
                ["cache_miss"] = Duration(0, 0),
            },
            ["batch_stats"] = new JsonArray(),
        };
    }
}
