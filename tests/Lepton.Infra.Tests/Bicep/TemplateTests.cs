using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Lepton.Infra.Tests.Bicep;

/// <summary>
/// Every template compiles with the real Bicep CLI; the compiled ARM JSON reads no key and makes no
/// SAS; main.bicep deploys every module; the lint configuration turns the important rules into
/// errors; only local modules are used, so nothing is ever fetched.
/// </summary>
public sealed partial class TemplateTests(Deployments deployments)
{
    private static readonly string[] ExpectedTemplates =
    [
        "main.bicep",
        "modules/alerts.bicep",
        "modules/containerEnvironment.bicep",
        "modules/functionApp.bicep",
        "modules/identity.bicep",
        "modules/keyVault.bicep",
        "modules/monitoring.bicep",
        "modules/registry.bicep",
        "modules/roles.bicep",
        "modules/storage.bicep",
        "modules/workerApp.bicep",
    ];

    /// <summary>ARM functions and strings that would put an account key, a SAS or an ingestion key in play.</summary>
    internal static IReadOnlyList<string> SecretFindings(string template, IEnumerable<string> strings) =>
        strings.SelectMany(text => SecretPattern().Matches(text).Select(match => $"{template}: {match.Value}"))
            .Distinct(StringComparer.Ordinal)
            .ToList();

    [GeneratedRegex(@"\blist[A-Z]\w*\(|\blistKeys\b|AccountKey\s*=|SharedAccessSignature|[?&]sig=|DefaultEndpointsProtocol|InstrumentationKey\s*=|\bprimarySharedKey\b", RegexOptions.IgnoreCase)]
    private static partial Regex SecretPattern();

    [Fact]
    public async Task Every_template_compiles_to_ARM_JSON()
    {
        var templates = await deployments.TemplatesAsync();
        Assert.Equal(ExpectedTemplates, templates.Keys.Order(StringComparer.Ordinal));
        Assert.All(templates.Values, arm => Assert.Contains("deploymentTemplate.json", arm.Text("$schema"), StringComparison.Ordinal));
    }

    [Fact]
    public async Task No_template_reads_a_key_or_makes_a_SAS()
    {
        var templates = await deployments.TemplatesAsync();
        var findings = templates.SelectMany(t => SecretFindings(t.Key, Json.Strings(t.Value))).ToList();
        Assert.Empty(findings);
        var sources = Directory.EnumerateFiles(Repository.BicepDir, "*.bicep*", SearchOption.AllDirectories)
            .SelectMany(f => SecretFindings(Path.GetFileName(f), [File.ReadAllText(f)]));
        Assert.Empty(sources);
    }

    [Fact]
    public void The_secret_scan_sees_a_storage_key_and_a_SAS()
    {
        var strings = new[]
        {
            "[format('DefaultEndpointsProtocol=https;AccountName={0};AccountKey={1}', 'st', listKeys(resourceId('Microsoft.Storage/storageAccounts', 'st'), '2025-01-01').keys[0].value)]",
            "[listAccountSas('st', '2025-01-01', parameters('sas')).accountSasToken]",
        };
        Assert.Equal(
            ["t: DefaultEndpointsProtocol", "t: AccountKey=", "t: listKeys(", "t: listAccountSas("],
            SecretFindings("t", strings));
    }

    [Fact]
    public async Task Main_deploys_every_module_as_compiled_on_its_own()
    {
        var templates = await deployments.TemplatesAsync();
        var nested = templates["main.bicep"].TemplateResources()
            .Where(r => r.Text("type") == "Microsoft.Resources/deployments")
            .Select(r => WithoutMetadata(r.Get("properties", "template")))
            .ToList();
        foreach (var (path, arm) in templates.Where(t => t.Key.StartsWith("modules/", StringComparison.Ordinal)))
        {
            Assert.True(nested.Count(n => JsonNode.DeepEquals(n, WithoutMetadata(arm))) == 1, $"main.bicep does not deploy {path} once");
        }
        Assert.Equal(templates.Count - 1, nested.Count);
    }

    [Fact]
    public async Task Lint_fails_on_the_rules_that_guard_secrets_locations_and_dead_code()
    {
        using var dir = new TempDirectory();
        File.Copy(Path.Combine(Repository.BicepDir, "bicepconfig.json"), Path.Combine(dir.Path, "bicepconfig.json"));
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "bad.bicep"), """
            @secure()
            param adminPassword string = 'hunter2'
            param unused string
            resource account 'Microsoft.Storage/storageAccounts@2019-06-01' = {
              name: 'stbad${uniqueString(resourceGroup().id)}'
              location: 'westeurope'
              kind: 'StorageV2'
              sku: {
                name: 'Standard_LRS'
              }
              properties: {
                customDomain: {
                  name: 'bad.blob.core.windows.net'
                }
              }
            }
            output key string = account.listKeys().keys[0].value
            output password string = adminPassword
            """, TestContext.Current.CancellationToken);
        var run = await BicepCli.RunAsync(dir.Path, "lint", "--no-restore", "bad.bicep");

        Assert.NotEqual(0, run.ExitCode);
        foreach (var rule in new[] { "secure-parameter-default", "no-unused-params", "no-hardcoded-location", "no-hardcoded-env-urls", "outputs-should-not-contain-secrets" })
        {
            Assert.Contains(run.Diagnostics, d => d.Contains($": Error {rule}:", StringComparison.Ordinal));
        }
        // An old API version is not a finding: that rule would fail CI by the calendar alone.
        Assert.DoesNotContain(run.Diagnostics, d => d.Contains("use-recent-api-versions", StringComparison.Ordinal));
    }

    [Fact]
    public void Templates_use_only_local_modules_so_nothing_is_fetched()
    {
        var references = Directory.EnumerateFiles(Repository.BicepDir, "*.bicep", SearchOption.AllDirectories)
            .SelectMany(f => ModuleReference().Matches(File.ReadAllText(f)).Select(m => m.Groups["path"].Value))
            .ToList();
        Assert.NotEmpty(references);
        Assert.All(references, path =>
        {
            Assert.DoesNotMatch("^(br|ts)[:/]", path);
            Assert.True(File.Exists(Path.Combine(Repository.BicepDir, path)), $"module '{path}' is not a file under infra/bicep");
        });
        var config = File.ReadAllText(Path.Combine(Repository.BicepDir, "bicepconfig.json"));
        Assert.DoesNotContain("moduleAliases", config, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Entra_auth_without_an_audience_is_refused_before_anything_is_deployed()
    {
        var run = await deployments.TrySnapshotAsync("entra-no-audience", """
            param environmentName = 'test'
            param workerImage = 'crleptontest.azurecr.io/lepton-worker:0123abc'
            param workerAuth = 'entra'
            """);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("workerAuth=entra needs workerEntraAudience", run.Output, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^\s*module\s+\w+\s+'(?<path>[^']+)'", RegexOptions.Multiline)]
    private static partial Regex ModuleReference();

    private static JsonObject WithoutMetadata(JsonNode template)
    {
        var copy = template.DeepClone().AsObject();
        copy.Remove("metadata");
        return copy;
    }
}

/// <summary>A temporary folder removed when disposed.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("lepton-infra-").FullName;

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
