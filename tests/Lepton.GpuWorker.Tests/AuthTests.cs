using System.Net.Http.Headers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using Lepton.Cli.Samples;
using Lepton.GpuWorker.Grpc.Protocol;
using Lepton.GpuWorker.Tests.Harness;
using Lepton.Shared;
using Lepton.Shared.Metrics;
using Lepton.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Lepton.GpuWorker.Tests;

/// <summary>
/// Authenticated by default: static keys stored as SHA-256 hashes, Entra ID tokens validated against a
/// JWKS this test serves on 127.0.0.1, permissions infer/admin, health open, refusals counted and
/// never against a version, over HTTP and gRPC.
/// </summary>
public sealed class AuthTests(AzuriteFixture azurite) : IDisposable
{
    private const string InferKey = "infer-key-0123456789";
    private const string AdminKey = "admin-key-9876543210";

    private readonly string _model = TestNames.Model("auth");
    private readonly string _cache = Path.Combine(Path.GetTempPath(), "lepton-worker-" + Guid.NewGuid().ToString("N")[..8]);

    private Publisher Publisher => new(azurite.Clients, _cache + "-publisher");

    public void Dispose()
    {
        foreach (var dir in new[] { _cache, _cache + "-publisher" })
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static string Sha(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private async Task PublishAsync()
    {
        await Publisher.PublishAsync(_model, "1.0.0", SampleModels.Scale(2f));
        await Publisher.RouteAsync(_model, r => r with { Production = "1.0.0" });
    }

    private static async Task<HttpResponseMessage> SendAsync(WorkerHost worker, HttpMethod method, string path, string? token, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path);
        if (method == HttpMethod.Post)
        {
            request.Content = Bodies.JsonContent(Bodies.Json([1, 2, 3, 4], 1, 4));
        }
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        return await worker.Http.SendAsync(request, ct);
    }

    [Fact(Timeout = 120_000)]
    public async Task Api_keys_are_checked_as_hashes_with_infer_and_admin_permissions()
    {
        var ct = TestContext.Current.CancellationToken;
        await PublishAsync();
        var settings = WorkerHost.Defaults(azurite, _cache, _model);
        settings["LEPTON_WORKER_AUTH"] = "key";
        settings["LEPTON_WORKER_API_KEYS"] = $"{Sha(InferKey)}:infer, {Sha(AdminKey)}:admin";
        await using var worker = await WorkerHost.StartAsync(settings);
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");
        var routed = $"/v2/models/{_model}/infer";
        var pinned = $"/v2/models/{_model}/versions/1.0.0/infer";

        // Health is open.
        Assert.Equal(200, (int)(await SendAsync(worker, HttpMethod.Get, "/v2/health/live", null, ct)).StatusCode);
        Assert.Equal(200, (int)(await SendAsync(worker, HttpMethod.Get, "/v2/health/ready", null, ct)).StatusCode);

        using (var missing = await SendAsync(worker, HttpMethod.Post, routed, null, ct))
        {
            Assert.Equal(401, (int)missing.StatusCode);
            Assert.StartsWith("Bearer", missing.Headers.WwwAuthenticate.Single().Scheme, StringComparison.Ordinal);
            using var doc = JsonDocument.Parse(await missing.Content.ReadAsStringAsync(ct));
            Assert.Equal("unauthorized", doc.RootElement.GetProperty("code").GetString());
        }
        using (var wrong = await SendAsync(worker, HttpMethod.Post, routed, "not-a-key", ct))
        {
            Assert.Equal(401, (int)wrong.StatusCode);
            Assert.Contains("invalid_token", wrong.Headers.WwwAuthenticate.Single().Parameter, StringComparison.Ordinal);
            Assert.DoesNotContain("not-a-key", await wrong.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        }
        // The hash itself is not a key.
        Assert.Equal(401, (int)(await SendAsync(worker, HttpMethod.Post, routed, Sha(InferKey), ct)).StatusCode);
        Assert.Equal(200, (int)(await SendAsync(worker, HttpMethod.Post, routed, InferKey, ct)).StatusCode);
        Assert.Equal(200, (int)(await SendAsync(worker, HttpMethod.Get, $"/v2/models/{_model}", InferKey, ct)).StatusCode);
        using (var forbidden = await SendAsync(worker, HttpMethod.Post, pinned, InferKey, ct))
        {
            Assert.Equal(403, (int)forbidden.StatusCode);
            using var doc = JsonDocument.Parse(await forbidden.Content.ReadAsStringAsync(ct));
            Assert.Equal("forbidden", doc.RootElement.GetProperty("code").GetString());
        }
        Assert.Equal(403, (int)(await SendAsync(worker, HttpMethod.Get, "/metrics", InferKey, ct)).StatusCode);
        Assert.Equal(403, (int)(await SendAsync(worker, HttpMethod.Get, "/v2/models/stats", InferKey, ct)).StatusCode);
        Assert.Equal(200, (int)(await SendAsync(worker, HttpMethod.Post, pinned, AdminKey, ct)).StatusCode);
        Assert.Equal(200, (int)(await SendAsync(worker, HttpMethod.Post, routed, AdminKey, ct)).StatusCode);

        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{worker.GrpcPort}");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        Assert.True((await client.ServerLiveAsync(new ServerLiveRequest(), cancellationToken: ct)).Live);
        var request = new ModelInferRequest { ModelName = _model };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32", Shape = { 1, 4 }, Contents = new InferTensorContents { Fp32Contents = { 1, 2, 3, 4 } } });
        var unauthenticated = await Assert.ThrowsAsync<RpcException>(async () => await client.ModelInferAsync(request, cancellationToken: ct));
        Assert.Equal(StatusCode.Unauthenticated, unauthenticated.StatusCode);
        var infer = new Metadata { { "authorization", $"Bearer {InferKey}" } };
        Assert.Equal("1.0.0", (await client.ModelInferAsync(request, infer, cancellationToken: ct)).ModelVersion);
        var pinnedRequest = request.Clone();
        pinnedRequest.ModelVersion = "1.0.0";
        var denied = await Assert.ThrowsAsync<RpcException>(async () => await client.ModelInferAsync(pinnedRequest, infer, cancellationToken: ct));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        var admin = new Metadata { { "authorization", $"Bearer {AdminKey}" } };
        Assert.Equal("1.0.0", (await client.ModelInferAsync(pinnedRequest, admin, cancellationToken: ct)).ModelVersion);

        var metrics = await (await SendAsync(worker, HttpMethod.Get, "/metrics", AdminKey, ct)).Content.ReadAsStringAsync(ct);
        Assert.Contains("lepton_worker_auth_refusals_total{reason=\"missing_credentials\",transport=\"http\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("lepton_worker_auth_refusals_total{reason=\"invalid_credentials\",transport=\"http\"} 2", metrics, StringComparison.Ordinal);
        Assert.Contains("lepton_worker_auth_refusals_total{reason=\"forbidden\",transport=\"grpc\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("lepton_worker_auth_refusals_total{reason=\"missing_credentials\",transport=\"grpc\"} 1", metrics, StringComparison.Ordinal);
        // Refusals are never counted against the version: its rollup holds exactly the served requests.
        var store = new MetricsStore(azurite.Clients);
        await WorkerHost.WaitUntilAsync(async () =>
            (await store.TotalsAsync(_model, 0, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 60, ct)).GetValueOrDefault("1.0.0") is { Requests: 5, Errors: 0 },
            "rollup of the served requests only");
    }

    [Fact(Timeout = 60_000)]
    public async Task Key_mode_without_keys_refuses_to_start_naming_the_setting()
    {
        var ct = TestContext.Current.CancellationToken;
        var settings = WorkerHost.Defaults(azurite, _cache, _model);
        settings["LEPTON_WORKER_AUTH"] = "key";
        var error = await Assert.ThrowsAsync<ConfigurationException>(() => WorkerHost.StartAsync(settings).WaitAsync(ct));
        Assert.Contains("LEPTON_WORKER_API_KEYS", error.Message, StringComparison.Ordinal);
        settings["LEPTON_WORKER_API_KEYS"] = "not-a-hash:infer";
        error = await Assert.ThrowsAsync<ConfigurationException>(() => WorkerHost.StartAsync(settings));
        Assert.Contains("SHA-256", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Entra_tokens_are_validated_against_the_tenants_jwks()
    {
        var ct = TestContext.Current.CancellationToken;
        await PublishAsync();
        using var signing = RSA.Create(2048);
        using var stranger = RSA.Create(2048);
        var key = new RsaSecurityKey(signing) { KeyId = "k1" };
        await using var idp = await StartIdentityProviderAsync(key, ct);
        var issuer = $"http://127.0.0.1:{idp.Port}/tenant/v2.0";
        const string audience = "api://lepton-worker";
        var settings = WorkerHost.Defaults(azurite, _cache, _model);
        settings["LEPTON_WORKER_AUTH"] = "entra";
        settings["LEPTON_WORKER_ENTRA_AUDIENCE"] = audience;
        settings["LEPTON_WORKER_ENTRA_ISSUER"] = issuer;
        settings["LEPTON_WORKER_ENTRA_METADATA_URL"] = $"http://127.0.0.1:{idp.Port}/tenant/v2.0/.well-known/openid-configuration";
        await using var worker = await WorkerHost.StartAsync(settings);
        await worker.WaitRoutesAsync(_model, t => t.Production == "1.0.0");

        string Token(string[] roles, RsaSecurityKey? with = null, string aud = audience, DateTime? expires = null) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = aud,
            Subject = new ClaimsIdentity(roles.Select(r => new Claim("roles", r))),
            NotBefore = (expires ?? DateTime.UtcNow.AddMinutes(10)).AddMinutes(-20),
            Expires = expires ?? DateTime.UtcNow.AddMinutes(10),
            IssuedAt = (expires ?? DateTime.UtcNow.AddMinutes(10)).AddMinutes(-20),
            SigningCredentials = new SigningCredentials(with ?? key, SecurityAlgorithms.RsaSha256),
        });

        var routed = $"/v2/models/{_model}/infer";
        var pinned = $"/v2/models/{_model}/versions/1.0.0/infer";
        Assert.Equal(401, (int)(await SendAsync(worker, HttpMethod.Post, routed, null, ct)).StatusCode);
        Assert.Equal(200, (int)(await SendAsync(worker, HttpMethod.Post, routed, Token(["infer"]), ct)).StatusCode);
        Assert.Equal(403, (int)(await SendAsync(worker, HttpMethod.Post, pinned, Token(["infer"]), ct)).StatusCode);
        Assert.Equal(403, (int)(await SendAsync(worker, HttpMethod.Post, routed, Token([]), ct)).StatusCode);
        Assert.Equal(200, (int)(await SendAsync(worker, HttpMethod.Post, pinned, Token(["admin"]), ct)).StatusCode);
        Assert.Equal(401, (int)(await SendAsync(worker, HttpMethod.Post, routed, Token(["admin"], aud: "api://someone-else"), ct)).StatusCode);
        Assert.Equal(401, (int)(await SendAsync(worker, HttpMethod.Post, routed, Token(["admin"], expires: DateTime.UtcNow.AddMinutes(-30)), ct)).StatusCode);
        Assert.Equal(401, (int)(await SendAsync(worker, HttpMethod.Post, routed, Token(["admin"], with: new RsaSecurityKey(stranger) { KeyId = "k1" }), ct)).StatusCode);
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{worker.GrpcPort}");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var meta = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = _model }, new Metadata { { "authorization", $"Bearer {Token(["infer"])}" } }, cancellationToken: ct);
        Assert.Equal(_model, meta.Name);
    }

    private sealed class IdentityProvider(WebApplication app, int port) : IAsyncDisposable
    {
        public int Port { get; } = port;

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>An OpenID configuration and JWKS on 127.0.0.1, as a tenant's login endpoint serves them.</summary>
    private static async Task<IdentityProvider> StartIdentityProviderAsync(RsaSecurityKey key, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var parameters = key.Rsa.ExportParameters(false);
        app.MapGet("/tenant/v2.0/.well-known/openid-configuration", (HttpContext context) => Results.Json(new Dictionary<string, string>
        {
            ["issuer"] = $"http://{context.Request.Host}/tenant/v2.0",
            ["jwks_uri"] = $"http://{context.Request.Host}/tenant/discovery/v2.0/keys",
        }));
        app.MapGet("/tenant/discovery/v2.0/keys", () => Results.Json(new
        {
            keys = new[]
            {
                new Dictionary<string, string>
                {
                    ["kty"] = "RSA",
                    ["use"] = "sig",
                    ["kid"] = key.KeyId,
                    ["n"] = Base64UrlEncoder.Encode(parameters.Modulus),
                    ["e"] = Base64UrlEncoder.Encode(parameters.Exponent),
                },
            },
        }));
        await app.StartAsync(ct);
        var address = new Uri(app.Urls.First());
        return new IdentityProvider(app, address.Port);
    }
}
