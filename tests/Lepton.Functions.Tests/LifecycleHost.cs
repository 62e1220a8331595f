using System.Security.Claims;
using System.Text.Encodings.Web;
using System.Text.Json.Nodes;
using Lepton.Functions.Http;
using Lepton.Functions.Lifecycle;
using Lepton.Shared;
using Lepton.Shared.Metrics;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Workers;
using Lepton.Testing;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lepton.Functions.Tests;

/// <summary>
/// One life of the control plane as the local stack hosts it: the real orchestrator and
/// activities on the in-process durable backend (InProcessTestHost), activities against the
/// shared Azurite, and the HTTP API on a real socket on 127.0.0.1 with a test key scheme (header
/// <see cref="TestKeys.Header"/> names the key). Restarting the stack is two of these in turn on
/// the same storage: the in-memory backend forgets every orchestration when it stops.
/// </summary>
public sealed class LifecycleHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _cacheDir;
    private int _disposed;

    private LifecycleHost(WebApplication app, string cacheDir, AzuriteFixture azurite)
    {
        _app = app;
        _cacheDir = cacheDir;
        Azurite = azurite;
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!;
        BaseAddress = new Uri(addresses.Addresses.Single());
    }

    public AzuriteFixture Azurite { get; }

    public Uri BaseAddress { get; }

    public IServiceProvider Services => _app.Services;

    public DurableTaskClient Client => Services.GetRequiredService<DurableTaskClient>();

    public ModelRegistry Registry => Services.GetRequiredService<ModelRegistry>();

    public ModelStore Store => Services.GetRequiredService<ModelStore>();

    public MetricsStore Metrics => Services.GetRequiredService<MetricsStore>();

    public WorkerDirectory Workers => Services.GetRequiredService<WorkerDirectory>();

    public LifecycleStarter Starter => Services.GetRequiredService<LifecycleStarter>();

    /// <summary>Starts the control plane; <paramref name="settings"/> adds or replaces app settings (e.g. short storage timeouts for outage tests).</summary>
    public static async Task<LifecycleHost> StartAsync(AzuriteFixture azurite, IReadOnlyDictionary<string, string?>? settings = null)
    {
        var cacheDir = Path.Combine(Path.GetTempPath(), "lepton-tests", Guid.NewGuid().ToString("N"));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = azurite.Azurite.ConnectionString,
            ["LEPTON_CACHE_DIR"] = cacheDir,
        });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddLeptonLifecycle();
        builder.Services.AddInMemoryDurableTask(registry => registry.AddLeptonLifecycle(), new InMemoryDurableTaskOptions { Port = Cli.LocalStack.Azurite.FreePort() });
        builder.Services.AddExceptionHandler<LeptonExceptionHandler>();
        builder.Services.AddProblemDetails();
        builder.Services.AddAuthentication(TestKeys.Name).AddScheme<AuthenticationSchemeOptions, TestKeys>(TestKeys.Name, null);
        builder.Services.AddAuthorization();
        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapLeptonControlApi().RequireAuthorization();
        app.MapDurableInstanceRoutes().RequireAuthorization();
        await app.StartAsync(TestContext.Current.CancellationToken);
        return new LifecycleHost(app, cacheDir, azurite);
    }

    public HttpClient Http(string? key = "ci")
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Add(TestKeys.Header, key);
        }
        return client;
    }

    /// <summary>Waits for the lifecycle to end and returns its outcome; a failed orchestration fails the test with its error.</summary>
    public async Task<LifecycleOutcome> WaitDoneAsync(string instanceId, double timeoutS = 60)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(timeoutS));
        var metadata = await Client.WaitForInstanceCompletionAsync(instanceId, getInputsAndOutputs: true, timeout.Token);
        Assert.True(
            metadata.RuntimeStatus == OrchestrationRuntimeStatus.Completed,
            $"{instanceId} ended {metadata.RuntimeStatus}: {metadata.FailureDetails?.ErrorMessage}\n{metadata.FailureDetails?.StackTrace}");
        return metadata.ReadOutputAs<LifecycleOutcome>()!;
    }

    /// <summary>Polls the custom status until <paramref name="predicate"/> holds (there is no signal for a status change).</summary>
    public async Task<LifecycleStatus> WaitStatusAsync(string instanceId, Func<LifecycleStatus, bool> predicate, double timeoutS = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutS);
        LifecycleStatus? last = null;
        while (DateTime.UtcNow < deadline)
        {
            var metadata = await Client.GetInstanceAsync(instanceId, getInputsAndOutputs: true, TestContext.Current.CancellationToken);
            if (metadata?.SerializedCustomStatus is { Length: > 0 })
            {
                last = metadata.ReadCustomStatusAs<LifecycleStatus>();
                if (last is not null && predicate(last))
                {
                    return last;
                }
                if (metadata.IsCompleted)
                {
                    break;
                }
            }
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
        throw new Xunit.Sdk.XunitException($"custom status never matched; last seen: {(last is null ? "none" : LeptonJson.Serialize(last))}");
    }

    public async Task SendAsync(string instanceId, Shared.Lifecycle.OperatorAction action, string reason = "", string actor = "alice") =>
        await Client.RaiseEventAsync(instanceId, LifecycleNames.OperatorEvent, new Shared.Lifecycle.OperatorCommand(action, actor, reason), TestContext.Current.CancellationToken);

    /// <summary>Starts a lifecycle as the blob trigger and the HTTP start do (idempotent per content).</summary>
    public async Task<string> StartAsync(string model, string version, string sha256, JsonObject? overrides) =>
        (await Starter.StartAsync(Client, new LifecycleInput(model, version, sha256, overrides ?? [], "test"), TestContext.Current.CancellationToken)).InstanceId;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(_cacheDir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}

/// <summary>A test authentication scheme: the header names the caller's key, as the Functions host's keyid claim would.</summary>
public sealed class TestKeys(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string Name = "TestKey";

    public const string Header = "x-test-key";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (Request.Headers[Header].FirstOrDefault() is not { Length: > 0 } key)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }
        var identity = new ClaimsIdentity([new Claim(AuditActors.KeyIdClaim, key)], Name);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), Name)));
    }
}
