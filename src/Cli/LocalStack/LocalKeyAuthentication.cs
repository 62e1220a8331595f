using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Lepton.Functions.Http;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lepton.Cli.LocalStack;

/// <summary>Options of <see cref="LocalKeyAuthentication"/>: the stack's key, as a SHA-256 hash.</summary>
public sealed class LocalKeyOptions : AuthenticationSchemeOptions
{
    public byte[] KeyHash { get; set; } = [];
}

/// <summary>
/// The local stack's function-key check, as the Functions host does it in Azure: the key in the
/// <c>x-functions-key</c> header or the <c>code</c> query parameter, compared in constant time
/// (against its hash, so the key itself is not kept in memory longer than needed). The caller is
/// recorded in the audit trail as the key's name, <c>local</c>, through the host's keyid claim.
/// </summary>
public sealed class LocalKeyAuthentication(IOptionsMonitor<LocalKeyOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<LocalKeyOptions>(options, logger, encoder)
{
    public const string SchemeName = "LocalFunctionKey";
    public const string KeyName = "local";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var presented = Request.Headers["x-functions-key"].FirstOrDefault() ?? Request.Query["code"].FirstOrDefault();
        if (string.IsNullOrEmpty(presented))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        if (!CryptographicOperations.FixedTimeEquals(hash, Options.KeyHash))
        {
            return Task.FromResult(AuthenticateResult.Fail("the key does not match"));
        }
        var identity = new ClaimsIdentity([new Claim(AuditActors.KeyIdClaim, KeyName)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = 401;
        Response.Headers.WWWAuthenticate = "FunctionKey realm=\"lepton-local\"";
        return Response.WriteAsJsonAsync(new
        {
            type = "https://lepton.dev/problems/unauthorized",
            title = "Unauthorized",
            status = 401,
            detail = "this local stack needs its key: the CLI reads it from .lepton/api-key; send it as the x-functions-key header "
                + "(or ?code=), or start the stack with `lepton dev --no-auth`",
        });
    }
}
