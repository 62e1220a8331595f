using System.Buffers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Lepton.GpuWorker.Http;
using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Protocol;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Lepton.GpuWorker.Auth;

/// <summary>The authorization policies of the worker's routes and RPCs.</summary>
public static class WorkerPolicies
{
    public const string Infer = "lepton-infer";
    public const string Admin = "lepton-admin";

    /// <summary>The claim carrying a permission (<c>infer</c> or <c>admin</c>).</summary>
    public const string PermissionClaim = "lepton_permission";

    public const string KeyScheme = "LeptonApiKey";
}

/// <summary>
/// Static API keys as <c>Authorization: Bearer &lt;key&gt;</c>: the presented key is hashed with
/// SHA-256 and compared with every stored hash in constant time (no early exit, so timing says
/// nothing about which key or how much of it matched).
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    AuthOptions auth,
    WorkerMetrics metrics)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    private static readonly Dictionary<Permissions, ClaimsPrincipal> Principals = [];

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization;
        if (header.Count == 0 || string.IsNullOrEmpty(header[0]))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }
        var value = header[0]!;
        if (!value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthenticateResult.Fail("the Authorization header must be 'Bearer <key>'"));
        }
        var presented = value.AsSpan(7).Trim();
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var length = Encoding.UTF8.GetByteCount(presented);
        var bytes = length <= 256 ? stackalloc byte[length] : new byte[length];
        Encoding.UTF8.GetBytes(presented, bytes);
        SHA256.HashData(bytes, hash);
        ApiKey? matched = null;
        foreach (var key in auth.Keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, key.Sha256))
            {
                matched = key;
            }
        }
        if (matched is null)
        {
            return Task.FromResult(AuthenticateResult.Fail("the API key is not valid"));
        }
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(PrincipalFor(matched.Permissions), Scheme.Name)));
    }

    private static ClaimsPrincipal PrincipalFor(Permissions permissions)
    {
        lock (Principals)
        {
            if (!Principals.TryGetValue(permissions, out var principal))
            {
                var claims = new List<Claim>();
                if (permissions.HasFlag(Permissions.Infer))
                {
                    claims.Add(new Claim(WorkerPolicies.PermissionClaim, "infer"));
                }
                if (permissions.HasFlag(Permissions.Admin))
                {
                    claims.Add(new Claim(WorkerPolicies.PermissionClaim, "admin"));
                }
                Principals[permissions] = principal = new ClaimsPrincipal(new ClaimsIdentity(claims, WorkerPolicies.KeyScheme));
            }
            return principal;
        }
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        await AuthResponses.ChallengeAsync(Context, result.Failure?.Message, metrics);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) => AuthResponses.ForbiddenAsync(Context, metrics);
}

/// <summary>401 and 403 answers: counted as refusals (never against a version), with the OIP error body over HTTP.</summary>
public static class AuthResponses
{
    public static bool IsGrpc(HttpContext context) =>
        context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true;

    public static async Task ChallengeAsync(HttpContext context, string? failure, WorkerMetrics metrics)
    {
        var grpc = IsGrpc(context);
        metrics.Refused(failure is null ? "missing_credentials" : "invalid_credentials", grpc ? "grpc" : "http");
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = failure is null
            ? "Bearer realm=\"lepton-worker\""
            : "Bearer realm=\"lepton-worker\", error=\"invalid_token\"";
        if (!grpc)
        {
            await WriteBodyAsync(context, failure is null
                ? "authentication required: send 'Authorization: Bearer <key or token>'"
                : $"authentication failed: {failure}", "unauthorized");
        }
    }

    public static async Task ForbiddenAsync(HttpContext context, WorkerMetrics metrics)
    {
        var grpc = IsGrpc(context);
        metrics.Refused("forbidden", grpc ? "grpc" : "http");
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        if (!grpc)
        {
            await WriteBodyAsync(context, "not permitted: this needs the 'admin' permission (pinned versions, statistics) or 'infer'", "forbidden");
        }
    }

