using System.Security.Cryptography;
using Azure.Storage.Blobs.Models;
using Lepton.Shared.Configuration;
using Lepton.Shared.Models;
using Lepton.Shared.Storage;
using Lepton.Testing;

namespace Lepton.Shared.Tests;

public sealed class ModelStoreTests(AzuriteFixture azurite) : IDisposable
{
    private readonly string _model = TestNames.Model();
    private readonly string _cache = Path.Combine(Path.GetTempPath(), "lepton-cache-" + Guid.NewGuid().ToString("N")[..8]);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static byte[] Bytes(int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static string Sha(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private ModelStore NewStore(long max = 8 * 1024 * 1024) =>
        new(azurite.Clients, new ModelStoreOptions { MaxModelBytes = max, CacheDir = _cache });

    public void Dispose()
    {
        if (Directory.Exists(_cache))
        {
            Directory.Delete(_cache, recursive: true);
        }
    }

    private async Task<bool> BlobExists(string path) =>
        (await azurite.Clients.Container(StorageLayout.ModelsContainer).GetBlobClient(path).ExistsAsync(Token)).Value;

    [Fact(Timeout = 60_000)]
    public async Task Uploads_in_blocks_and_records_the_sha256_of_the_bytes()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = NewStore();
        var bytes = Bytes(9 * 1024 * 1024 / 2, 1); // more than one 4 MiB block
        var progress = new List<long>();
        var stored = await store.UploadModelAsync(_model, "1.0.0", new MemoryStream(bytes), progress: new SyncProgress(progress.Add), cancellationToken: ct);
        Assert.Equal(Sha(bytes), stored.Sha256);
        Assert.Equal(bytes.Length, stored.Size);
        Assert.Equal(bytes.Length, progress[^1]);
        Assert.True(progress.Count >= 2);
        var fetched = await store.FetchModelAsync(_model, "1.0.0", ct);
        Assert.Equal(stored, fetched);
        var path = await store.GetVerifiedModelPathAsync(_model, "1.0.0", stored.Sha256, ct);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(path, ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task Re_uploading_the_same_bytes_is_idempotent_and_other_bytes_conflict()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = NewStore();
        var bytes = Bytes(1000, 2);
        var first = await store.UploadModelAsync(_model, "1.0.0", new MemoryStream(bytes), cancellationToken: ct);
        Assert.Equal(first, await store.UploadModelAsync(_model, "1.0.0", new MemoryStream(bytes), cancellationToken: ct));
        var error = await Assert.ThrowsAsync<VersionConflictException>(() =>
            store.UploadModelAsync(_model, "1.0.0", new MemoryStream(Bytes(1000, 3)), cancellationToken: ct));
        Assert.Contains("immutable", error.Message);
        Assert.Equal(first, await store.FetchModelAsync(_model, "1.0.0", ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task Racing_uploads_of_different_bytes_leave_exactly_one()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = NewStore();
        var a = Bytes(5000, 4);
        var b = Bytes(5000, 5);
        var results = await Task.WhenAll(
            Outcome(() => store.UploadModelAsync(_model, "1.0.0", new MemoryStream(a), cancellationToken: ct)),
            Outcome(() => store.UploadModelAsync(_model, "1.0.0", new MemoryStream(b), cancellationToken: ct)));
        var winner = Assert.Single(results, r => r.Stored is not null).Stored!;
        Assert.IsType<VersionConflictException>(Assert.Single(results, r => r.Error is not null).Error);
        Assert.Equal(winner.Sha256, (await store.FetchModelAsync(_model, "1.0.0", ct)).Sha256);
    }

    private static async Task<(StoredModel? Stored, Exception? Error)> Outcome(Func<Task<StoredModel>> upload)
    {
        try
        {
            return (await upload(), null);
        }
        catch (LeptonException error)
        {
            return (null, error);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task An_oversize_or_empty_upload_leaves_nothing_behind()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = NewStore(max: 4096);
        var error = await Assert.ThrowsAsync<PayloadTooLargeException>(() =>
            store.UploadModelAsync(_model, "1.0.0", new MemoryStream(Bytes(5000, 6)), cancellationToken: ct));
        Assert.Contains("LEPTON_MAX_MODEL_BYTES", error.Message);
        Assert.False(await BlobExists($"{_model}/1.0.0/model.onnx"));
        await Assert.ThrowsAsync<InvalidInputException>(() => store.UploadModelAsync(_model, "1.0.1", new MemoryStream(), cancellationToken: ct));
        Assert.False(await BlobExists($"{_model}/1.0.1/model.onnx"));
    }

    [Theory(Timeout = 60_000)]
    [InlineData("../etc", "1.0.0")]
    [InlineData("ok", "../../1.0.0")]
    [InlineData("ok", "1.0.0/..")]
    public async Task Names_that_could_escape_the_layout_are_refused_before_any_write(string model, string version)
    {
        var ct = TestContext.Current.CancellationToken;
        await Assert.ThrowsAnyAsync<InvalidInputException>(() =>
            NewStore().UploadModelAsync(model, version, new MemoryStream([1, 2, 3]), cancellationToken: ct));
        Assert.Throws<InvalidInputException>(() => ModelStore.ParseModelBlobPath($"{model}/{version}/model.onnx"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_forged_sha256_in_blob_metadata_is_never_trusted()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = NewStore();
        var production = Bytes(3000, 7);
        var stored = await store.UploadModelAsync(_model, "1.0.0", new MemoryStream(production), cancellationToken: ct);
        // Production's bytes are in the cache under their sha256.
        await store.GetVerifiedModelPathAsync(_model, "1.0.0", stored.Sha256, ct);

        // An attacker uploads other bytes with production's sha256 written into the metadata.
        var upload = Bytes(3000, 8);
        var blob = azurite.Clients.Container(StorageLayout.ModelsContainer).GetBlobClient($"{_model}/1.1.0/model.onnx");
        await blob.UploadAsync(BinaryData.FromBytes(upload), new BlobUploadOptions
        {
            Metadata = new Dictionary<string, string> { ["sha256"] = stored.Sha256 },
        }, ct);

        var fetched = await store.FetchModelAsync(_model, "1.1.0", ct);
        Assert.Equal(Sha(upload), fetched.Sha256);
        Assert.NotEqual(stored.Sha256, fetched.Sha256);
        var path = await store.GetVerifiedModelPathAsync(_model, "1.1.0", fetched.Sha256, ct);
        Assert.Equal(upload, await File.ReadAllBytesAsync(path, ct));
        // And asking for the forged hash gets the uploaded bytes refused, not production's served.
        var error = await Assert.ThrowsAsync<VersionConflictException>(async () =>
        {
            File.Delete(await store.GetVerifiedModelPathAsync(_model, "1.0.0", stored.Sha256, ct));
            await store.GetVerifiedModelPathAsync(_model, "1.1.0", stored.Sha256, ct);
        });
        Assert.Contains("replaced after registration", error.Message);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_blob_replaced_after_registration_is_refused()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = NewStore();
        var stored = await store.UploadModelAsync(_model, "1.0.0", new MemoryStream(Bytes(2000, 9)), cancellationToken: ct);
        await azurite.Clients.Container(StorageLayout.ModelsContainer).GetBlobClient(stored.BlobPath)
            .UploadAsync(BinaryData.FromBytes(Bytes(2000, 10)), overwrite: true, ct);
        var error = await Assert.ThrowsAsync<VersionConflictException>(() => store.GetVerifiedModelPathAsync(_model, "1.0.0", stored.Sha256, ct));
        Assert.Contains("replaced after registration", error.Message);
        Assert.DoesNotContain(_cache, error.Message);
        Assert.False(File.Exists(Path.Combine(_cache, stored.Sha256[..2], stored.Sha256 + ".onnx")));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_tampered_cache_file_is_detected_and_fetched_again()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = NewStore();
        var bytes = Bytes(2000, 11);
        var stored = await store.UploadModelAsync(_model, "1.0.0", new MemoryStream(bytes), cancellationToken: ct);
        var path = await store.GetVerifiedModelPathAsync(_model, "1.0.0", stored.Sha256, ct);
        await File.WriteAllBytesAsync(path, Bytes(2000, 12), ct);
        var again = await store.GetVerifiedModelPathAsync(_model, "1.0.0", stored.Sha256, ct);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(again, ct));
        Assert.Empty(Directory.GetFiles(_cache, "*.part", SearchOption.AllDirectories));
    }

    [Fact(Timeout = 60_000)]
    public async Task Manifests_are_written_before_the_model_and_read_back()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = NewStore();
        var manifest = Manifest.Parse("""{"dataset": "digits", "policy": {"window_s": 10}}""");
        await store.UploadModelAsync(_model, "1.0.0", new MemoryStream(Bytes(100, 13)), manifest, cancellationToken: ct);
        Assert.Equal(manifest, await store.GetManifestAsync(_model, "1.0.0", ct));
        Assert.Null(await store.GetManifestAsync(_model, "2.0.0", ct));
        await azurite.Clients.Container(StorageLayout.ModelsContainer).GetBlobClient($"{_model}/3.0.0/lepton.json")
            .UploadAsync(BinaryData.FromString("{\"polcy\": 1}"), ct);
        await Assert.ThrowsAsync<InvalidManifestException>(() => store.GetManifestAsync(_model, "3.0.0", ct));
    }

    [Fact(Timeout = 60_000)]
    public async Task Reports_are_listed_per_version_and_refuse_odd_names()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = NewStore();
        await store.PutReportAsync(_model, "1.0.0", "canary", new System.Text.Json.Nodes.JsonObject { ["outcome"] = "promoted" }, ct);
        await store.PutReportPngAsync(_model, "1.0.0", "canary", [0x89, 0x50, 0x4e, 0x47], ct);
        Assert.Equal(["canary.json", "canary.png"], await store.ListReportsAsync(_model, "1.0.0", ct));
        Assert.Equal("promoted", (await store.GetReportAsync(_model, "1.0.0", "canary", ct))["outcome"]!.GetValue<string>());
        await Assert.ThrowsAsync<InvalidInputException>(() => store.PutReportAsync(_model, "1.0.0", "../x", new System.Text.Json.Nodes.JsonObject(), ct));
        await Assert.ThrowsAsync<BlobNotFoundException>(() => store.GetReportAsync(_model, "1.0.0", "shadow", ct));
    }

    private sealed class SyncProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
