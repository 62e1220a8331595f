using System.Diagnostics;
using System.IO.Compression;
using Lepton.Functions.Triggers;
using Lepton.Shared.Configuration;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Metrics;
using Lepton.Shared.Registry;
using Lepton.Shared.Rollout;
using Lepton.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace Lepton.Functions.Tests.Triggers;

/// <summary>The retention timer's handler on a real Azurite, and the app's telemetry reaching its exporters.</summary>
public sealed class RetentionAndTelemetryTests(AzuriteFixture azurite)
{
    private const long Hour = 3600;
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task The_retention_handler_deletes_every_models_windows_past_the_retention()
    {
        var now = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);
        var registry = new ModelRegistry(azurite.Clients, TimeProvider.System);
        var metrics = new MetricsStore(azurite.Clients);
        var models = new[] { TestNames.Model("ret"), TestNames.Model("ret") };
        foreach (var model in models)
        {
            await registry.RegisterVersionAsync(model, "1.0.0", new string('a', 64), 1, $"{model}/1.0.0/model.onnx", "test", cancellationToken: Token);
            foreach (var ageHours in new[] { 30, 25, 23, 1 })
            {
                await metrics.WriteAsync(new WindowRollup { Model = model, Version = "1.0.0", Replica = "r0", WindowStart = now.ToUnixTimeSeconds() - (ageHours * Hour), WindowSeconds = 10, Requests = 1 }, Token);
            }
        }
        var retention = new MetricsRetention(
            registry, metrics, Options.Create(new MetricsRetentionOptions { RetentionHours = 24 }), new FakeTimeProvider(now), NullLogger<MetricsRetention>.Instance);

        var deleted = await retention.ExpireAsync(Token);

        foreach (var model in models)
        {
            Assert.Equal(2, deleted[model]);
            var kept = await metrics.ReadAsync(model, 0, now.ToUnixTimeSeconds() + Hour, Token);
            Assert.Equal([1 * Hour, 23 * Hour], kept.Select(r => now.ToUnixTimeSeconds() - r.WindowStart).Order());
        }
    }

    private static ServiceProvider Telemetry(string? connectionString, List<Activity>? exported = null)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [AppSettingNames.AppInsightsConnectionString] = connectionString })
            .Build();
        var services = new ServiceCollection();
        services.AddLeptonTelemetry(configuration, "lepton-functions");
        if (exported is not null)
        {
            services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(exported));
        }
        return services.BuildServiceProvider();
    }

    [Fact]
    public async Task Every_transition_is_a_span_the_apps_tracer_provider_exports()
    {
        var exported = new List<Activity>();
        await using var provider = Telemetry(null, exported);
        using var tracer = provider.GetRequiredService<TracerProvider>();
        var registry = new ModelRegistry(azurite.Clients, TimeProvider.System);
        var model = TestNames.Model("otel");
        await registry.RegisterVersionAsync(model, "1.0.0", new string('a', 64), 1, "p", "test", cancellationToken: Token);

        await new RolloutOperations(registry).TransitionAsync(model, "1.0.0", Stage.Validating, Stage.Registered, "validation started", "lifecycle", cancellationToken: Token);
        tracer.ForceFlush();

        var span = Assert.Single(exported, a => Equals(a.GetTagItem(LifecycleTelemetry.ModelTag), model));
        Assert.Equal(LifecycleTelemetry.TransitionSpan, span.DisplayName);
        Assert.Equal("validating", span.GetTagItem(LifecycleTelemetry.ToStageTag));
        Assert.Equal("lepton-functions", tracer.GetResource().Attributes.Single(a => a.Key == "service.name").Value);
    }

    [Fact(Timeout = 60_000)]
    public async Task With_a_connection_string_spans_go_to_azure_monitor_ingestion()
    {
        // A stand-in ingestion endpoint on 127.0.0.1: nothing leaves the machine.
        var received = new List<string>();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var ingestion = builder.Build();
        ingestion.MapPost("/{**path}", async (HttpRequest request) =>
        {
            Stream body = request.Headers.ContentEncoding == "gzip" ? new GZipStream(request.Body, CompressionMode.Decompress) : request.Body;
            using var reader = new StreamReader(body);
            var text = await reader.ReadToEndAsync();
            lock (received)
            {
                received.Add(text);
            }
            return Results.Json(new { itemsReceived = 1, itemsAccepted = 1, errors = Array.Empty<object>() });
        });
        await ingestion.StartAsync(Token);
        var endpoint = ingestion.Urls.Single();
        await using var provider = Telemetry($"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint={endpoint}/");
        using var tracer = provider.GetRequiredService<TracerProvider>();
        var registry = new ModelRegistry(azurite.Clients, TimeProvider.System);
        var model = TestNames.Model("otel");
        await registry.RegisterVersionAsync(model, "1.0.0", new string('a', 64), 1, "p", "test", cancellationToken: Token);

        await new RolloutOperations(registry).TransitionAsync(model, "1.0.0", Stage.Validating, Stage.Registered, "validation started", "lifecycle", cancellationToken: Token);
        Assert.True(tracer.ForceFlush(20_000));

        lock (received)
        {
            var span = Assert.Single(received.SelectMany(b => b.Split('\n')), line => line.Contains(LifecycleTelemetry.TransitionSpan, StringComparison.Ordinal) && line.Contains(model, StringComparison.Ordinal));
            Assert.Contains("\"lepton.to_stage\":\"validating\"", span, StringComparison.Ordinal);
            Assert.DoesNotContain("microsoft.sample_rate\":\"50", span, StringComparison.Ordinal);
        }
    }
}
