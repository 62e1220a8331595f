using System.Globalization;
using Lepton.GpuWorker.Configuration;
using Lepton.Shared;
using Lepton.Shared.Configuration;

namespace Lepton.GpuWorker.Auth;

/// <summary>How callers authenticate: not at all, with a static API key, or with an Entra ID token.</summary>
public enum AuthMode
{
    None,
    Key,
    Entra,
}

/// <summary>What an authenticated caller may do.</summary>
[Flags]
public enum Permissions
{
    None = 0,

    /// <summary>Routed inference, model metadata, readiness, configuration and repository index.</summary>
    Infer = 1,

    /// <summary>Everything <see cref="Infer"/> allows, plus pinned versions, statistics and (by default) <c>/metrics</c>.</summary>
    Admin = 2,
}

/// <summary>A static key, kept only as the SHA-256 of its bytes, and what it permits.</summary>
public sealed record ApiKey(string Name, byte[] Sha256, Permissions Permissions)
{
    // The hash is not the key, but it still identifies one: never print it.
    public override string ToString() => $"ApiKey {{ Name = {Name}, Permissions = {Permissions} }}";
}

/// <summary>
/// Authentication settings. Secure by default: <c>key</c> mode, so a worker without keys refuses
/// to start until it is given some (or told <c>LEPTON_WORKER_AUTH=none</c>).
/// </summary>
public sealed record AuthOptions
{
    public AuthMode Mode { get; init; } = AuthMode.Key;

    public IReadOnlyList<ApiKey> Keys { get; init; } = [];

    public string? EntraTenantId { get; init; }

    public string? EntraAudience { get; init; }

    /// <summary>Expected issuer; default <c>https://login.microsoftonline.com/{tenant}/v2.0</c>.</summary>
    public string? EntraIssuer { get; init; }

    /// <summary>OpenID configuration (names the JWKS); default the tenant's on login.microsoftonline.com.</summary>
    public string? EntraMetadataUrl { get; init; }

    /// <summary>Whether <c>/metrics</c> needs the <c>admin</c> permission (<c>admin</c>) or is open (<c>open</c>).</summary>
    public bool MetricsRequireAdmin { get; init; } = true;

    public string Issuer => EntraIssuer ?? $"https://login.microsoftonline.com/{EntraTenantId}/v2.0";

    public string MetadataUrl => EntraMetadataUrl ?? $"https://login.microsoftonline.com/{EntraTenantId}/v2.0/.well-known/openid-configuration";

    public static AuthOptions FromConfiguration(IConfiguration c)
    {
        var mode = OptionReaders.Choice(c, WorkerSettingNames.Auth, "key", ["none", "key", "entra"]) switch
        {
            "none" => AuthMode.None,
            "entra" => AuthMode.Entra,
            _ => AuthMode.Key,
        };
        var options = new AuthOptions
        {
            Mode = mode,
            Keys = ParseKeys(Settings.Text(c, WorkerSettingNames.ApiKeys)),
            EntraTenantId = Settings.Text(c, WorkerSettingNames.EntraTenantId),
            EntraAudience = Settings.Text(c, WorkerSettingNames.EntraAudience),
            EntraIssuer = Settings.Text(c, WorkerSettingNames.EntraIssuer),
            EntraMetadataUrl = Settings.Uri(c, WorkerSettingNames.EntraMetadataUrl)?.ToString(),
            MetricsRequireAdmin = OptionReaders.Choice(c, WorkerSettingNames.MetricsAuth, "admin", ["admin", "open"]) == "admin",
        };
        if (mode == AuthMode.Key && options.Keys.Count == 0)
        {
            throw new ConfigurationException(
                $"{WorkerSettingNames.Auth}=key (the default) needs {WorkerSettingNames.ApiKeys}: comma-separated "
                + "'<sha256 hex of the key>[:infer|admin]' entries (e.g. `printf %s \"$KEY\" | sha256sum`); "
                + $"or set {WorkerSettingNames.Auth}=entra, or {WorkerSettingNames.Auth}=none for a worker nobody else can reach");
        }
        if (mode == AuthMode.Entra && (options.EntraAudience is null || (options.EntraTenantId is null && options.EntraMetadataUrl is null)))
        {
            throw new ConfigurationException(
                $"{WorkerSettingNames.Auth}=entra needs {WorkerSettingNames.EntraAudience} and {WorkerSettingNames.EntraTenantId} "
                + $"(or {WorkerSettingNames.EntraMetadataUrl} and {WorkerSettingNames.EntraIssuer} for another issuer)");
        }
        return options;
    }

    /// <summary>Parses <c>&lt;sha256-hex&gt;[:infer|admin]</c> entries; the default permission is <c>infer</c>.</summary>
    public static IReadOnlyList<ApiKey> ParseKeys(string? raw)
    {
        var keys = new List<ApiKey>();
        var entries = (raw ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (var i = 0; i < entries.Length; i++)
        {
            var parts = entries[i].Split(':', 2, StringSplitOptions.TrimEntries);
            var hex = parts[0].StartsWith("sha256=", StringComparison.OrdinalIgnoreCase) ? parts[0][7..] : parts[0];
            if (hex.Length != 64 || !hex.All(Uri.IsHexDigit))
            {
                throw new ConfigurationException(
                    $"{WorkerSettingNames.ApiKeys} entry {i + 1} is not the 64-hex-digit SHA-256 of a key: the worker stores "
                    + "only hashes of keys (compute one with `printf %s \"$KEY\" | sha256sum`)");
            }
            var permissions = parts.Length == 1 ? Permissions.Infer : parts[1].ToLowerInvariant() switch
            {
                "infer" => Permissions.Infer,
                "admin" => Permissions.Infer | Permissions.Admin,
                _ => throw new ConfigurationException(
                    $"{WorkerSettingNames.ApiKeys} entry {i + 1}: permission must be 'infer' or 'admin'"),
            };
            keys.Add(new ApiKey($"key-{(i + 1).ToString(CultureInfo.InvariantCulture)}", Convert.FromHexString(hex), permissions));
        }
        return keys;
    }

    public override string ToString() =>
        $"AuthOptions {{ Mode = {Mode}, Keys = {Keys.Count}, Audience = {EntraAudience}, Issuer = {(Mode == AuthMode.Entra ? Issuer : "")} }}";
}
