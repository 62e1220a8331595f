using Lepton.Shared.Configuration;
using Lepton.Shared.Models;
using Microsoft.Extensions.Configuration;

namespace Lepton.Shared.Tests;

public sealed class ManifestTests
{
    [Fact]
    public void Parses_every_field_and_round_trips()
    {
        var manifest = Manifest.Parse("""
            {"task": "regression", "dataset": "housing", "labels": ["price"],
             "policy": {"window_s": 60}, "batching": {"max_batch_size": 8, "max_delay_ms": 0.5},
             "breaking": true, "metadata": {"owner": "team-a"}}
            """);
        Assert.Equal(ModelTask.Regression, manifest.Task);
        Assert.Equal("housing", manifest.Dataset);
        Assert.Equal(["price"], manifest.Labels);
        Assert.Equal(60, manifest.Policy["window_s"]!.GetValue<int>());
        Assert.Equal(new Batching(8, 0.5), manifest.Batching);
        Assert.True(manifest.Breaking);
        Assert.Equal(manifest, Manifest.Parse(manifest.ToUtf8Bytes()));
    }

    [Fact]
    public void Defaults_when_empty()
    {
        var manifest = Manifest.Parse("{}");
        Assert.Equal(ModelTask.Classification, manifest.Task);
        Assert.Null(manifest.Dataset);
        Assert.Equal(new Batching(), manifest.Batching);
        Assert.False(manifest.Breaking);
    }

    [Theory]
    [InlineData("""{"polcy": {}}""", "unknown keys polcy")]
    [InlineData("""{"task": "ranking"}""", "task must be 'classification' or 'regression'")]
    [InlineData("""{"dataset": "../etc"}""", "dataset must be a name")]
    [InlineData("""{"labels": [1, 2]}""", "labels must be a list of strings")]
    [InlineData("""{"batching": {"max_batch_size": 0}}""", "batching.max_batch_size must be 1..4096")]
    [InlineData("""{"batching": {"max_batch_size": 8.5}}""", "batching.max_batch_size must be 1..4096")]
    [InlineData("""{"batching": {"max_delay_ms": 5000}}""", "batching.max_delay_ms must be 0..1000")]
    [InlineData("""{"batching": {"size": 1}}""", "batching has unknown keys size")]
    [InlineData("""{"breaking": "yes"}""", "breaking must be true or false")]
    [InlineData("""[1]""", "must be a JSON object")]
    [InlineData("""{"task": """, "is not valid JSON")]
    public void Refuses_bad_manifests_naming_the_field(string json, string expected) =>
        Assert.Contains(expected, Assert.Throws<InvalidManifestException>(() => Manifest.Parse(json)).Message);

    [Fact]
    public void Refuses_oversize_and_non_utf8_bytes()
    {
        Assert.Contains("larger than", Assert.Throws<InvalidManifestException>(() => Manifest.Parse(new byte[Manifest.MaxBytes + 1])).Message);
        Assert.Contains("not UTF-8", Assert.Throws<InvalidManifestException>(() => Manifest.Parse(new byte[] { 0x7b, 0xff, 0x7d })).Message);
    }
}

