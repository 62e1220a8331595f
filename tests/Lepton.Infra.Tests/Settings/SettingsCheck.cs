namespace Lepton.Infra.Tests.Settings;

/// <summary>
/// One app's settings as the code reads them and as the templates (and its image) set them, and
/// the decisions about the gaps, each with its reason.
/// </summary>
internal sealed record SettingsCheck
{
    /// <summary>Who sets the settings, for messages: e.g. "modules/functionApp.bicep".</summary>
    public required string SetBy { get; init; }

    /// <summary>Where the code that reads them lives, for messages: e.g. "src/Functions, src/Shared".</summary>
    public required string ReadBy { get; init; }

    public required IReadOnlyList<SettingRead> Reads { get; init; }

    /// <summary>The names set (app settings, container env, image ENV, or provided by resource properties).</summary>
    public required IReadOnlySet<string> Set { get; init; }

    /// <summary>Set but read by the platform or a library rather than by Lepton's code: name to who reads it.</summary>
    public required IReadOnlyDictionary<string, string> ReadByPlatform { get; init; }

    /// <summary>Read by the code, deliberately not set: name to why the code's default is right in Azure.</summary>
    public required IReadOnlyDictionary<string, string> SafeDefaults { get; init; }

    /// <summary>Must never be set: name to why.</summary>
    public required IReadOnlyDictionary<string, string> Forbidden { get; init; }

    /// <summary>Prefixes of names the platform reads (host.json overrides, runtime knobs).</summary>
    public IReadOnlyList<string> PlatformPrefixes { get; init; } = [];

    /// <summary>Whether the app's own code exists yet (false while it is written elsewhere).</summary>
    public bool CodeLanded { get; init; } = true;

    /// <summary>
    /// Everything wrong, as messages that say what to do. The rules:
    /// <list type="number">
    /// <item>a forbidden name is never set;</item>
    /// <item>every setting the code reads is set, unless its default is right in Azure (and
    /// listed so, with the reason); the connection name AzureWebJobsStorage counts as set by its
    /// identity-based form, AzureWebJobsStorage__accountName;</item>
    /// <item>everything set is read, by the code or by the platform (listed, with who reads it);</item>
    /// <item>once the app's code exists, a safe-default entry nothing reads is stale.</item>
    /// </list>
    /// </summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        var read = Reads.Select(r => r.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in Set.Where(Forbidden.ContainsKey).Order(StringComparer.Ordinal))
        {
            problems.Add($"{SetBy} sets {name}: {Forbidden[name]}");
        }
        foreach (var setting in Reads)
        {
            if (setting.Name == IdentityConnection && !Set.Contains(setting.Name))
            {
                if (!Set.Contains(IdentityConnection + "__accountName"))
                {
                    problems.Add($"{setting.Name} is read at {setting.Where}, but {SetBy} sets neither it nor its identity-based form {IdentityConnection}__accountName: set the __accountName, __credential and __clientId settings");
                }
            }
            else if (!Set.Contains(setting.Name) && !SafeDefaults.ContainsKey(setting.Name))
            {
                problems.Add($"{setting.Name} is read at {setting.Where}, but {SetBy} does not set it: set it there if Azure needs a value other than the code's default, or list it in the safe defaults of SettingsTests with the reason the default is right in Azure");
            }
        }
        foreach (var name in Set.Order(StringComparer.Ordinal))
        {
            if (!read.Contains(name) && !ReadByPlatform.ContainsKey(name) && !Forbidden.ContainsKey(name)
                && !PlatformPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal)))
            {
                problems.Add($"{SetBy} sets {name}, but nothing in {ReadBy} reads it: remove it, or, if the code builds the name at run time, spell the name out as a constant so this check can see it");
            }
        }
        if (CodeLanded)
        {
            foreach (var name in SafeDefaults.Keys.Where(n => !read.Contains(n)).Order(StringComparer.Ordinal))
            {
                problems.Add($"{name} is listed as a safe default, but nothing in {ReadBy} reads it any more: remove it from the list");
            }
        }
        return problems;
    }

    private const string IdentityConnection = "AzureWebJobsStorage";
}