    private static async Task WriteBodyAsync(HttpContext context, string message, string code)
    {
        context.Response.Headers[HttpResults.RequestIdHeader] = HttpResults.RequestId(context);
        var (buffer, writer) = HttpResults.Scratch();
        OipJsonEncoder.WriteError(writer, message, code);
        context.Response.ContentType = HttpResults.Json;
        context.Response.ContentLength = buffer.WrittenCount;
        context.Response.BodyWriter.Write(buffer.WrittenSpan);
        await context.Response.BodyWriter.FlushAsync();
    }
}

/// <summary>Registration of the configured authentication mode and the two policies.</summary>
public static class WorkerAuthRegistration
{
    public static IServiceCollection AddWorkerAuth(this IServiceCollection services, AuthOptions auth)
    {
        if (auth.Mode == AuthMode.None)
        {
            // No auth services at all: WebApplication would otherwise add both middlewares to every request.
            return services;
        }
        services.AddAuthorizationBuilder()
            .AddPolicy(WorkerPolicies.Infer, p => p.RequireClaim(WorkerPolicies.PermissionClaim, "infer", "admin"))
            .AddPolicy(WorkerPolicies.Admin, p => p.RequireClaim(WorkerPolicies.PermissionClaim, "admin"));
        switch (auth.Mode)
        {
            case AuthMode.Key:
                services.AddAuthentication(WorkerPolicies.KeyScheme)
                    .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(WorkerPolicies.KeyScheme, null);
                break;
            default:
                services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(options => ConfigureEntra(options, auth));
                break;
        }
        return services;
    }

    private static void ConfigureEntra(JwtBearerOptions options, AuthOptions auth)
    {
        var metadata = new Uri(auth.MetadataUrl);
        options.MetadataAddress = auth.MetadataUrl;
        // Plain HTTP only for a metadata endpoint on this machine (tests serve their JWKS there).
        options.RequireHttpsMetadata = !metadata.IsLoopback;
        options.MapInboundClaims = false;
        options.TokenValidationParameters = new TokenValidationParameters
        {
            ValidIssuer = auth.Issuer,
            ValidAudience = auth.EntraAudience,
            ValidateIssuer = true,
            ValidateAudience = true,
            ValidateLifetime = true,
            ValidateIssuerSigningKey = true,
            ClockSkew = TimeSpan.FromMinutes(2),
        };
        options.Events = new JwtBearerEvents
        {
            OnTokenValidated = context =>
            {
                // Entra app roles ("roles") or delegated scopes ("scp"), named infer and admin.
                var granted = context.Principal!.FindAll("roles").Select(c => c.Value)
                    .Concat(context.Principal.FindAll("scp").SelectMany(c => c.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries)))
                    .Select(v => v.ToLowerInvariant())
                    .ToHashSet(StringComparer.Ordinal);
                var identity = (ClaimsIdentity)context.Principal.Identity!;
                if (granted.Contains("admin"))
                {
                    identity.AddClaim(new Claim(WorkerPolicies.PermissionClaim, "admin"));
                    identity.AddClaim(new Claim(WorkerPolicies.PermissionClaim, "infer"));
                }
                else if (granted.Contains("infer"))
                {
                    identity.AddClaim(new Claim(WorkerPolicies.PermissionClaim, "infer"));
                }
                return Task.CompletedTask;
            },
            OnChallenge = async context =>
            {
                context.HandleResponse();
                var metrics = context.HttpContext.RequestServices.GetRequiredService<WorkerMetrics>();
                await AuthResponses.ChallengeAsync(context.HttpContext, context.AuthenticateFailure is null ? null : "the token is not valid (signature, issuer, audience or lifetime)", metrics);
            },
            OnForbidden = context => AuthResponses.ForbiddenAsync(context.HttpContext, context.HttpContext.RequestServices.GetRequiredService<WorkerMetrics>()),
        };
    }
}