public sealed class SettingsTests
{
    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder()
            .AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(AppSettingNames.Key(v.Key), v.Value)))
            .Build();

    [Fact]
    public void A_connection_string_wins_and_is_never_printed()
    {
        var options = StorageOptions.FromConfiguration(Config(
            (AppSettingNames.Storage, "UseDevelopmentStorage=true;AccountKey=secret"),
            (AppSettingNames.StorageAccountName, "ignored")));
        Assert.False(options.UsesIdentity);
        Assert.DoesNotContain("secret", options.ToString());
    }

    [Fact]
    public void Identity_based_settings_derive_the_endpoints_from_the_account()
    {
        var options = StorageOptions.FromConfiguration(Config(
            (AppSettingNames.StorageAccountName, "leptonprod"),
            (AppSettingNames.StorageCredential, "managedidentity"),
            (AppSettingNames.StorageClientId, "00000000-0000-0000-0000-000000000001")));
        Assert.True(options.UsesIdentity);
        Assert.Equal(new Uri("https://leptonprod.blob.core.windows.net"), options.BlobServiceUri);
        Assert.Equal(new Uri("https://leptonprod.table.core.windows.net"), options.TableServiceUri);
        Assert.Equal("managedidentity", options.Credential);
        Assert.NotNull(new Lepton.Shared.Storage.StorageClients(options).Tables);
    }

    [Fact]
    public void Explicit_service_uris_work_without_an_account_name()
    {
        var options = StorageOptions.FromConfiguration(Config(
            (AppSettingNames.StorageBlobServiceUri, "https://b.example.net"),
            (AppSettingNames.StorageTableServiceUri, "https://t.example.net")));
        Assert.Equal(new Uri("https://t.example.net"), options.TableServiceUri);
    }

    [Fact]
    public void Missing_storage_names_every_way_to_configure_it()
    {
        var error = Assert.Throws<ConfigurationException>(() => StorageOptions.FromConfiguration(Config()));
        Assert.Contains("AzureWebJobsStorage", error.Message);
        Assert.Contains("AzureWebJobsStorage__accountName", error.Message);
        var half = Assert.Throws<ConfigurationException>(() => StorageOptions.FromConfiguration(Config((AppSettingNames.StorageBlobServiceUri, "https://b.example.net"))));
        Assert.Contains("__tableServiceUri", half.Message);
    }

    [Theory]
    [InlineData("LEPTON_MAX_MODEL_BYTES", "lots", "LEPTON_MAX_MODEL_BYTES must be a whole number")]
    [InlineData("LEPTON_MAX_MODEL_BYTES", "0", "LEPTON_MAX_MODEL_BYTES must be at least 1")]
    [InlineData("LEPTON_STORAGE_TIMEOUT_S", "-1", "LEPTON_STORAGE_TIMEOUT_S must be positive")]
    [InlineData("LEPTON_METRICS_RETENTION_HOURS", "0", "LEPTON_METRICS_RETENTION_HOURS must be at least 1")]
    [InlineData("LEPTON_METRICS_RETENTION_SCHEDULE", "0 * * * *", "six fields")]
    public void Bad_values_fail_naming_the_setting(string setting, string value, string expected)
    {
        var config = Config((setting, value), (AppSettingNames.Storage, "UseDevelopmentStorage=true"));
        var error = Assert.Throws<ConfigurationException>(() =>
        {
            StorageOptions.FromConfiguration(config);
            ModelStoreOptions.FromConfiguration(config);
            MetricsRetentionOptions.FromConfiguration(config);
        });
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Hosts_fail_at_start_naming_the_setting()
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new Microsoft.Extensions.Hosting.HostApplicationBuilderSettings
        {
            DisableDefaults = true,
            Configuration = new ConfigurationManager(),
        });
        builder.Configuration.AddInMemoryCollection([new(AppSettingNames.MaxModelBytes, "huge"), new(AppSettingNames.Storage, "UseDevelopmentStorage=true")]);
        builder.Services.AddLeptonStorage();
        using var host = builder.Build();
        var error = Assert.ThrowsAny<Exception>(() => host.StartAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult());
        Assert.Contains("LEPTON_MAX_MODEL_BYTES must be a whole number", Flatten(error));
    }

    private static string Flatten(Exception error) =>
        error is AggregateException aggregate ? string.Join(" | ", aggregate.InnerExceptions.Select(Flatten)) : error.Message + (error.InnerException is null ? "" : " | " + Flatten(error.InnerException));

    [Fact]
    public void Every_setting_name_is_listed_once() =>
        Assert.Equal(AppSettingNames.All.Count, AppSettingNames.All.Distinct(StringComparer.Ordinal).Count());

    [Fact]
    public void Text_helpers_trim_and_treat_empty_as_unset() =>
        Assert.Null(Settings.Text(Config((AppSettingNames.CacheDir, "   ")), AppSettingNames.CacheDir));
}
