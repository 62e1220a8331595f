using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Lepton.Functions.Http;

/// <summary>How the control API names the caller in the audit trail.</summary>
public sealed record ControlApiOptions
{
    /// <summary>
    /// Trust App Service authentication's <c>X-MS-CLIENT-PRINCIPAL</c> headers. Only where the
    /// platform sets them (it strips copies a client sends): in Azure with authentication enabled
    /// (<c>WEBSITE_AUTH_ENABLED</c>). Anywhere else a caller could forge them.
    /// </summary>
    public bool TrustEasyAuthHeaders { get; init; }

    /// <summary>
    /// The actor when the request carries no identity Lepton can read: in Azure the host checked a
    /// function key but does not pass its name on to the worker; a local host without auth has none.
    /// </summary>
    public string UnidentifiedActor { get; init; } = "anonymous";
}

/// <summary>
/// The audit actor of a request, always from the authenticated identity, never from the body: a
/// function key's name (the host's <c>keyid</c> claim, <c>key:&lt;name&gt;</c>), an Entra
/// principal's name (claims, or App Service authentication's principal header where trusted), or
/// <see cref="ControlApiOptions.UnidentifiedActor"/>.
/// </summary>
public static class AuditActors
{
    /// <summary>The claim the Functions host gives a caller authenticated by a function or host key.</summary>
    public const string KeyIdClaim = "http://schemas.microsoft.com/2017/07/functions/claims/keyid";

    public const string PrincipalHeader = "X-MS-CLIENT-PRINCIPAL";

    public const string PrincipalNameHeader = "X-MS-CLIENT-PRINCIPAL-NAME";

    private const int MaxLength = 128;

    private static readonly string[] NameClaims =
    [
        "preferred_username", "upn", ClaimTypes.Upn, "name", ClaimTypes.Name, "email", ClaimTypes.Email, "appid", "azp", "oid", ClaimTypes.NameIdentifier, "sub",
    ];

    public static string Of(HttpContext context, ControlApiOptions options)
    {
        foreach (var identity in context.User.Identities.Where(i => i.IsAuthenticated))
        {
            if (Named(identity.Claims) is { } name)
            {
                return name;
            }
        }
        if (options.TrustEasyAuthHeaders)
        {
            if (context.Request.Headers[PrincipalHeader].FirstOrDefault() is { Length: > 0 } encoded && FromPrincipalHeader(encoded) is { } principal)
            {
                return principal;
            }
            if (context.Request.Headers[PrincipalNameHeader].FirstOrDefault() is { Length: > 0 } header)
            {
                return Clean(header);
            }
        }
        return options.UnidentifiedActor;
    }

    private static string? Named(IEnumerable<Claim> claims)
    {
        var list = claims.ToList();
        if (list.FirstOrDefault(c => c.Type == KeyIdClaim) is { Value.Length: > 0 } key)
        {
            return Clean("key:" + key.Value);
        }
        foreach (var type in NameClaims)
        {
            if (list.FirstOrDefault(c => c.Type == type) is { Value.Length: > 0 } claim)
            {
                return Clean(claim.Value);
            }
        }
        return null;
    }

    /// <summary>App Service's principal: base64 JSON <c>{"auth_typ", "claims": [{"typ", "val"}]}</c>.</summary>
    private static string? FromPrincipalHeader(string encoded)
    {
        try
        {
            using var document = JsonDocument.Parse(Convert.FromBase64String(encoded));
            if (!document.RootElement.TryGetProperty("claims", out var claims) || claims.ValueKind != JsonValueKind.Array)
            {
                return null;
            }
            var parsed = claims.EnumerateArray()
                .Where(c => c.TryGetProperty("typ", out var t) && t.ValueKind == JsonValueKind.String && c.TryGetProperty("val", out var v) && v.ValueKind == JsonValueKind.String)
                .Select(c => new Claim(c.GetProperty("typ").GetString()!, c.GetProperty("val").GetString()!));
            return Named(parsed);
        }
        catch (Exception error) when (error is FormatException or JsonException)
        {
            return null;
        }
    }

    /// <summary>Audit actors are shown and stored: printable, bounded.</summary>
    private static string Clean(string value)
    {
        var builder = new StringBuilder();
        foreach (var ch in value.Trim())
        {
            if (!char.IsControl(ch))
            {
                builder.Append(ch);
            }
            if (builder.Length == MaxLength)
            {
                break;
            }
        }
        return builder.Length > 0 ? builder.ToString() : "unnamed";
    }
}
